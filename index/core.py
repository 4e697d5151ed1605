"""The index directory: building it (incrementally, atomically) and searching it.

Layout of one index directory::

    manifest.json   format version, embedder name + dim, chunker settings,
                    dictionary hash, per-document content hashes, counts, times,
                    and the size and sha256 of every other file (checked on open)
    store.sqlite    documents, clauses, chunks (corpus metadata and texts)
    vectors.faiss   chunk vectors keyed by chunk id
    bm25/           BM25 tokens and matrix keyed by chunk id

Every change is made in a copy beside the index (``<index>.tmp-<pid>``) and
swapped in with renames, so a crash, even a SIGKILL, leaves the previous index
intact; the next writer (or reader) undoes a half-done swap and deletes
leftover copies. A damaged file is found when the index is opened and refused
with ``IndexDamaged``, which names the file and the command that rebuilds it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import glob
import hashlib
import json
import logging
import os
import pickle
import shlex
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus.errors import IndexDamaged, IndexMismatch, IndexNotBuilt, InvalidQuestion, IpqaError, UnsupportedDocument
from corpus.types import Chunk, Document, Hit
from index.catalog import Catalog, DocInfo
from index.chunking import ChunkerSettings, chunk_document
from index.embedders import DEFAULT_EMBEDDER, PRESETS, Embedder, get_embedder
from index.stores import BM25Store, FaissStore
from index.text import dictionary_hash, tokenize

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_INDEX_DIR = Path(".ipqa") / "index"
MODES = ("dense", "bm25", "hybrid")
RRF_K = 60


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


# --- manifest ------------------------------------------------------------------


MANIFEST = "manifest.json"
DIGEST = "sha256"  # hashlib name; ~1.5 GB/s with the CPU's SHA extensions: 26 ms for 40 MB here


def read_manifest(index_dir: Path) -> dict:
    path = Path(index_dir) / MANIFEST
    if not path.exists():
        raise IndexNotBuilt(index_dir)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexDamaged(MANIFEST, f"无法读取（{type(exc).__name__}）", index_dir) from exc
    if not isinstance(manifest, dict):
        raise IndexDamaged(MANIFEST, "内容不是索引清单", index_dir)
    return manifest


def rebuild_arguments(manifest: dict) -> tuple[str, str]:
    """The ``ipqa index --rebuild`` arguments that bring back the same sources and embedder,
    and a Chinese note on what they do not bring back (files added one by one)."""
    origins = [v.get("origin", "") for v in manifest.get("documents", {}).values() if isinstance(v, dict)]
    args = []
    for origin in dict.fromkeys(origins):
        kind, _, value = origin.partition(":")
        if kind == "collection":
            args.append(f"--collection {shlex.quote(value)}")
        elif kind == "folder":
            args.append(f"--corpus {shlex.quote(value)}")
    name = manifest.get("embedder", {}).get("name")
    if name and name != PRESETS[DEFAULT_EMBEDDER].name:
        args.append(f"--embedder {shlex.quote(name)}")
    added = origins.count("added")
    note = f"另有 {added} 个文件是用 ipqa docs add 单独加入的，重建后请重新加入" if added else ""
    return "".join(" " + a for a in args), note


def _damaged(manifest: dict, index_dir: Path, file: str, detail: str) -> IndexDamaged:
    extra, note = rebuild_arguments(manifest)
    return IndexDamaged(file, detail, index_dir, extra=extra, note=note)


def _digest(path: Path, *, sync: bool = False) -> str:
    h = hashlib.new(DIGEST)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
        if sync:
            os.fsync(fh.fileno())
    return h.hexdigest()


def file_digests(folder: Path, *, sync: bool = False) -> dict[str, dict]:
    """Size and digest of every file of an index directory but the manifest, keyed by relative path
    (``sync``: also flush each file to disk)."""
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            files[rel] = {"size": path.stat().st_size, DIGEST: _digest(path, sync=sync)}
    return files


def verify_files(manifest: dict, index_dir: Path) -> bool:
    """Check every data file against the size and digest the manifest recorded when the index
    was written; raise ``IndexDamaged`` naming the first that differs. False when the index was
    written by an older ipqa that recorded none (nothing is checked then)."""
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        return False
    index_dir = Path(index_dir)
    for rel, want in recorded.items():
        try:
            size = (index_dir / rel).stat().st_size
        except FileNotFoundError:
            raise _damaged(manifest, index_dir, rel, "文件缺失") from None
        if size != want.get("size"):
            raise _damaged(manifest, index_dir, rel,
                           f"大小为 {size} 字节，建立索引时为 {want.get('size')} 字节，文件可能被截断或改写")
        if _digest(index_dir / rel) != want.get(DIGEST):
            raise _damaged(manifest, index_dir, rel, "内容与建立索引时记录的校验值不符")
    return True


# What a damaged file makes the loaders raise: faiss (RuntimeError), sqlite, numpy and pickle
# (ValueError, EOFError, UnpicklingError), json (ValueError), a missing file (OSError), bm25s (KeyError...).
_LOAD_ERRORS = (RuntimeError, sqlite3.DatabaseError, ValueError, OSError, EOFError, KeyError, IndexError,
                TypeError, pickle.UnpicklingError)


@contextmanager
def _reading(index_dir: Path, manifest: dict, file: str):
    """Turn a low-level error while reading ``file`` into ``IndexDamaged``."""
    try:
        yield
    except IpqaError:
        raise
    except _LOAD_ERRORS as exc:
        raise _damaged(manifest, index_dir, file, f"无法读取：{type(exc).__name__}") from exc


def _load_stores(folder: Path, manifest: dict, index_dir: Path) -> tuple[FaissStore, BM25Store]:
    """The stores in ``folder`` (the index or its staging copy); errors name ``index_dir``."""
    try:
        vectors = FaissStore.load(folder)
    except _LOAD_ERRORS as exc:
        file = FaissStore.HNSW_FILE if FaissStore.HNSW_FILE in str(exc) else FaissStore.FILE
        raise _damaged(manifest, index_dir, file, f"无法读取：{type(exc).__name__}") from exc
    with _reading(index_dir, manifest, BM25Store.DIR + "/"):
        keywords = BM25Store.load(folder)
    return vectors, keywords


def _quick_check(catalog: Catalog) -> None:
    """SQLite's own consistency check (for indexes without recorded digests)."""
    rows = catalog.db.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in rows[:3]))


def check_manifest(manifest: dict, index_dir: Path, embedder_name: str | None = None) -> None:
    """Refuse an index of another format or embedder, naming the command that fixes it."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(f"索引格式版本为 {manifest.get('format_version')}，当前程序需要 {FORMAT_VERSION}", index_dir)
    built_with = manifest.get("embedder", {}).get("name")
    if embedder_name and built_with != embedder_name:
        raise IndexMismatch(f"索引由向量模型「{built_with}」建立，而不是「{embedder_name}」", index_dir,
                            extra=f" --embedder {embedder_name}")
    if manifest.get("dictionary_hash") != dictionary_hash():
        raise IndexMismatch("索引建立时使用的关键词词典与当前版本不同", index_dir)


# --- writing -----------------------------------------------------------------------


@dataclass
class BuildReport:
    """What an index update did, with timings."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (skipped doc_id, same content as)
    failures: list[UnsupportedDocument] = field(default_factory=list)
    chunks_embedded: int = 0
    embed_seconds: float = 0.0
    keyword_seconds: float = 0.0  # tokenising chunks and rebuilding the BM25 matrix
    total_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [f"新增 {len(self.added)} 个文档，更新 {len(self.updated)} 个，删除 {len(self.removed)} 个，"
                 f"未变 {len(self.unchanged)} 个。"]
        if self.chunks_embedded:
            lines.append(f"向量化 {self.chunks_embedded} 个片段，用时 {self.embed_seconds:.1f} 秒"
                         f"（{self.chunks_per_second:.1f} 片段/秒）。")
        if self.counts:
            lines.append(f"索引现有 {self.counts.get('documents', 0)} 个文档、{self.counts.get('clauses', 0)} 个条款、"
                         f"{self.counts.get('chunks', 0)} 个片段；总用时 {self.total_seconds:.1f} 秒。")
        for skipped, kept in self.duplicates:
            lines.append(f"未重复导入：{skipped} 与已有文档 {kept} 内容相同")
        for f in self.failures:
            lines.append(f"无法导入：{f.name}：{f.reason}")
        return "\n".join(lines)


def _lock_path(index_dir: Path) -> Path:
    return index_dir.parent / f".{index_dir.name}.lock"


@contextmanager
def _locked(index_dir: Path):
    """One writer at a time per index directory. The kernel drops a flock when its holder dies,
    so a killed writer never blocks the next one."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(_lock_path(index_dir), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


SWAP_WAIT_SECONDS = 10.0


def _recover_for_reader(index_dir: Path) -> None:
    """``recover`` when no writer is at work; otherwise wait for a writer that is between the
    two renames of its swap (a reader must not undo a swap under way)."""
    try:
        lock = open(_lock_path(index_dir), "a")
    except OSError:  # no such folder (no index) or a read-only place: nothing to repair
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            old = index_dir.with_name(index_dir.name + ".old")
            deadline = time.monotonic() + SWAP_WAIT_SECONDS
            while not index_dir.exists() and old.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return
        try:
            recover(index_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def recover(index_dir: Path) -> None:
    """Undo what a killed writer left behind; call it holding the index lock.

    A swap cut between its two renames (see ``_swap``) left the previous index as
    ``<index>.old`` and no ``<index>``: the previous index is put back (the next run
    redoes the change). A swap cut after both renames left ``.old`` beside the new
    index: it is deleted. Staging copies ``<index>.tmp-<pid>`` of dead writers are
    deleted (under the lock no writer is alive).
    """
    index_dir = Path(index_dir)
    old = index_dir.with_name(index_dir.name + ".old")
    if not index_dir.exists() and old.exists():
        log.info("restoring %s: a writer was killed in the middle of swapping in a new version", index_dir)
        os.rename(old, index_dir)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)
    prefix = f"{index_dir.name}.tmp-"
    for stale in index_dir.parent.glob(glob.escape(prefix) + "*"):
        if stale.name[len(prefix):].isdigit() and stale.is_dir():
            log.info("deleting %s, left by a writer that was killed", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap(index_dir: Path, staged: Path) -> None:
    old = index_dir.with_name(index_dir.name + ".old")
    if index_dir.exists():
        os.rename(index_dir, old)
    os.rename(staged, index_dir)
    _fsync_dir(index_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


class _Staging:
    """A writable copy of the index (or a new empty one) that becomes the index on commit."""

    def __init__(self, index_dir: Path, embedder: Embedder, settings: ChunkerSettings, *, fresh: bool):
        self.index_dir = index_dir
        self.staged = index_dir.with_name(f"{index_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(self.staged, ignore_errors=True)
        self.embedder = embedder
        self.settings = settings
        if index_dir.exists() and not fresh:
            shutil.copytree(index_dir, self.staged)
            try:
                self.manifest = read_manifest(self.staged)
                with _reading(index_dir, self.manifest, "store.sqlite"):
                    self.catalog = Catalog(self.staged / "store.sqlite")
                self.vectors, self.keywords = _load_stores(self.staged, self.manifest, index_dir)
            except BaseException:
                shutil.rmtree(self.staged, ignore_errors=True)
                raise
        else:
            self.staged.mkdir(parents=True)
            self.manifest = {
                "format_version": FORMAT_VERSION,
                "embedder": {"name": embedder.name, "dim": embedder.dim},
                "chunker": settings.as_dict(),
                "dictionary_hash": dictionary_hash(),
                "created_at": _now(),
                "documents": {},
            }
            self.catalog = Catalog(self.staged / "store.sqlite")
            self.vectors = FaissStore(embedder.dim)
            self.keywords = BM25Store()

    def remove(self, doc_id: str) -> None:
        ids = self.catalog.delete_document(doc_id)
        self.vectors.delete(ids)
        self.keywords.delete(ids)
        self.manifest["documents"].pop(doc_id, None)

    def add(self, docs: Sequence[tuple[Document, str]], report: BuildReport, progress: bool) -> None:
        """Chunk, embed and store documents (with their origin labels)."""
        planned: list[tuple[Document, str, list[Chunk]]] = [(d, o, chunk_document(d, self.settings)) for d, o in docs]
        texts = [c.indexed_text for _, _, chunks in planned for c in chunks]
        started = time.perf_counter()
        vectors = self.embedder.encode_passages(texts, progress=progress) if texts else None
        report.embed_seconds += time.perf_counter() - started
        report.chunks_embedded += len(texts)
        row = 0
        for doc, origin, chunks in planned:
            ids = self.catalog.add_document(doc, chunks, origin=origin)
            if len(chunks):
                self.vectors.add(ids, vectors[row:row + len(chunks)])
                t = time.perf_counter()
                self.keywords.add(ids, [tokenize(c.indexed_text) for c in chunks])
                report.keyword_seconds += time.perf_counter() - t
            row += len(chunks)
            self.manifest["documents"][doc.doc_id] = {"content_hash": doc.content_hash, "origin": origin,
                                                      "chunks": len(chunks)}

    def commit(self, report: BuildReport | None = None) -> dict[str, int]:
        self.catalog.commit()
        counts = self.catalog.counts()
        self.catalog.close()
        self.vectors.save(self.staged)
        t = time.perf_counter()
        self.keywords.save(self.staged)  # rebuilds the BM25 matrix
        if report is not None:
            report.keyword_seconds += time.perf_counter() - t
        self.manifest["counts"] = counts
        self.manifest["updated_at"] = _now()
        self.manifest["files"] = file_digests(self.staged, sync=True)
        with open(self.staged / MANIFEST, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.manifest, ensure_ascii=False, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        _swap(self.index_dir, self.staged)
        return counts

    def abort(self) -> None:
        try:
            self.catalog.close()
        finally:
            shutil.rmtree(self.staged, ignore_errors=True)


def _existing_manifest(index_dir: Path, embedder: Embedder | None, settings: ChunkerSettings) -> tuple[dict, Embedder]:
    """The manifest of the index to update, checked against the embedder and chunk settings."""
    manifest = read_manifest(index_dir)
    embedder = embedder or get_embedder(manifest.get("embedder", {}).get("name"))
    check_manifest(manifest, index_dir, embedder.name)
    if manifest.get("chunker") != settings.as_dict():
        raise IndexMismatch("索引建立时的切分设置与当前设置不同", index_dir)
    return manifest, embedder


@dataclass
class _Plan:
    to_add: list[tuple[Document, str]] = field(default_factory=list)
    to_remove: list[str] = field(default_factory=list)  # replaced or dropped documents


def _plan(current: dict[str, dict], add: Sequence[tuple[Document, str]], remove: Iterable[str],
          prune_origins: Iterable[str], report: BuildReport) -> _Plan:
    """Decide what changes, from the manifest's per-document hashes and origins alone."""
    plan = _Plan()
    by_hash = {v.get("content_hash"): d for d, v in current.items()}
    wanted: dict[str, tuple[Document, str]] = {}
    for doc, origin in add:
        same = by_hash.get(doc.content_hash)
        if same is not None and same != doc.doc_id:
            if (doc.doc_id, same) not in report.duplicates:
                report.duplicates.append((doc.doc_id, same))
            continue
        by_hash.setdefault(doc.content_hash, doc.doc_id)
        wanted.setdefault(doc.doc_id, (doc, origin))
    for doc_id, (doc, origin) in wanted.items():
        if doc_id in current and current[doc_id].get("content_hash") == doc.content_hash:
            report.unchanged.append(doc_id)
            continue
        if doc_id in current:
            plan.to_remove.append(doc_id)
            report.updated.append(doc_id)
        else:
            report.added.append(doc_id)
        plan.to_add.append((doc, origin))
    prune = set(prune_origins)
    gone = [d for d, v in current.items() if v.get("origin") in prune and d not in wanted]
    for doc_id in list(remove) + gone:
        if doc_id in current and doc_id not in report.removed and doc_id not in plan.to_remove:
            plan.to_remove.append(doc_id)
            report.removed.append(doc_id)
    return plan


def update_index(index_dir: str | Path, *, add: Sequence[tuple[Document, str]] = (), remove: Iterable[str] = (),
                 prune_origins: Iterable[str] = (), embedder: Embedder | None = None,
                 settings: ChunkerSettings = ChunkerSettings(), rebuild: bool = False,
                 progress: bool = False) -> BuildReport:
    """Bring the index in line with ``add`` (documents with an origin label) and ``remove``.

    Documents whose content hash is unchanged are kept as they are (not
    re-embedded); changed ones are replaced; documents of an origin listed in
    ``prune_origins`` that are not in ``add`` are removed (their source file is gone).
    The same document given twice is stored once. Nothing is copied or written
    when nothing changes.
    """
    index_dir = Path(index_dir)
    started = time.perf_counter()
    report = BuildReport()
    with _locked(index_dir):
        recover(index_dir)
        fresh = rebuild or not (index_dir / MANIFEST).exists()
        if fresh:
            manifest, embedder = {}, embedder or get_embedder(DEFAULT_EMBEDDER)
        else:
            manifest, embedder = _existing_manifest(index_dir, embedder, settings)
            verify_files(manifest, index_dir)  # never build on (or call unchanged) a damaged index
        plan = _plan(manifest.get("documents", {}), add, remove, prune_origins, report)
        if not fresh and not (plan.to_add or plan.to_remove):
            report.counts = dict(manifest.get("counts", {}))
            report.total_seconds = time.perf_counter() - started
            return report
        stage = _Staging(index_dir, embedder, settings, fresh=fresh)
        try:
            for doc_id in plan.to_remove:
                stage.remove(doc_id)
            stage.add(plan.to_add, report, progress)
            report.counts = stage.commit(report)
        except BaseException:
            stage.abort()
            raise
    report.total_seconds = time.perf_counter() - started
    return report


# --- searching -----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Metadata filters; every given one must hold."""

    region: str | None = None  # a region name or alias: 荆门, 掇刀区, 湖北省 …
    doc_ids: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    years: tuple[int, int] | None = None  # issued in, or period overlapping, these years
    collections: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.region or self.doc_ids or self.kinds or self.years or self.collections)

    def accepts(self, doc: DocInfo) -> bool:
        if self.region and not doc.matches_region(self.region):
            return False
        if self.doc_ids and doc.doc_id not in self.doc_ids:
            return False
        if self.kinds and doc.kind not in self.kinds:
            return False
        if self.collections and doc.collection not in self.collections:
            return False
        if self.years and not doc.covers_years(*self.years):
            return False
        return True


class KnowledgeIndex:
    """An opened index: catalog, vector store, keyword store and the embedder it was built with.

    ``open`` is cheap on the model: the embedder loads on the first dense search
    (or explicitly with ``load_embedder``).
    """

    def __init__(self, index_dir: Path, manifest: dict, catalog: Catalog, vectors: FaissStore,
                 keywords: BM25Store, embedder: Embedder):
        self.index_dir = index_dir
        self.manifest = manifest
        self.catalog = catalog
        self.vectors = vectors
        self.keywords = keywords
        self.embedder = embedder
        self._docs = {d.doc_id: d for d in catalog.documents()}
        self._ids_by_doc = catalog.chunk_ids_by_doc()
        self._clause_info: dict[str, tuple[tuple[str, ...], str]] = {}  # clause_id -> (path, citation)
        self._vector_cache: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, index_dir: str | Path = DEFAULT_INDEX_DIR, *, embedder: Embedder | None = None) -> "KnowledgeIndex":
        """Open the index, refusing one of another format or embedder (``IndexMismatch``) and one
        with a missing, truncated or corrupt file (``IndexDamaged``): every file is checked against
        the size and digest recorded when it was written (a few ms for the bundled index)."""
        index_dir = Path(index_dir)
        _recover_for_reader(index_dir)
        manifest = read_manifest(index_dir)
        name = manifest.get("embedder", {}).get("name")
        check_manifest(manifest, index_dir, embedder.name if embedder else None)
        verified = verify_files(manifest, index_dir)
        if not verified:
            log.info("%s was written without file digests (older ipqa): not verified; its next update "
                        "records them", index_dir)
        embedder = embedder or get_embedder(name)
        vectors, keywords = _load_stores(index_dir, manifest, index_dir)
        with _reading(index_dir, manifest, "store.sqlite"):
            catalog = Catalog(index_dir / "store.sqlite", readonly=True)
            try:
                if not verified:
                    _quick_check(catalog)
                opened = cls(index_dir, manifest, catalog, vectors, keywords, embedder)
            except BaseException:
                catalog.close()
                raise
        return opened

    def close(self) -> None:
        self.catalog.close()

    def load_embedder(self) -> None:
        load = getattr(self.embedder, "load", None)
        if load:
            load()

    # --- metadata ---

    def documents(self) -> list[DocInfo]:
        return list(self._docs.values())

    def doc_info(self, doc_id: str) -> DocInfo:
        return self._docs[doc_id]

    def document(self, doc_id: str) -> Document | None:
        return self.catalog.document(doc_id)

    def allowed_ids(self, filters: Filters | None) -> np.ndarray | None:
        """Chunk ids that pass the filters (None: no filter)."""
        if filters is None or filters.is_empty():
            return None
        parts = [self._ids_by_doc[d] for d, info in self._docs.items() if filters.accepts(info) and d in self._ids_by_doc]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    # --- search ---

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding (the last few are cached: the chat re-asks, eval sweeps re-run)."""
        cached = self._vector_cache.get(query)
        if cached is None:
            cached = self.embedder.encode_queries([query])[0]
            if len(self._vector_cache) > 512:
                self._vector_cache.clear()
            self._vector_cache[query] = cached
        return cached

    def clear_query_cache(self) -> None:
        """Forget cached query vectors (the eval does, so each timed call pays for its embedding)."""
        self._vector_cache.clear()

    def dense_scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query to the given chunks (exact, from stored vectors)."""
        if len(ids) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.vectors.index.reconstruct_batch(np.asarray(ids, dtype=np.int64)) @ vector

    def dense(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.vectors.search(self.query_vector(query), k, allowed)

    def keyword(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.keywords.search(tokenize(query), k, allowed)

    def search(self, query: str, k: int = 10, *, mode: str = "hybrid", filters: Filters | None = None,
               depth: int = 50, weights: tuple[float, float] = (1.0, 1.0)) -> list[Hit]:
        """Top ``k`` chunks for ``query``. Hybrid mode fuses the dense and BM25 rankings
        (``depth`` candidates each) by weighted reciprocal rank."""
        query = (query or "").strip()
        if not query:
            raise InvalidQuestion("检索内容为空，请输入问题或关键词")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")
        allowed = self.allowed_ids(filters)
        per: dict[str, dict[int, float]] = {}
        ranked: list[tuple[int, float]]
        if mode == "dense":
            ranked = self.dense(query, k, allowed)
            per["dense"] = dict(ranked)
        elif mode == "bm25":
            ranked = self.keyword(query, k, allowed)
            per["bm25"] = dict(ranked)
        else:
            dense = self.dense(query, max(k, depth), allowed)
            sparse = self.keyword(query, max(k, depth), allowed)
            per = {"dense": dict(dense), "bm25": dict(sparse)}
            fused: dict[int, float] = {}
            for (name, results), weight in zip((("dense", dense), ("bm25", sparse)), weights):
                for rank, (cid, _score) in enumerate(results, start=1):
                    fused[cid] = fused.get(cid, 0.0) + weight / (RRF_K + rank)
            ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return self._hits(ranked, per)

    def hits(self, ranked: list[tuple[int, float]], per: dict[str, dict[int, float]]) -> list[Hit]:
        """Hit records for ranked (chunk id, score) pairs; ``per`` holds each retriever's scores."""
        return self._hits(ranked, per)

    def doc_chunk_ids(self, doc_ids) -> np.ndarray:
        parts = [self._ids_by_doc[d] for d in doc_ids if d in self._ids_by_doc]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _hits(self, ranked: list[tuple[int, float]], per: dict[str, dict[int, float]]) -> list[Hit]:
        chunks = self.catalog.chunks(cid for cid, _ in ranked)
        missing = [c.clause_id for c in chunks.values() if c.clause_id not in self._clause_info]
        if missing:
            self._clause_info.update(self.catalog.clause_info(missing))
        hits = []
        for rank, (cid, score) in enumerate(ranked, start=1):
            chunk = chunks[cid]
            doc = self._docs[chunk.doc_id]
            path, citation = self._clause_info.get(chunk.clause_id, ((), ""))
            hits.append(Hit(
                chunk=chunk, rank=rank, score=score,
                scores={name: values[cid] for name, values in per.items() if cid in values},
                title=doc.title, path=path, doc_number=doc.doc_number, region=doc.region, kind=doc.kind,
                issued=doc.issued, citation=citation))
        return hits

"""Building and updating an index folder, incrementally and atomically.

An update has two phases. The costly one — chunking, embedding and tokenising the documents to
add — runs before the writers' lock is taken, so one large file never holds the lock while
other writers wait. The short one, under the lock, copies the index into a staging folder,
removes and adds documents there, writes the manifest and swaps the copy in (``index.folder``):
a crash, even a SIGKILL, at any point leaves the previous index intact.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus.errors import IndexMismatch, IpqaError, UnsupportedDocument
from corpus.types import Chunk, Document
from index.arrays import NPY_LOCK
from index.catalog import Catalog
from index.chunking import ChunkerSettings, chunk_document
from index.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from index.folder import (MANIFEST, check_index_dir, discard, failpoint, locked, new_staging, recover, swap_in,
                          unmark)
from index.manifest import (LOAD_ERRORS, LOCAL_STORE, check_manifest, damaged, file_digests, new_manifest, read_manifest,
                            reading, verify_files)
from index.sentences import SentenceStore, sentence_context, sentence_units
from index.stores import BM25Store, FaissStore
from index.text import tokenize
from index.vector_cache import SHARD_TEXTS, VectorCache

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (chunks embedded so far, chunks to embed)
EMBED_BATCH = 128


def timestamp() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


@dataclass
class BuildReport:
    """What an index update did, with timings."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (skipped doc_id, same content as)
    failures: list[UnsupportedDocument] = field(default_factory=list)
    chunks_embedded: int = 0  # chunks of the documents added
    texts_embedded: int = 0  # texts that went through the model: chunks and their sentences, each once
    texts_cached: int = 0  # texts whose vectors came from the vector cache (index.vector_cache)
    embed_seconds: float = 0.0
    keyword_seconds: float = 0.0  # tokenising chunks and rebuilding the BM25 matrix
    locked_seconds: float = 0.0  # time the writers' lock was held
    total_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    @property
    def texts_per_second(self) -> float:
        return self.texts_embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def summary(self) -> str:
        lines = [f"新增 {len(self.added)} 个文档，更新 {len(self.updated)} 个，删除 {len(self.removed)} 个，"
                 f"未变 {len(self.unchanged)} 个。"]
        if self.chunks_embedded:
            speed = f"（{self.chunks_per_second:.1f} 片段/秒）" if not self.texts_cached else ""
            cached = f"，另有 {self.texts_cached} 段取自向量缓存" if self.texts_cached else ""
            lines.append(f"向量化 {self.chunks_embedded} 个片段（连同其中的句子共 {self.texts_embedded} 段文字{cached}），"
                         f"用时 {self.embed_seconds:.1f} 秒{speed}。")
        if self.counts:
            locked = f"（其中独占索引 {self.locked_seconds:.1f} 秒）" if self.locked_seconds >= 0.05 else ""
            lines.append(f"索引现有 {self.counts.get('documents', 0)} 个文档、{self.counts.get('clauses', 0)} 个条款、"
                         f"{self.counts.get('chunks', 0)} 个片段；总用时 {self.total_seconds:.1f} 秒{locked}。")
        for skipped, kept in self.duplicates:
            lines.append(f"未重复导入：{skipped} 与已有文档 {kept} 内容相同")
        for f in self.failures:
            lines.append(f"无法导入：{f.name}：{f.reason}")
        return "\n".join(lines)


@dataclass
class Stores:
    """The search stores of one index folder: chunk vectors, sentence vectors, BM25."""

    vectors: FaissStore
    sentences: SentenceStore
    keywords: BM25Store

    @classmethod
    def new(cls, dim: int) -> "Stores":
        return cls(FaissStore(dim), SentenceStore(dim), BM25Store())

    def save(self, folder: Path) -> None:
        self.vectors.save(folder)
        self.sentences.save(folder)
        self.keywords.save(folder)  # rebuilds the BM25 matrix


def load_stores(folder: Path, manifest: dict, index_dir: Path, *, lazy: bool = False) -> Stores:
    """The stores in ``folder`` (the index or its staging copy); errors name ``index_dir``.
    ``lazy`` (a writer's own staging copy, which nobody swaps away): large files are read only
    if the change needs them. A reader reads everything now: the folder it opened may be
    replaced by a writer's swap at any time after.

    One thread at a time, with every other ``.npy`` read of the process (see index/arrays.py)."""
    loaded = []
    with NPY_LOCK:
        for store in (FaissStore, SentenceStore):
            try:
                loaded.append(store.load(folder, lazy=lazy))
            except LOAD_ERRORS as exc:
                file = store.HNSW_FILE if store.HNSW_FILE in str(exc) else store.FILE
                raise damaged(manifest, index_dir, file, f"无法读取：{type(exc).__name__}") from exc
        with reading(index_dir, manifest, BM25Store.DIR + "/"):
            keywords = BM25Store.load(folder)
    return Stores(loaded[0], loaded[1], keywords)


# --- phase one: prepare (no lock) ---------------------------------------------------------------


@dataclass
class Prepared:
    """A document ready to store: its chunks with their vectors, sentence vectors and BM25 tokens."""

    doc: Document
    origin: str
    chunks: list[Chunk]
    vectors: np.ndarray
    sentence_vectors: list[np.ndarray]  # per chunk, one row per sentence (index.sentences)
    tokens: list[list[str]]
    embedder: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.doc.doc_id, self.doc.content_hash, self.embedder


def _embed(embedder: Embedder, texts: list[str], progress: bool, on_progress: Progress | None,
           report: BuildReport) -> np.ndarray:
    """The vectors of ``texts``: from the vector cache where the model embedded them before (a stopped
    build resumes), the rest from the model, kept in the cache a shard at a time."""
    cache = VectorCache.for_embedder(embedder) if texts else None
    if cache is None:
        report.texts_embedded += len(texts)
        return _run_model(embedder, texts, progress, on_progress, 0, len(texts))
    vectors, missing = cache.lookup(texts)
    report.texts_embedded += len(missing)
    report.texts_cached += len(texts) - len(missing)
    if len(missing) < len(texts):
        log.info("vector cache: %d of %d texts already embedded by %s", len(texts) - len(missing), len(texts),
                 embedder.name)
    for start in range(0, len(missing), SHARD_TEXTS):
        rows = missing[start:start + SHARD_TEXTS]
        part = [texts[i] for i in rows]
        got = _run_model(embedder, part, progress, on_progress, start, len(missing))
        cache.add(part, got)
        vectors[rows] = got
    return vectors


def _run_model(embedder: Embedder, texts: list[str], progress: bool, on_progress: Progress | None,
               done: int, total: int) -> np.ndarray:
    """``texts`` through the model; ``on_progress`` told (done + embedded so far, total)."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    if on_progress is None:
        return embedder.encode_passages(texts, progress=progress)
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        on_progress(done + start, total)
        parts.append(embedder.encode_passages(texts[start:start + EMBED_BATCH]))
    on_progress(done + len(texts), total)
    return np.concatenate(parts)


@dataclass
class _Embedding:
    """What one update embeds: chunk texts (or none) and sentence texts, with their places."""

    texts: list[str] = field(default_factory=list)
    chunk_rows: list[int | None] = field(default_factory=list)  # per chunk: its row in texts (None: mean)
    sentence_rows: list[list[int]] = field(default_factory=list)  # per chunk: rows of its sentences


def text_plan(planned, settings: ChunkerSettings) -> _Embedding:
    """Every text to embed, once: a chunk of one sentence is embedded once and serves as both."""
    out = _Embedding()
    for doc, _, chunks in planned:
        for chunk in chunks:
            units = sentence_units(chunk.text) if settings.sentences else []
            context = sentence_context(doc.title, doc.clause(chunk.clause_id).heading) if units else ""
            row = None
            if settings.chunk_vector == "embed" or len(units) <= 1:
                row = len(out.texts)
                out.texts.append(chunk.indexed_text)
            out.chunk_rows.append(row)
            if len(units) == 1:
                out.sentence_rows.append([row])
                continue
            out.sentence_rows.append(list(range(len(out.texts), len(out.texts) + len(units))))
            out.texts.extend(f"{context}\n{u}" for u in units)
    return out


def _unit(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm else mean).astype(np.float32)


def prepare(docs: Sequence[tuple[Document, str]], embedder: Embedder, settings: ChunkerSettings,
            report: BuildReport, *, progress: bool = False, on_progress: Progress | None = None) -> list[Prepared]:
    """Chunk, embed and tokenise documents (with their origin labels): the costly part of an update."""
    if not docs:  # (a removal only: the model is not even loaded)
        return []
    planned = [(d, o, chunk_document(d, settings)) for d, o in docs]
    plan = text_plan(planned, settings)
    started = time.perf_counter()
    vectors = _embed(embedder, plan.texts, progress, on_progress, report)
    report.embed_seconds += time.perf_counter() - started
    report.chunks_embedded += sum(len(chunks) for _, _, chunks in planned)
    out, n = [], 0
    for doc, origin, chunks in planned:
        t = time.perf_counter()
        tokens = [tokenize(c.indexed_text) for c in chunks]
        report.keyword_seconds += time.perf_counter() - t
        own, sentences = chunk_vectors(plan, vectors, n, len(chunks), embedder.dim)
        out.append(Prepared(doc, origin, chunks, own, sentences, tokens, embedder.name))
        n += len(chunks)
    failpoint("prepared")
    return out


def chunk_vectors(plan: _Embedding, vectors: np.ndarray, first: int, count: int,
                  dim: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(chunk vectors, per chunk its sentence vectors) of chunks ``first``..``first + count`` of ``plan``,
    from ``vectors``, the embeddings of ``plan.texts``."""
    sentences = [vectors[plan.sentence_rows[first + i]] for i in range(count)]
    rows = [plan.chunk_rows[first + i] for i in range(count)]
    own = np.stack([vectors[r] if r is not None else _unit(sentences[i]) for i, r in enumerate(rows)]) \
        if count else np.zeros((0, dim), dtype=np.float32)
    return own, sentences


# --- phase two: store (under the lock) ---------------------------------------------------------


class Staging:
    """A writable copy of the index (or a new empty one) that becomes the index on commit."""

    def __init__(self, index_dir: Path, embedder: Embedder, settings: ChunkerSettings, *, fresh: bool):
        self.index_dir = index_dir
        self.staged = new_staging(index_dir, copy=not fresh)
        try:
            if fresh:
                self.manifest = new_manifest(embedder.name, embedder.dim, settings.as_dict(), timestamp())
                self.catalog = Catalog(self.staged / "store.sqlite")
                self.stores = Stores.new(embedder.dim)
            else:
                self.manifest = read_manifest(self.staged)
                with reading(index_dir, self.manifest, "store.sqlite"):
                    self.catalog = Catalog(self.staged / "store.sqlite")
                self.stores = load_stores(self.staged, self.manifest, index_dir, lazy=True)
        except BaseException:
            discard(self.staged)
            raise

    def remove(self, doc_id: str) -> None:
        ids = self.catalog.delete_document(doc_id)
        self.stores.vectors.delete(ids)
        self.stores.sentences.delete_chunks(ids)
        self.stores.keywords.delete(ids)
        self.manifest["documents"].pop(doc_id, None)

    def add(self, ready: Sequence[Prepared], report: BuildReport) -> None:
        for p in ready:
            ids = self.catalog.add_document(p.doc, p.chunks, origin=p.origin)
            if len(p.chunks):
                self.stores.vectors.add(ids, p.vectors)
                self.stores.sentences.add_chunks(ids, p.sentence_vectors)
                self.stores.keywords.add(ids, p.tokens)
            self.manifest["documents"][p.doc.doc_id] = {"content_hash": p.doc.content_hash, "origin": p.origin,
                                                        "chunks": len(p.chunks)}

    def commit(self, report: BuildReport) -> dict[str, int]:
        self.catalog.commit()
        counts = self.catalog.counts()
        self.catalog.close()
        t = time.perf_counter()
        self.stores.save(self.staged)
        report.keyword_seconds += time.perf_counter() - t
        failpoint("stored")
        self.manifest.setdefault("generator", "ipqa")
        self.manifest["counts"] = counts
        self.manifest["updated_at"] = timestamp()
        self.manifest["store"] = dict(LOCAL_STORE)  # (an index written by earlier stores is rewritten in their place)
        self.manifest["files"] = file_digests(self.staged, sync=True, previous=self.index_dir,
                                              recorded=self.manifest.get("files"))
        _write_synced(self.staged / MANIFEST, self.manifest)
        unmark(self.staged)
        swap_in(self.index_dir, self.staged)
        return counts

    def abort(self) -> None:
        try:
            self.catalog.close()
        finally:
            discard(self.staged)


def _write_synced(path: Path, manifest: dict) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, ensure_ascii=False, indent=1))
        fh.flush()
        os.fsync(fh.fileno())


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


def plan_update(current: dict[str, dict], add: Sequence[tuple[Document, str]], remove: Iterable[str],
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


def _state(index_dir: Path, embedder: Embedder | None, settings: ChunkerSettings,
           rebuild: bool) -> tuple[bool, dict, Embedder]:
    """(fresh, current manifest, embedder) of the index as it is now."""
    fresh = rebuild or not check_index_dir(index_dir)
    if fresh:
        return True, {}, embedder or get_embedder(DEFAULT_EMBEDDER)
    manifest, embedder = _existing_manifest(index_dir, embedder, settings)
    return False, manifest, embedder


def _prepare_early(index_dir: Path, add: Sequence[tuple[Document, str]], embedder: Embedder | None,
                   settings: ChunkerSettings, rebuild: bool, report: BuildReport, progress: bool,
                   on_progress: Progress | None) -> tuple[dict, Embedder | None]:
    """Phase one before the lock, planned against the index as it is now; what changes meanwhile
    is planned again under the lock."""
    if not add:
        return {}, embedder
    try:
        _, manifest, embedder = _state(index_dir, embedder, settings, rebuild)
    except IpqaError as exc:  # a swap under way, or a damaged index: decided under the lock
        log.info("planning %s under the lock: %s", index_dir, exc)
        return {}, embedder
    plan = plan_update(manifest.get("documents", {}), add, (), (), BuildReport())
    ready = prepare(plan.to_add, embedder, settings, report, progress=progress, on_progress=on_progress)
    return {p.key: p for p in ready}, embedder


def update_index(index_dir: str | Path, *, add: Sequence[tuple[Document, str]] = (), remove: Iterable[str] = (),
                 prune_origins: Iterable[str] = (), embedder: Embedder | None = None,
                 settings: ChunkerSettings = ChunkerSettings(), rebuild: bool = False,
                 progress: bool = False, on_progress: Progress | None = None) -> BuildReport:
    """Bring the index in line with ``add`` (documents with an origin label) and ``remove``.

    Documents whose content hash is unchanged are kept as they are (not re-embedded); changed
    ones are replaced; documents of an origin listed in ``prune_origins`` that are not in ``add``
    are removed (their source file is gone). The same document given twice is stored once.
    Nothing is copied or written when nothing changes. A folder that is not an index is refused
    (``NotAnIndex``) before anything is written.
    """
    index_dir = Path(index_dir)
    started = time.perf_counter()
    report = BuildReport()
    check_index_dir(index_dir)
    ready, embedder = _prepare_early(index_dir, add, embedder, settings, rebuild, report, progress, on_progress)
    with locked(index_dir):
        locked_at = time.perf_counter()
        recover(index_dir)
        failpoint("locked")
        fresh, manifest, embedder = _state(index_dir, embedder, settings, rebuild)
        if not fresh:
            verify_files(manifest, index_dir, trust_untouched=True)  # never build on (or call unchanged) a damaged index
        plan = plan_update(manifest.get("documents", {}), add, remove, prune_origins, report)
        if fresh or plan.to_add or plan.to_remove:
            report.counts = _apply(index_dir, plan, ready, embedder, settings, fresh, report, progress)
        else:
            report.counts = dict(manifest.get("counts", {}))
        report.locked_seconds = time.perf_counter() - locked_at
    report.total_seconds = time.perf_counter() - started
    return report


def _apply(index_dir: Path, plan: _Plan, ready: dict, embedder: Embedder, settings: ChunkerSettings, fresh: bool,
           report: BuildReport, progress: bool) -> dict[str, int]:
    keys = {(d.doc_id, d.content_hash, embedder.name): (d, o) for d, o in plan.to_add}
    late = [doc_origin for key, doc_origin in keys.items() if key not in ready]
    items = [ready[key] for key in keys if key in ready] + prepare(late, embedder, settings, report, progress=progress)
    order = {key: n for n, key in enumerate(keys)}
    items.sort(key=lambda p: order[p.key])
    stage = Staging(index_dir, embedder, settings, fresh=fresh)
    try:
        for doc_id in plan.to_remove:
            stage.remove(doc_id)
        stage.add(items, report)
        return stage.commit(report)
    except BaseException:
        stage.abort()
        raise

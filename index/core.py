"""An opened index: searching it (dense, BM25, hybrid) with metadata filters.

Writing lives in ``index.build`` (two-phase, atomic updates), the folder's ownership, lock and
swaps in ``index.folder``, and the manifest with its file digests in ``index.manifest``. The
names of the writing API are re-exported here for callers that import them from ``index.core``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.errors import (EmbedderUnavailable, IndexBusy, IndexDamaged, IndexMismatch, IndexNotBuilt, IndexReembedded, InvalidQuestion,
                           IpqaError, NotAnIndex)
from corpus.types import Hit
from index import pg
from index.build import BuildReport, Prepared, Stores, load_stores, prepare
from index.catalog import Catalog, DocInfo
from index.embedders import Embedder, get_embedder
from index.folder import MANIFEST, between_renames, recover_for_reader, require_index
from index.manifest import check_manifest, file_digests, read_manifest, reading, verify_files
from index.pg import is_database_url, safe_url
from index.registry import check_stores, kind_of
from index.text import tokenize

log = logging.getLogger(__name__)

DEFAULT_INDEX_DIR = Path(".ipqa") / "index"
OPEN_ATTEMPTS = 5  # a reader opening a folder while writers swap in new versions reads it again
STALE_CHECK_SECONDS = 1.0  # how often an open index asks whether a writer changed it
MODES = ("dense", "bm25", "hybrid")
RRF_K = 60


def _quick_check(catalog: Catalog) -> None:
    """SQLite's own consistency check (for indexes without recorded digests)."""
    rows = catalog.db.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in rows[:3]))


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


def update_index(index_dir, **kwargs) -> BuildReport:
    """Bring a knowledge base in line (``index.build.update_index``'s arguments): a folder, or a
    PostgreSQL database given by its URL (``index.registry``)."""
    return kind_of(index_dir).update(index_dir, **kwargs)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def document_ids(location) -> set[str]:
    """The ids of the documents a knowledge base holds, read from its manifest (a folder) or its
    catalog (a database), without reading the search stores."""
    if is_database_url(location):
        ix = KnowledgeIndex.open(location)
        try:
            return {d.doc_id for d in ix.documents()}
        finally:
            ix.close()
    index_dir = Path(location)
    recover_for_reader(index_dir)
    require_index(index_dir)
    return set(read_manifest(index_dir).get("documents", {}))


def disk_bytes(location) -> int:
    """Bytes the knowledge base takes: its folder's files, or its tables in the database."""
    return kind_of(location).disk_bytes(location)


def _folder_identity(index_dir: Path) -> tuple | None:
    """What changes whenever a writer swaps in a new version: the folder's and its manifest's inodes
    and the manifest's modification time (None between the two renames of a swap)."""
    try:
        folder, manifest = os.stat(index_dir), os.stat(index_dir / MANIFEST)
    except OSError:
        return None
    return folder.st_ino, manifest.st_ino, manifest.st_mtime_ns


def _unusable_embedder(manifest: dict, index_dir, exc: EmbedderUnavailable) -> IndexMismatch:
    """The index's model cannot be used here: the command re-embeds it with the default model, from what
    the index stores (no source file needed, uploaded documents kept)."""
    return IndexMismatch(f"索引由向量模型「{exc.embedder}」建立，本机无法使用该模型（{exc.reason}）", index_dir,
                         action="reembed")


@dataclass
class _View:
    """What an opened index keeps of one version of the knowledge base."""

    version: object
    docs: dict[str, DocInfo]
    ids_by_doc: dict[str, np.ndarray]
    clause_info: dict[str, tuple[tuple[str, ...], str]]  # clause_id -> (path, citation), filled as asked

    @classmethod
    def read(cls, version, catalog: Catalog) -> "_View":
        return cls(version, {d.doc_id: d for d in catalog.documents()}, catalog.chunk_ids_by_doc(), {})


class KnowledgeIndex:
    """An opened index: catalog, vector store, keyword store and the embedder it was built with.

    ``open`` is cheap on the model: the embedder loads on the first dense search
    (or explicitly with ``load_embedder``).
    """

    def __init__(self, index_dir: Path, manifest: dict, catalog: Catalog, stores: Stores, embedder: Embedder):
        self.index_dir = index_dir
        self.manifest = manifest
        self.catalog = catalog
        self.vectors = stores.vectors
        self.sentences = stores.sentences
        self.keywords = stores.keywords
        self.embedder = embedder
        self._stores = stores
        self._view = _View.read(manifest.get("version"), catalog)
        self._local = threading.local()  # the view of this thread's open snapshot
        self._identity: tuple | None = None  # a folder's version as the file system tells it (_folder_identity)
        self._vector_cache: dict[str, np.ndarray] = {}
        self._checked_at = time.monotonic()

    @classmethod
    def open(cls, index_dir: str | Path = DEFAULT_INDEX_DIR, *, embedder: Embedder | None = None) -> "KnowledgeIndex":
        """Open the index, refusing one of another format or embedder (``IndexMismatch``) and one
        with a missing, truncated or corrupt file (``IndexDamaged``): every file is checked against
        the size and digest recorded when it was written (a few ms for the bundled index)."""
        if is_database_url(index_dir):
            return cls._open_database(str(index_dir), embedder)
        index_dir = Path(index_dir)
        for _attempt in range(OPEN_ATTEMPTS):
            recover_for_reader(index_dir)
            before = _folder_identity(index_dir)
            try:
                opened = cls._open_folder(index_dir, embedder)
            except (IndexDamaged, IndexNotBuilt, NotAnIndex):
                if _folder_identity(index_dir) == before and not between_renames(index_dir):
                    raise  # not a swap under way: the index is damaged (or not there)
                continue
            if _folder_identity(index_dir) == before:
                opened._identity = before
                return opened
            opened.close()  # a writer swapped in a new version while this one was read: read again
            log.info("%s changed while it was opened; opening it again", index_dir)
        raise IndexBusy(index_dir)

    @classmethod
    def _open_folder(cls, index_dir: Path, embedder: Embedder | None) -> "KnowledgeIndex":
        """One attempt at opening the folder (a writer may swap in a new version meanwhile)."""
        manifest = read_manifest(index_dir)
        name = manifest.get("embedder", {}).get("name")
        check_stores(manifest, kind_of(index_dir), index_dir)
        check_manifest(manifest, index_dir, embedder.name if embedder else None)
        verified = verify_files(manifest, index_dir)
        if not verified:
            log.info("%s was written without file digests (older ipqa): not verified; its next update "
                        "records them", index_dir)
        try:
            embedder = embedder or get_embedder(name)
        except EmbedderUnavailable as exc:
            raise _unusable_embedder(manifest, index_dir, exc) from exc
        stores = load_stores(index_dir, manifest, index_dir)
        with reading(index_dir, manifest, "store.sqlite"):
            catalog = Catalog(index_dir / "store.sqlite", readonly=True)
            try:
                if not verified:
                    _quick_check(catalog)
                opened = cls(index_dir, manifest, catalog, stores, embedder)
            except BaseException:
                catalog.close()
                raise
        return opened

    @classmethod
    def _open_database(cls, url: str, embedder: Embedder | None) -> "KnowledgeIndex":
        """The knowledge base in a PostgreSQL database (index.pg): nothing is read up front but the
        catalog's document list; searches run in SQL."""
        with pg.snapshot(pg.pool(url)):
            manifest, db, stores = pg.open_stores(url)
            check_stores(manifest, kind_of(url), url)
            check_manifest(manifest, safe_url(url), embedder.name if embedder else None)
            try:
                embedder = embedder or get_embedder(manifest.get("embedder", {}).get("name"))
            except EmbedderUnavailable as exc:
                raise _unusable_embedder(manifest, safe_url(url), exc) from exc
            return cls(url, manifest, Catalog(db=db), stores, embedder)

    # --- versions ---

    @property
    def _docs(self) -> dict[str, DocInfo]:
        return self._current().docs

    @property
    def _ids_by_doc(self) -> dict[str, np.ndarray]:
        return self._current().ids_by_doc

    @property
    def _clause_info(self) -> dict[str, tuple[tuple[str, ...], str]]:
        return self._current().clause_info

    def _current(self) -> _View:
        return getattr(self._local, "view", None) or self._view

    @contextmanager
    def snapshot(self):
        """Every read inside sees one version of the knowledge base, whatever writers commit
        meanwhile. In a database: one read-only transaction, and the cached document list moves to
        the version it reads. An opened folder is one version already."""
        if not self.shared or getattr(self._local, "view", None) is not None:
            yield
            return
        with pg.snapshot(pg.pool(self.index_dir)):
            self._local.view = self._view_at(pg.current_version(self.index_dir))
            try:
                yield
            finally:
                self._local.view = None

    def _view_at(self, version) -> _View:
        view = self._view
        if version == view.version:
            return view
        log.info("%s: version %s → %s", self.location, view.version, version)
        manifest = pg.read_manifest(self.index_dir)
        now = manifest.get("embedder", {}).get("name")
        if now != self.embedder.name:  # re-embedded meanwhile: this reader's model no longer fits
            raise IndexReembedded(safe_url(self.index_dir), self.embedder.name, now)
        self.manifest = manifest
        pg.refresh_stores(self._stores)
        self._view = view = _View.read(version, self.catalog)
        return view

    @property
    def location(self) -> str:
        """Where the index is, for people: its folder, or the database URL without its password."""
        return safe_url(self.index_dir) if self.shared else str(self.index_dir)

    @property
    def shared(self) -> bool:
        """True for a PostgreSQL knowledge base that other servers may change."""
        return is_database_url(self.index_dir)

    def is_stale(self) -> bool:
        """True when a writer changed the knowledge base since it was opened (checked at most once a
        second: a version row in the database; in a folder, a new folder swapped in)."""
        now = time.monotonic()
        if now - self._checked_at < STALE_CHECK_SECONDS:
            return False
        self._checked_at = now
        try:
            if self.shared:
                return pg.current_version(self.index_dir) != self._view.version
            return _folder_identity(self.index_dir) not in (self._identity, None)
        except IpqaError as exc:  # a swap under way, or gone: the next check decides
            log.info("checking %s for changes: %s", self.location, exc)
            return False

    def close(self) -> None:
        self.catalog.close()

    def prewarm(self) -> int:
        """Read a database's vector graphs and keyword index into its server's memory (pages read;
        a folder is read by the operating system as it is used: 0)."""
        return pg.prewarm(self.index_dir) if self.shared else 0

    def load_embedder(self) -> None:
        load = getattr(self.embedder, "load", None)
        if load:
            with self._embedder_needed():
                load()

    @contextmanager
    def _embedder_needed(self):
        """An embedder that cannot be loaded here becomes ``IndexMismatch`` with the command that
        rebuilds the index with the default model."""
        try:
            yield
        except EmbedderUnavailable as exc:
            raise _unusable_embedder(self.manifest, self.index_dir, exc) from exc

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
            with self._embedder_needed():
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
        return self.vectors.scores(vector, np.asarray(ids, dtype=np.int64))

    def sentence_scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Cosine of each chunk's best sentence to the query (index.sentences)."""
        return self.sentences.best(vector, np.asarray(ids, dtype=np.int64))

    def best_sentences(self, vector: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cosine of each chunk's best sentence, which sentence: its place in ``sentence_units``)."""
        return self.sentences.best_with_position(vector, np.asarray(ids, dtype=np.int64))

    def dense_search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.vectors.search(vector, k, allowed)

    def sentence_search(self, vector: np.ndarray, k: int,
                        allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks whose best sentence is closest to the query."""
        return self.sentences.search_chunks(vector, k, allowed)

    def keyword_scores(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, BM25 score of each) for query tokens."""
        return self.keywords.scores(tokens)

    def keyword_candidates(self, tokens: list[str], weights: dict[str, float], k: int, allowed: np.ndarray | None,
                           among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores): the question's BM25 and its weighted expansion's (two columns) for each query's top
        ``k`` within ``allowed`` and for the ids in ``among`` (ids the caller found within ``allowed``). A
        database scores both in one pass and returns only these rows, not a score for every chunk."""
        return self.keywords.candidates(tokens, weights, k, allowed, np.asarray(among, dtype=np.int64))

    def term_stats(self, tokens: list[str]) -> tuple[dict[str, int], int]:
        """({token: chunks holding it}, number of chunks)."""
        return self.keywords.document_frequencies(tokens)

    def vocabulary(self):
        """Every keyword of the indexed chunks."""
        return self.keywords.vocabulary()

    def chunks(self, ids) -> dict:
        """{chunk id: Chunk}."""
        return self.catalog.chunks(ids)

    def article_chunk_ids(self, doc_ids, number: str) -> list[int]:
        return self.catalog.article_chunk_ids(doc_ids, number)

    def clause_chunk_ids(self, clause_ids) -> dict[str, list[int]]:
        """{clause id: its chunks' ids}, for the clauses the index has."""
        return self.catalog.clause_chunk_ids(clause_ids)

    def clause_paths(self, clause_ids) -> dict[str, tuple[str, ...]]:
        """{clause id: heading path} (cached)."""
        return {c: path for c, (path, _) in self.clause_info(clause_ids).items()}

    def clause_info(self, clause_ids) -> dict[str, tuple[tuple[str, ...], str]]:
        """{clause id: (heading path, copy-ready citation)}, also for a heading without text of its own."""
        missing = [c for c in set(clause_ids) if c not in self._clause_info]
        if missing:
            self._clause_info.update(self.catalog.clause_info(missing))
        return {c: self._clause_info.get(c, ((), "")) for c in clause_ids}

    def dense(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.vectors.search(self.query_vector(query), k, allowed)

    def keyword(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        return self.keywords.search(tokenize(query), k, allowed)

    def search(self, query: str, k: int = 10, *, mode: str = "hybrid", filters: Filters | None = None,
               depth: int = 50, weights: tuple[float, float] = (1.0, 1.0)) -> list[Hit]:
        """Top ``k`` chunks for ``query``. Hybrid mode fuses the dense and BM25 rankings
        (``depth`` candidates each) by weighted reciprocal rank."""
        with self.snapshot():
            return self._search(query, k, mode, filters, depth, weights)

    def _search(self, query: str, k: int, mode: str, filters: Filters | None, depth: int,
                weights: tuple[float, float]) -> list[Hit]:
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

    def document_centroids(self, doc_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray]:
        """(document ids, the unit-length mean of each one's chunk vectors), of ``doc_ids`` or of every
        document: where each stands in the embedder's space, for comparing a question with a whole
        corpus cheaply."""
        wanted = self._ids_by_doc if doc_ids is None else set(doc_ids)
        doc_ids = sorted(d for d, ids in self._ids_by_doc.items() if len(ids) and d in wanted)
        if not doc_ids:
            return [], np.zeros((0, int(self.manifest["embedder"]["dim"])), dtype=np.float32)
        return doc_ids, np.vstack([_unit(self.vectors.mean_vector(self._ids_by_doc[d])) for d in doc_ids])

    def clause_vector(self, clause_id: str) -> np.ndarray | None:
        """The unit-length mean of the clause's chunk vectors (None for a clause not indexed)."""
        ids = self.catalog.clause_chunk_ids([clause_id]).get(clause_id)
        return _unit(self.vectors.mean_vector(np.asarray(ids, dtype=np.int64))) if ids else None

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


__all__ = ["BuildReport", "DEFAULT_INDEX_DIR", "Filters", "KnowledgeIndex", "MODES", "Prepared", "file_digests",
           "document_ids", "prepare", "update_index", "verify_files"]

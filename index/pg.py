"""The shared store: one PostgreSQL database (with pgvector) holds a whole knowledge base.

Documents, clauses and chunks live in the same tables as the local SQLite catalog (schema
``ipqa``); chunk and sentence vectors are pgvector columns with HNSW indexes; the keyword index is
a postings table (token, chunk, term frequency) with the document frequency of every token kept
current in ``terms``, scored as BM25 in SQL with the formula bm25s uses locally (Lucene's idf,
k1 = 1.5, b = 0.75), so both stores rank alike.

Several app servers read one database: every write bumps a version row and sends a NOTIFY, and a
reader compares its version before answering (``KnowledgeIndex.is_stale``). Writes are one
transaction each, serialised by an advisory lock; a writer killed midway leaves the previous
knowledge base as it was.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from corpus.errors import IndexNotBuilt, IpqaError

log = logging.getLogger(__name__)

SCHEMA = "ipqa"
BUILD_SCHEMA = "ipqa_build"  # a full rebuild is written here and renamed to SCHEMA on commit
WRITE_LOCK = 7_318_029_117  # pg_advisory_xact_lock key of ipqa's writers
CHANNEL = "ipqa_changed"
K1, B = 1.5, 0.75  # bm25s's defaults (method "lucene")
# Vectors; below it searches are exact. Lower than the local store's 50,000: an exact scan costs far
# more in SQL (23 ms for 8,851 chunks against 1 ms in FAISS; HNSW 4 ms, recall@50 0.98).
APPROX_THRESHOLD = 20_000
EF_SEARCH = 128
POOL_SIZE = int(os.environ.get("IPQA_PG_POOL", "8"))
_URL = re.compile(r"^postgres(ql)?://", re.I)


class DatabaseUnavailable(IpqaError):
    """The database cannot be reached or used."""

    def __init__(self, url: str, reason: str):
        self.url, self.reason = url, reason
        super().__init__(f"无法使用数据库 {safe_url(url)}：{reason}")


class ReadOnlyDatabase(DatabaseUnavailable):
    """A write sent to a database that only reads: a read replica (hot standby) or one set read-only."""

    def __init__(self, url: str):
        super().__init__(url, "该数据库只读（可能是只读副本），不能建立索引或添加、删除文件；"
                              "请把写入操作的 --store 指向主库")


def is_database_url(location) -> bool:
    return isinstance(location, str) and bool(_URL.match(location.strip()))


def safe_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(str(url))
    if parts.password:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{parts.username}:***@{host}")
    return urlunsplit(parts)


# --- connections -----------------------------------------------------------------------------

_POOLS: dict[tuple[str, str], object] = {}
_POOLS_LOCK = threading.Lock()
WORK_MEM = "64MB"  # per sort or hash of one query, on the pool's few connections


def _configure(schema: str):
    def configure(conn) -> None:
        conn.execute(f"SET search_path TO {schema}, public")
        conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        # pgvector ≥ 0.8: scan on past ef_search until LIMIT rows are found, in exact distance order
        conn.execute("SET hnsw.iterative_scan = strict_order")
        # BM25 sums the postings of every chunk holding a query word (70,000 chunks for common words over
        # the whole law corpus): with the default 4 MB the aggregate spilled to disk (160 of 190 ms).
        conn.execute(f"SET work_mem = '{WORK_MEM}'")
    return configure


def pool(url: str, schema: str = SCHEMA):
    """The process's connection pool for ``url`` (autocommit connections; reads need no transaction)."""
    from psycopg_pool import ConnectionPool

    key = (url, schema)
    with _POOLS_LOCK:
        found = _POOLS.get(key)
        if found is None:
            found = ConnectionPool(url, min_size=1, max_size=POOL_SIZE, kwargs={"autocommit": True},
                                   configure=_configure(schema), open=False, name=f"ipqa-{schema}")
            try:
                found.open(wait=True, timeout=10)
            except Exception as exc:
                found.close()
                raise DatabaseUnavailable(url, f"连接失败（{type(exc).__name__}）") from exc
            _POOLS[key] = found
        return found


def connect(url: str, *, autocommit: bool = False):
    """One connection of its own (a writer's transaction, a listener)."""
    import psycopg

    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(url, f"连接失败（{type(exc).__name__}）") from exc


class _Rows(list):
    """Fetched rows with the cursor methods the SQLite code calls."""

    def fetchall(self):
        return list(self)

    def fetchone(self):
        return self[0] if self else None


_PINNED = threading.local()  # {pool: connection} of this thread's open snapshots


@contextmanager
def snapshot(pool):
    """Every read of this thread from ``pool`` inside sees one committed state of the database,
    whatever writers commit meanwhile: one read-only, repeatable-read transaction on one connection."""
    pinned = _PINNED.__dict__.setdefault("conns", {})
    if pool in pinned:  # nested: the outer snapshot holds
        yield
        return
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pinned[pool] = conn
        try:
            yield
        finally:
            del pinned[pool]


class Facade:
    """SQLite's ``execute`` API over PostgreSQL (``?`` marks become ``%s``), so the catalog's
    reading code runs unchanged: on one writer's connection, on this thread's snapshot, or on a
    pooled connection per call."""

    def __init__(self, pool=None, conn=None):
        self.pool, self.conn = pool, conn

    @contextmanager
    def _connection(self):
        conn = self.conn or _PINNED.__dict__.get("conns", {}).get(self.pool)
        if conn is not None:
            yield conn
            return
        with self.pool.connection() as conn:
            yield conn

    def _run(self, conn, sql: str, params, many: bool):
        sql = sql.replace("?", "%s")
        with conn.cursor() as cur:
            if many:
                cur.executemany(sql, params)
                return _Rows()
            cur.execute(sql, params or None)
            return _Rows(cur.fetchall() if cur.description else [])

    def execute(self, sql: str, params=()):
        with self._connection() as conn:
            return self._run(conn, sql, params, False)

    def executemany(self, sql: str, params):
        with self._connection() as conn:
            return self._run(conn, sql, params, True)

    def close(self) -> None:  # the pool outlives one opened index
        pass


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of a vector."""
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(vector).ravel()) + "]"


# --- schema ----------------------------------------------------------------------------------

def _migration_1(dim: int) -> str:
    return f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value JSONB NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, kind TEXT, issuer TEXT, doc_number TEXT, issued TEXT,
    region TEXT, region_aliases TEXT, period_start INTEGER, period_end INTEGER, collection TEXT, origin TEXT,
    source_path TEXT, source_format TEXT, content_hash TEXT, notes TEXT, revisions TEXT, text TEXT NOT NULL,
    added_at TEXT);
CREATE TABLE clauses (
    clause_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    seq INTEGER, path TEXT, label TEXT, number TEXT, level TEXT, heading TEXT, start INTEGER, "end" INTEGER,
    parent_id TEXT, paragraph_starts TEXT, citation TEXT);
CREATE INDEX clauses_doc ON clauses(doc_id);
CREATE INDEX clauses_number ON clauses(doc_id, number);
CREATE SEQUENCE chunk_ids;
CREATE TABLE chunks (
    id BIGINT PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, clause_id TEXT NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    text TEXT, context TEXT, start INTEGER, "end" INTEGER, part INTEGER, parts INTEGER,
    ntokens INTEGER NOT NULL, embedding vector({dim}) NOT NULL);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE INDEX chunks_hnsw ON chunks USING hnsw (embedding vector_ip_ops);
CREATE TABLE sentences (
    chunk BIGINT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE, pos INTEGER NOT NULL,
    embedding vector({dim}) NOT NULL, PRIMARY KEY (chunk, pos));
CREATE INDEX sentences_hnsw ON sentences USING hnsw (embedding vector_ip_ops);
CREATE TABLE postings (
    token TEXT NOT NULL, chunk BIGINT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE, tf INTEGER NOT NULL,
    PRIMARY KEY (token, chunk));
CREATE INDEX postings_chunk ON postings(chunk);
CREATE TABLE terms (token TEXT PRIMARY KEY, df INTEGER NOT NULL);
"""


def _migration_2(dim: int) -> str:
    """Each posting carries its chunk's length: BM25 reads the postings alone (an index-only scan)
    instead of looking up every matching chunk (120 → 50 ms for ten common words over 35,000 chunks)."""
    return """
ALTER TABLE postings ADD COLUMN ntokens INTEGER;
UPDATE postings p SET ntokens = c.ntokens FROM chunks c WHERE c.id = p.chunk;
ALTER TABLE postings ALTER COLUMN ntokens SET NOT NULL;
CREATE INDEX postings_cover ON postings (token) INCLUDE (chunk, tf, ntokens);
"""


MIGRATIONS = ((1, _migration_1), (2, _migration_2))  # (version, SQL for a vector dimension); append, never edit
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(conn, schema: str, dim: int) -> None:
    """Create ``schema`` or bring it to ``SCHEMA_VERSION`` (in the caller's transaction)."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"SET LOCAL search_path TO {schema}, public")
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, "
                 "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    done = {r[0] for r in conn.execute("SELECT version FROM migrations").fetchall()}
    for version, sql in MIGRATIONS:
        if version not in done:
            conn.execute(sql(dim))
            conn.execute("INSERT INTO migrations (version) VALUES (%s)", (version,))
            log.info("database schema %s: migration %d applied", schema, version)


def schema_exists(conn, schema: str = SCHEMA) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()
    return row is not None and row[0] is not None


def read_meta(db, key: str, default=None):
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def ensure_schema(url: str) -> None:
    """Bring a knowledge base written by an older ipqa to ``SCHEMA_VERSION`` (once, under the
    writers' lock) before reading it. While a writer holds the lock, it migrates (every write does)."""
    with pool(url).connection() as conn:
        done = conn.execute("SELECT MAX(version) FROM migrations").fetchone()[0]
    if done is not None and done >= SCHEMA_VERSION:
        return
    import psycopg

    with connect(url) as conn:
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (WRITE_LOCK,)).fetchone()[0]:
            return
        dim = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'manifest'").fetchone()[0]["embedder"]["dim"]
        try:
            migrate(conn, SCHEMA, int(dim))
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise DatabaseUnavailable(url, "知识库由旧版 ipqa 写入，需要升级表结构，而该数据库只读（可能是只读副本）；"
                                           "请先对主库运行一次 ipqa index --store <主库地址>") from exc
        conn.commit()


def read_manifest(url: str) -> dict:
    """The knowledge base's manifest, with ``documents`` as the local manifest has them."""
    db = Facade(pool(url))
    with pool(url).connection() as conn:
        if not schema_exists(conn):
            raise IndexNotBuilt(safe_url(url))
    ensure_schema(url)
    manifest = dict(read_meta(db, "manifest", {}))
    manifest["version"] = read_meta(db, "version", 0)
    chunks = dict(db.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())
    manifest["documents"] = {
        d: {"content_hash": h, "origin": o, "chunks": chunks.get(d, 0)}
        for d, h, o in db.execute("SELECT doc_id, content_hash, origin FROM documents").fetchall()}
    return manifest


# --- reading: the three stores over SQL ---------------------------------------------------------

def _ids_param(ids) -> list[int]:
    return [int(i) for i in np.asarray(ids, dtype=np.int64).tolist()]


class PgVectors:
    """Chunk vectors in ``chunks.embedding`` (inner product of unit vectors: the cosine)."""

    name = "pgvector"

    def __init__(self, db: Facade, size: int):
        self.db, self.size = db, size

    def __len__(self) -> int:
        return self.size

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The HNSW index answers an unfiltered search of a large table; a filtered one (a SQL
        predicate on the allowed chunks) or a small table is scanned exactly."""
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        q = vector_text(vector)
        if allowed is not None:
            rows = self.db.execute("SELECT id, -(embedding <#> ?::vector) AS s FROM chunks WHERE id = ANY(?) "
                                   "ORDER BY s DESC, id LIMIT ?", (q, _ids_param(allowed), k))
        elif self.size >= APPROX_THRESHOLD:
            rows = self.db.execute("SELECT id, -(embedding <#> ?::vector) FROM chunks "
                                   "ORDER BY embedding <#> ?::vector LIMIT ?", (q, q, k))
        else:
            rows = self.db.execute("SELECT id, -(embedding <#> ?::vector) AS s FROM chunks "
                                   "ORDER BY s DESC, id LIMIT ?", (q, k))
        return [(int(i), float(s)) for i, s in rows]

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        ids = _ids_param(ids)
        if not ids:
            return np.zeros(0, dtype=np.float32)
        found = dict(self.db.execute("SELECT id, -(embedding <#> ?::vector) FROM chunks WHERE id = ANY(?)",
                                     (vector_text(vector), ids)))
        return np.asarray([found.get(i, 0.0) for i in ids], dtype=np.float32)

    def mean_vector(self, ids: np.ndarray) -> np.ndarray:
        """The mean of the stored vectors of ``ids`` (pgvector's ``avg``)."""
        row = self.db.execute("SELECT AVG(embedding)::text FROM chunks WHERE id = ANY(?)", (_ids_param(ids),)).fetchone()
        return np.array(row[0].strip("[]").split(","), dtype=np.float32)


class PgSentences:
    """Sentence vectors (chunk, position in ``sentence_units``): each chunk scored by its best one."""

    name = "pgvector-sentences"

    def __init__(self, db: Facade, size: int):
        self.db, self.size = db, size

    def __len__(self) -> int:
        return self.size

    def best_with_position(self, vector: np.ndarray, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = _ids_param(chunk_ids)
        scores, positions = np.zeros(len(ids), dtype=np.float32), np.zeros(len(ids), dtype=np.int64)
        if not ids:
            return scores, positions
        rows = self.db.execute(
            "SELECT DISTINCT ON (chunk) chunk, pos, -(embedding <#> ?::vector) AS s FROM sentences "
            "WHERE chunk = ANY(?) ORDER BY chunk, s DESC, pos", (vector_text(vector), ids))
        best = {int(c): (float(s), int(p)) for c, p, s in rows}
        for n, c in enumerate(ids):
            scores[n], positions[n] = best.get(c, (0.0, 0))
        return scores, positions

    def best(self, vector: np.ndarray, chunk_ids: np.ndarray) -> np.ndarray:
        return self.best_with_position(vector, chunk_ids)[0]

    def search_chunks(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks whose best sentence is closest, best first."""
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        q = vector_text(vector)
        if allowed is not None:
            rows = self.db.execute(
                "SELECT chunk, MAX(-(embedding <#> ?::vector)) AS s FROM sentences WHERE chunk = ANY(?) "
                "GROUP BY chunk ORDER BY s DESC, chunk LIMIT ?", (q, _ids_param(allowed), k))
            return [(int(c), float(s)) for c, s in rows]
        if self.size >= APPROX_THRESHOLD:
            rows = self.db.execute("SELECT chunk, -(embedding <#> ?::vector) FROM sentences "
                                   "ORDER BY embedding <#> ?::vector LIMIT ?", (q, q, 4 * k))
        else:
            rows = self.db.execute("SELECT chunk, -(embedding <#> ?::vector) AS s FROM sentences "
                                   "ORDER BY s DESC, chunk LIMIT ?", (q, 4 * k))
        best: dict[int, float] = {}
        for c, s in rows:
            best.setdefault(int(c), float(s))
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


# Each query word's idf and the length-normalisation constants are computed once per word, in float8
# (numeric literals such as 0.5 made PostgreSQL compute every posting's term in numeric: 30-50 % slower).
_BM25_SQL = f"""
WITH q AS (SELECT token, SUM(weight) AS weight FROM unnest(?::text[], ?::float8[]) AS u(token, weight)
           GROUP BY token),
     stats AS (SELECT (value->>'chunks')::float8 AS n, (value->>'tokens')::float8 / GREATEST(
               (value->>'chunks')::float8, 1) AS avgdl FROM meta WHERE key = 'stats'),
     w AS (SELECT q.token, q.weight * ln(1 + (stats.n - t.df + 0.5::float8) / (t.df + 0.5::float8)) AS idf,
                  {K1}::float8 * (1 - {B}::float8) AS k0, {K1}::float8 * {B}::float8 / stats.avgdl AS k1
           FROM q JOIN terms t ON t.token = q.token CROSS JOIN stats)
SELECT p.chunk, SUM(w.idf * p.tf / (w.k0 + w.k1 * p.ntokens + p.tf)) AS score
FROM w JOIN postings p ON p.token = w.token
"""


# BM25 of two queries over the same postings in one pass (a question, and the question with its feedback
# terms at their weights), returning only each query's top ``k`` and the ids asked for: the rows of every
# chunk holding a query word (tens of thousands over a large corpus) stay in the database.
_BM25_PAIR_SQL = f"""
WITH q AS (SELECT token, SUM(w0) AS w0, SUM(w1) AS w1
           FROM unnest(?::text[], ?::float8[], ?::float8[]) AS u(token, w0, w1) GROUP BY token),
     stats AS (SELECT (value->>'chunks')::float8 AS n, (value->>'tokens')::float8 / GREATEST(
               (value->>'chunks')::float8, 1) AS avgdl FROM meta WHERE key = 'stats'),
     w AS (SELECT q.token, ln(1 + (stats.n - t.df + 0.5::float8) / (t.df + 0.5::float8)) AS idf, q.w0, q.w1,
                  {K1}::float8 * (1 - {B}::float8) AS k0, {K1}::float8 * {B}::float8 / stats.avgdl AS k1
           FROM q JOIN terms t ON t.token = q.token CROSS JOIN stats),
     s AS MATERIALIZED (
           SELECT p.chunk, SUM(w.w0 * w.idf * p.tf / (w.k0 + w.k1 * p.ntokens + p.tf)) AS s0,
                  SUM(w.w1 * w.idf * p.tf / (w.k0 + w.k1 * p.ntokens + p.tf)) AS s1
           FROM w JOIN postings p ON p.token = w.token {{where}} GROUP BY p.chunk)
SELECT chunk, s0, s1 FROM s
WHERE chunk IN (SELECT chunk FROM s WHERE s0 > 0 ORDER BY s0 DESC, chunk LIMIT ?)
   OR chunk IN (SELECT chunk FROM s WHERE s1 > 0 ORDER BY s1 DESC, chunk LIMIT ?)
   OR chunk = ANY(?)
ORDER BY chunk
"""


class PgKeywords:
    """BM25 over the postings table, scored in SQL."""

    name = "postgresql-bm25"

    def __init__(self, db: Facade, size: int):
        self.db, self.size = db, size
        self._vocabulary: set[str] | None = None

    def __len__(self) -> int:
        return self.size

    def weighted_scores(self, weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, Σ weight × BM25 score of the token) of every chunk holding a weighted token (the
        others score 0 and are left out)."""
        terms = [(t, float(w)) for t, w in weights.items() if w]
        if not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows = self.db.execute(_BM25_SQL + " GROUP BY p.chunk ORDER BY p.chunk",
                               ([t for t, _ in terms], [w for _, w in terms]))
        return (np.asarray([r[0] for r in rows], dtype=np.int64),
                np.asarray([r[1] for r in rows], dtype=np.float32))

    def scores(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, BM25 score) for a tokenised query (a repeated token counts again, as in bm25s)."""
        return self.weighted_scores(dict(Counter(tokens)))

    def search(self, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        counts = Counter(tokens)
        if k <= 0 or not counts or (allowed is not None and len(allowed) == 0):
            return []
        where, params = "", [list(counts), [float(v) for v in counts.values()]]
        if allowed is not None:
            where, params = " WHERE p.chunk = ANY(?)", params + [_ids_param(allowed)]
        rows = self.db.execute(_BM25_SQL + where + " GROUP BY p.chunk ORDER BY score DESC, p.chunk LIMIT ?",
                               (*params, k))
        return [(int(c), float(s)) for c, s in rows if s > 0]

    def candidates(self, tokens: list[str], weights: dict[str, float], k: int, allowed: np.ndarray | None,
                   among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``BM25Store.candidates`` in one query: both queries scored in one pass over the postings."""
        plain = Counter(tokens)
        words = list(dict.fromkeys([*plain, *(t for t, w in weights.items() if w)]))
        if not words or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.float32)
        params = [words, [float(plain.get(t, 0)) for t in words], [float(weights.get(t, 0.0)) for t in words]]
        where = ""
        if allowed is not None:
            where, params = "WHERE p.chunk = ANY(?)", params + [_ids_param(allowed)]
        rows = self.db.execute(_BM25_PAIR_SQL.format(where=where), (*params, k, k, _ids_param(among)))
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        scores = np.asarray([[r[1], r[2]] for r in rows], dtype=np.float32).reshape(len(ids), 2)
        if len(among):  # an id asked for that holds no query word scores 0 on both
            missing = np.setdiff1d(np.asarray(among, dtype=np.int64), ids)
            ids = np.concatenate([ids, missing])
            scores = np.concatenate([scores, np.zeros((len(missing), 2), dtype=np.float32)])
            order = np.argsort(ids, kind="stable")
            ids, scores = ids[order], scores[order]
        return ids, scores

    def document_frequencies(self, tokens: list[str]) -> tuple[dict[str, int], int]:
        wanted = list(dict.fromkeys(tokens))
        freqs = dict(self.db.execute("SELECT token, df FROM terms WHERE token = ANY(?)", (wanted,))) if wanted else {}
        return {t: int(v) for t, v in freqs.items()}, self.size

    def forget(self) -> None:
        self._vocabulary = None

    def vocabulary(self) -> set[str]:
        """Every token of the indexed chunks (read once per version)."""
        if self._vocabulary is None:
            self._vocabulary = {r[0] for r in self.db.execute("SELECT token FROM terms")}
        return self._vocabulary


def open_stores(url: str):
    """(manifest, catalog facade, Stores) of the knowledge base at ``url`` (within a ``snapshot``
    of its pool, all of one version)."""
    from index.build import Stores

    manifest = read_manifest(url)
    db = Facade(pool(url))
    stores = Stores(PgVectors(db, 0), PgSentences(db, 0), PgKeywords(db, 0))
    refresh_stores(stores)
    return manifest, db, stores


def refresh_stores(stores) -> None:
    """Bring the stores' sizes (and cached vocabulary) to the version being read."""
    db = stores.vectors.db
    chunks = int((read_meta(db, "stats", {}) or {}).get("chunks", 0))
    stores.vectors.size = stores.keywords.size = chunks
    stores.sentences.size = int(db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0])
    stores.keywords.forget()


# What every search and write reads first: the two HNSW graphs and the postings' covering index.
PREWARMED = ("chunks_hnsw", "sentences_hnsw", "postings_cover", "terms_pkey")


def prewarm(url: str) -> int:
    """Read the knowledge base's vector graphs and keyword index into the server's memory (the
    ``pg_prewarm`` extension, shipped with PostgreSQL), so the first search and the first write after
    the database restarted do not read them from disk page by page. Returns the pages read; 0 where
    the extension is not installed and cannot be (no privilege, a read replica without it)."""
    import psycopg

    try:
        with connect(url, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_prewarm'").fetchone():
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            return sum(conn.execute("SELECT pg_prewarm(to_regclass(%s), 'read')", (f"{SCHEMA}.{name}",)).fetchone()[0]
                       for name in PREWARMED
                       if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{name}",)).fetchone()[0])
    except psycopg.Error as exc:
        log.info("%s: not prewarmed (%s)", safe_url(url), exc)
        return 0


def current_version(url: str) -> int:
    return int(read_meta(Facade(pool(url)), "version", 0) or 0)


def disk_bytes(url: str) -> int:
    """What the knowledge base takes in the database: its tables, indexes and TOAST."""
    row = Facade(pool(url)).execute(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind = 'r'", (SCHEMA,)).fetchone()
    return int(row[0])


def close_pools() -> None:
    with _POOLS_LOCK:
        for p in _POOLS.values():
            p.close()
        _POOLS.clear()

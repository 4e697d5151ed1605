"""Re-embedding a PostgreSQL knowledge base with another embedder (``ipqa index --reembed --store …``).

The same two phases as a folder's (``index.reembed``), and the same shards, kept in a local work
folder so a stopped run continues. Phase two writes a complete copy of the knowledge base, with the
new vectors and everything else as stored (documents, clauses, chunks, postings, word statistics),
into a schema of its own and builds its HNSW indexes there, in one transaction and without the
writers' lock: readers and writers go on meanwhile. Then it takes the lock, checks that no write
committed since the copy began (the version row), and renames the copy into place in the same
transaction. A run killed at any point leaves the knowledge base as it was; a write made meanwhile
makes it stop with ``IndexChanged`` (run again: the shards are kept).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from corpus.errors import IndexChanged, IndexMismatch
from index.build import BuildReport, timestamp
from index.catalog import Catalog
from index.chunking import ChunkerSettings
from index.embedders import Embedder
from index.folder import failpoint
from index.manifest import check_manifest
from index.pg import CHANNEL, SCHEMA, Facade, connect, migrate, pool, read_manifest, safe_url, vector_text
from index.pg_write import HNSW, _lock, _writable
from index.reembed import Progress, embed_missing, remove_work, vectors_by_document

log = logging.getLogger(__name__)

REEMBED_SCHEMA = "ipqa_reembed"  # the copy with the new vectors, renamed to SCHEMA on commit
_CHUNK_COLUMNS = 'id, chunk_id, clause_id, doc_id, text, context, start, "end", part, parts, ntokens'


def reembed_database(url: str, embedder: Embedder, work: Path, *, settings: ChunkerSettings = ChunkerSettings(),
                     on_progress: Progress | None = None) -> BuildReport:
    """Give the knowledge base at ``url`` the vectors of ``embedder``, keeping everything else.
    ``work`` holds the shards between runs (removed when done)."""
    started = time.perf_counter()
    report = BuildReport()
    _writable(url)
    manifest = read_manifest(url)
    check_manifest(manifest, safe_url(url))
    if manifest.get("chunker") != settings.as_dict():
        raise IndexMismatch("知识库建立时的切分设置与当前设置不同", safe_url(url))
    work.mkdir(parents=True, exist_ok=True)
    documents = dict(manifest.get("documents", {}))
    catalog = Catalog(db=Facade(pool(url)))
    embed_missing(catalog, documents, embedder, settings, work, report, on_progress)
    with connect(url) as conn:
        _copy_with_vectors(conn, catalog, documents, embedder, settings, work, report, url)
        _lock(conn, url)
        locked_at = time.perf_counter()
        now = conn.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'version'").fetchone()
        if (now[0] if now else 0) != manifest.get("version", 0):
            raise IndexChanged(safe_url(url), "a write was committed meanwhile")
        report.counts = _swap(conn, manifest, embedder)
        conn.commit()
        report.locked_seconds = time.perf_counter() - locked_at
    remove_work(work)
    report.total_seconds = time.perf_counter() - started
    return report


def _copy_with_vectors(conn, catalog: Catalog, documents: dict, embedder: Embedder, settings: ChunkerSettings,
                       work: Path, report: BuildReport, url: str) -> None:
    """The knowledge base copied into REEMBED_SCHEMA with the new vectors (in the caller's transaction)."""
    new = REEMBED_SCHEMA
    conn.execute(f"DROP SCHEMA IF EXISTS {new} CASCADE")
    migrate(conn, new, embedder.dim)
    conn.execute("DROP INDEX " + ", ".join(f"{new}.{name}" for name in HNSW))  # built once, after the rows
    for table in ("meta", "documents", "clauses"):
        conn.execute(f"INSERT INTO {new}.{table} SELECT * FROM {SCHEMA}.{table}")
    _stream_vectors(conn, vectors_by_document(catalog, documents, embedder, settings, work, safe_url(url)),
                    embedder.dim, report)
    copied = conn.execute(f"INSERT INTO {new}.chunks ({_CHUNK_COLUMNS}, embedding) SELECT "
                          f"c.{_CHUNK_COLUMNS.replace(', ', ', c.')}, n.embedding FROM {SCHEMA}.chunks c "
                          "JOIN new_vectors n ON n.id = c.id AND n.pos = -1").rowcount
    stored = conn.execute(f"SELECT COUNT(*) FROM {SCHEMA}.chunks").fetchone()[0]
    if copied != stored or copied != report.chunks_embedded:
        raise IndexChanged(safe_url(url), f"{report.chunks_embedded} chunks embedded, {stored} stored")
    conn.execute(f"INSERT INTO {new}.sentences (chunk, pos, embedding) "
                 "SELECT id, pos, embedding FROM new_vectors WHERE pos >= 0")
    conn.execute(f"INSERT INTO {new}.postings (token, chunk, tf, ntokens) "
                 f"SELECT token, chunk, tf, ntokens FROM {SCHEMA}.postings")
    conn.execute(f"INSERT INTO {new}.terms SELECT * FROM {SCHEMA}.terms")
    conn.execute(f"SELECT setval('{new}.chunk_ids', last_value, is_called) FROM {SCHEMA}.chunk_ids")
    for name, target in HNSW.items():
        conn.execute(f"CREATE INDEX {name} ON {new}.{target}")
    log.info("%s: copy with %s's vectors written", safe_url(url), embedder.name)


def _stream_vectors(conn, per_document, dim: int, report: BuildReport) -> None:
    """Every new vector into the temporary table ``new_vectors`` as it is read from the shards (a chunk's
    own at position -1, its sentences' from 0), so none is held in memory."""
    conn.execute(f"CREATE TEMP TABLE new_vectors (id BIGINT NOT NULL, pos INTEGER NOT NULL, "
                 f"embedding vector({dim}) NOT NULL, PRIMARY KEY (id, pos)) ON COMMIT DROP")
    with conn.cursor() as cur, cur.copy("COPY new_vectors (id, pos, embedding) FROM STDIN") as copy:
        for ids, vectors, per_chunk in per_document:
            for i, v, rows in zip(ids.tolist(), vectors, per_chunk):
                copy.write_row((i, -1, vector_text(v)))
                for j, row in enumerate(rows):
                    copy.write_row((i, j, vector_text(row)))
            report.chunks_embedded += len(ids)


def _swap(conn, manifest: dict, embedder: Embedder) -> dict[str, int]:
    """Under the lock: the copy records its embedder and a new version, and takes the old one's place."""
    new = REEMBED_SCHEMA
    stored = conn.execute(f"SELECT value FROM {new}.meta WHERE key = 'manifest'").fetchone()[0]
    stored.update(embedder={"name": embedder.name, "dim": embedder.dim}, reembedded_at=timestamp(),
                  updated_at=timestamp())
    version = int(manifest.get("version", 0)) + 1
    for key, value in (("manifest", stored), ("version", version)):
        conn.execute(f"UPDATE {new}.meta SET value = %s::jsonb WHERE key = %s", (json.dumps(value, ensure_ascii=False), key))
    conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    conn.execute(f"ALTER SCHEMA {new} RENAME TO {SCHEMA}")
    failpoint("stored")
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
    return dict(stored.get("counts", {}))


__all__ = ["REEMBED_SCHEMA", "reembed_database"]

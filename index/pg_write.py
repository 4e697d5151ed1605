"""Writing a knowledge base into PostgreSQL: one transaction per update, one writer at a time.

As with the local folder (``index.build``), the costly part (chunking, embedding, tokenising) runs
before the writers' lock. Then one transaction takes the advisory lock, plans again against what
is stored now, removes and adds documents, refreshes the BM25 statistics, bumps the version and
notifies the readers. A full rebuild is written into a schema of its own and renamed into place
in the same transaction, so readers keep the old knowledge base until the commit. A writer killed
at any point leaves the previous knowledge base intact: PostgreSQL rolls the transaction back.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from corpus.types import Document
from index.build import BuildReport, Prepared, Progress, timestamp, plan_update, prepare
from index.catalog import clause_rows, document_row
from index.chunking import ChunkerSettings
from index.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from index.folder import failpoint
from index.manifest import check_manifest, new_manifest
from index.registry import KINDS
from index.pg import (BUILD_SCHEMA, CHANNEL, SCHEMA, WRITE_LOCK, ReadOnlyDatabase, connect, migrate, read_manifest,
                      safe_url, schema_exists, vector_text)

log = logging.getLogger(__name__)

HNSW = {"chunks_hnsw": "chunks USING hnsw (embedding vector_ip_ops)",
        "sentences_hnsw": "sentences USING hnsw (embedding vector_ip_ops)"}
EMPTY_TOKEN = "\u2205"  # a chunk without words keeps one token, as in the local BM25 store


def _writable(url: str) -> None:
    """Refuse, before any embedding, a database that cannot take writes (a read replica)."""
    with connect(url, autocommit=True) as conn:
        standby, read_only = conn.execute(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'").fetchone()
    if standby or read_only:
        raise ReadOnlyDatabase(url)


def _lock(conn, url: str) -> None:
    """Take the writers' lock for this transaction; say so when another writer holds it."""
    if conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (WRITE_LOCK,)).fetchone()[0]:
        return
    print(f"另一个写入正在更新数据库 {safe_url(url)} 中的知识库，等待其完成后继续……", file=sys.stderr, flush=True)
    log.info("waiting for another writer of %s", safe_url(url))
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))


def _current(url: str, conn) -> dict | None:
    """The stored manifest, or None when the database holds no knowledge base yet."""
    return read_manifest(url) if schema_exists(conn) else None


def _state(url: str, conn, embedder: Embedder | None, settings: ChunkerSettings, rebuild: bool):
    """(fresh, current manifest, embedder), refusing a knowledge base of another embedder or chunking."""
    manifest = _current(url, conn)
    if rebuild or manifest is None:
        return True, manifest or {}, embedder or get_embedder(DEFAULT_EMBEDDER)
    embedder = embedder or get_embedder(manifest.get("embedder", {}).get("name"))
    check_manifest(manifest, safe_url(url), embedder.name)
    if manifest.get("chunker") != settings.as_dict():
        from corpus.errors import IndexMismatch

        raise IndexMismatch("知识库建立时的切分设置与当前设置不同", safe_url(url))
    return False, manifest, embedder


def _remove(conn, doc_id: str, totals: Counter) -> None:
    """Delete one document; its words' document frequencies and the stored totals go down with it."""
    clauses = conn.execute("SELECT COUNT(*) FROM clauses WHERE doc_id = %s", (doc_id,)).fetchone()[0]
    chunks, tokens = conn.execute("SELECT COUNT(*), COALESCE(SUM(ntokens), 0) FROM chunks WHERE doc_id = %s",
                                  (doc_id,)).fetchone()
    totals.subtract({"documents": 1, "clauses": clauses, "chunks": chunks, "tokens": tokens})
    dropped = [token for token, df in conn.execute(
        "UPDATE terms t SET df = t.df - d.n FROM (SELECT p.token, COUNT(*) AS n FROM postings p "
        "JOIN chunks c ON c.id = p.chunk WHERE c.doc_id = %s GROUP BY p.token) d WHERE t.token = d.token "
        "RETURNING t.token, t.df", (doc_id,)).fetchall() if df <= 0]
    if dropped:  # words no chunk holds any more
        conn.execute("DELETE FROM terms WHERE token = ANY(%s) AND df <= 0", (dropped,))
    conn.execute("DELETE FROM documents WHERE doc_id = %s", (doc_id,))


def _copy(cur, table: str, columns: str, rows: Iterable[tuple]) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _add(conn, p: Prepared, df: Counter, totals: Counter) -> None:
    """Insert one prepared document: its rows, vectors and postings (document frequencies into ``df``,
    its rows into ``totals``)."""
    conn.execute("INSERT INTO documents VALUES (" + ",".join(["%s"] * 19) + ")", document_row(p.doc, p.origin))
    clauses = clause_rows(p.doc)
    totals.update(documents=1, clauses=len(clauses))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO clauses VALUES (" + ",".join(["%s"] * 13) + ")", clauses)
        if not p.chunks:
            return
        cur.execute("SELECT nextval('chunk_ids') FROM generate_series(1, %s)", (len(p.chunks),))
        ids = [r[0] for r in cur.fetchall()]
        counts = [Counter(tokens) or Counter({EMPTY_TOKEN: 1}) for tokens in p.tokens]
        _copy(cur, "chunks", 'id, chunk_id, clause_id, doc_id, text, context, start, "end", part, parts, ntokens, '
              'embedding', ((i, c.chunk_id, c.clause_id, c.doc_id, c.text, c.context, c.start, c.end, c.part, c.parts,
                             sum(n.values()), vector_text(v)) for i, c, n, v in zip(ids, p.chunks, counts, p.vectors)))
        _copy(cur, "sentences", "chunk, pos, embedding",
              ((i, j, vector_text(v)) for i, rows in zip(ids, p.sentence_vectors) for j, v in enumerate(rows)))
        _copy(cur, "postings", "token, chunk, tf, ntokens",
              ((t, i, n, sum(c.values())) for i, c in zip(ids, counts) for t, n in c.items()))
    for c in counts:
        df.update(c.keys())
    totals.update(chunks=len(counts), tokens=sum(sum(c.values()) for c in counts))


def _totals(conn, fresh: bool) -> Counter:
    """The rows the knowledge base holds before this write: kept in ``meta`` and carried by each write,
    so a write does not count every row of a large knowledge base."""
    totals: Counter = Counter(dict.fromkeys(("documents", "clauses", "chunks", "tokens"), 0))
    if fresh:
        return totals
    stored = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('manifest', 'stats')").fetchall())
    counts, stats = stored.get("manifest", {}).get("counts", {}), stored.get("stats", {})
    if all(k in counts for k in ("documents", "clauses")) and all(k in stats for k in ("chunks", "tokens")):
        totals.update(documents=counts["documents"], clauses=counts["clauses"], chunks=stats["chunks"],
                      tokens=stats["tokens"])
        return totals
    for key, sql in (("documents", "SELECT COUNT(*) FROM documents"), ("clauses", "SELECT COUNT(*) FROM clauses"),
                     ("chunks", "SELECT COUNT(*) FROM chunks"), ("tokens", "SELECT COALESCE(SUM(ntokens), 0) FROM chunks")):
        totals[key] = int(conn.execute(sql).fetchone()[0])
    return totals


def _finish(conn, manifest: dict, version: int, totals: Counter) -> dict[str, int]:
    """Store the BM25 statistics, the counts and the version; returns the counts."""
    counts = {k: int(totals[k]) for k in ("documents", "clauses", "chunks")}
    stored = {k: v for k, v in manifest.items() if k not in ("documents", "files", "version")}
    stored.update(counts=counts, updated_at=timestamp(), store=dict(KINDS["postgresql"].stores))
    for key, value in (("stats", {"chunks": counts["chunks"], "tokens": int(totals["tokens"])}), ("manifest", stored),
                       ("version", version)):
        conn.execute("INSERT INTO meta VALUES (%s, %s::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                     (key, json.dumps(value, ensure_ascii=False)))
    return counts


def _write(conn, plan, items: Sequence[Prepared], manifest: dict, embedder: Embedder, settings: ChunkerSettings,
           fresh: bool) -> dict[str, int]:
    """Apply the plan in the caller's transaction; a fresh build goes to its own schema first."""
    version = int(manifest.get("version", 0)) + 1
    if fresh:
        conn.execute(f"DROP SCHEMA IF EXISTS {BUILD_SCHEMA} CASCADE")
        migrate(conn, BUILD_SCHEMA, embedder.dim)
        conn.execute("DROP INDEX " + ", ".join(HNSW))  # built once, after the rows: much faster
        manifest = new_manifest(embedder.name, embedder.dim, settings.as_dict(), timestamp())
    else:
        migrate(conn, SCHEMA, embedder.dim)
    totals = _totals(conn, fresh)
    for doc_id in plan.to_remove:
        _remove(conn, doc_id, totals)
    df: Counter = Counter()
    for p in items:
        _add(conn, p, df, totals)
    if df:
        conn.execute("INSERT INTO terms SELECT * FROM unnest(%s::text[], %s::int[]) ON CONFLICT (token) "
                     "DO UPDATE SET df = terms.df + EXCLUDED.df", (list(df), list(df.values())))
    counts = _finish(conn, manifest, version, totals)
    if fresh:
        for name, target in HNSW.items():
            conn.execute(f"CREATE INDEX {name} ON {target}")
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"ALTER SCHEMA {BUILD_SCHEMA} RENAME TO {SCHEMA}")
    failpoint("stored")
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
    return counts


def _prepare_early(url: str, add, embedder, settings, rebuild, report, progress, on_progress):
    """Phase one before the lock, planned against the knowledge base as it is now."""
    if not add:
        return {}, embedder
    with connect(url, autocommit=True) as conn:
        fresh, manifest, embedder = _state(url, conn, embedder, settings, rebuild)
    plan = plan_update({} if fresh else manifest.get("documents", {}), add, (), (), BuildReport())
    ready = prepare(plan.to_add, embedder, settings, report, progress=progress, on_progress=on_progress)
    return {p.key: p for p in ready}, embedder


def update_database(url: str, *, add: Sequence[tuple[Document, str]] = (), remove: Iterable[str] = (),
                    prune_origins: Iterable[str] = (), embedder: Embedder | None = None,
                    settings: ChunkerSettings = ChunkerSettings(), rebuild: bool = False, progress: bool = False,
                    on_progress: Progress | None = None) -> BuildReport:
    """``index.build.update_index`` for a PostgreSQL knowledge base (the same arguments and report)."""
    started = time.perf_counter()
    report = BuildReport()
    _writable(url)
    ready, embedder = _prepare_early(url, add, embedder, settings, rebuild, report, progress, on_progress)
    with connect(url) as conn:
        _lock(conn, url)
        locked_at = time.perf_counter()
        failpoint("locked")
        fresh, manifest, embedder = _state(url, conn, embedder, settings, rebuild)
        plan = plan_update({} if fresh else manifest.get("documents", {}), add, remove, prune_origins, report)
        if fresh or plan.to_add or plan.to_remove:
            keys = {(d.doc_id, d.content_hash, embedder.name): (d, o) for d, o in plan.to_add}
            late = [pair for key, pair in keys.items() if key not in ready]
            items = [ready[k] for k in keys if k in ready] + prepare(late, embedder, settings, report,
                                                                     progress=progress)
            order = {key: n for n, key in enumerate(keys)}
            items.sort(key=lambda p: order[p.key])
            report.counts = _write(conn, plan, items, manifest, embedder, settings, fresh)
        else:
            report.counts = dict(manifest.get("counts", {}))
        conn.commit()
        report.locked_seconds = time.perf_counter() - locked_at
    report.total_seconds = time.perf_counter() - started
    return report

"""SQLite catalog of an index: documents, clauses and chunks with their metadata.

Chunk rows' integer ids are the ids the vector and keyword stores use.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.regions import short_name
from corpus.types import Chunk, Clause, Document, Revision

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    kind TEXT, issuer TEXT, doc_number TEXT, issued TEXT,
    region TEXT, region_aliases TEXT, period_start INTEGER, period_end INTEGER,
    collection TEXT, origin TEXT, source_path TEXT, source_format TEXT, content_hash TEXT,
    notes TEXT, revisions TEXT, text TEXT NOT NULL, added_at TEXT
);
CREATE TABLE IF NOT EXISTS clauses (
    clause_id TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    seq INTEGER, path TEXT, label TEXT, number TEXT, level TEXT, heading TEXT,
    start INTEGER, "end" INTEGER, parent_id TEXT, paragraph_starts TEXT, citation TEXT
);
CREATE INDEX IF NOT EXISTS clauses_doc ON clauses(doc_id);
CREATE INDEX IF NOT EXISTS clauses_number ON clauses(doc_id, number);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    chunk_id TEXT UNIQUE NOT NULL,
    clause_id TEXT NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    text TEXT, context TEXT, start INTEGER, "end" INTEGER, part INTEGER, parts INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""


@dataclass(frozen=True)
class DocInfo:
    """A document's metadata as stored in the index (without its clauses)."""

    doc_id: str
    title: str
    kind: str
    issuer: str | None
    doc_number: str | None
    issued: dt.date | None
    region: tuple[str, ...]
    region_aliases: tuple[str, ...]
    period: tuple[int, int] | None
    collection: str
    origin: str
    source_path: str
    source_format: str
    content_hash: str
    clauses: int = 0
    chunks: int = 0

    def matches_region(self, name: str) -> bool:
        """True when ``name`` is the document's region, one of its parents, or an alias."""
        name = name.strip()
        names = set(self.region) | set(self.region_aliases) | {short_name(r) for r in self.region}
        return name in names or short_name(name) in names

    def covers_years(self, first: int, last: int) -> bool:
        """Issued within, or a period overlapping, the years first..last."""
        if self.period and self.period[0] <= last and self.period[1] >= first:
            return True
        return bool(self.issued and first <= self.issued.year <= last)


def document_row(doc: Document, origin: str) -> tuple:
    """The ``documents`` row of a document (both catalogs: SQLite and PostgreSQL)."""
    return (doc.doc_id, doc.title, doc.kind, doc.issuer, doc.doc_number,
            doc.issued.isoformat() if doc.issued else None, json.dumps(doc.region, ensure_ascii=False),
            json.dumps(doc.region_aliases, ensure_ascii=False),
            doc.period[0] if doc.period else None, doc.period[1] if doc.period else None,
            doc.collection, origin, doc.source_path, doc.source_format, doc.content_hash,
            json.dumps(doc.notes, ensure_ascii=False),
            json.dumps([(r.date.isoformat(), r.note) for r in doc.revisions], ensure_ascii=False),
            doc.text, dt.datetime.now().isoformat(timespec="seconds"))


def clause_rows(doc: Document) -> list[tuple]:
    """The ``clauses`` rows of a document, in its order."""
    return [(c.clause_id, doc.doc_id, i, json.dumps(c.path, ensure_ascii=False), c.label, c.number, c.level,
             c.heading, c.start, c.end, c.parent_id, json.dumps(c.paragraph_starts), doc.citation(c))
            for i, c in enumerate(doc.clauses)]


class Catalog:
    """The catalog's tables, in a SQLite file (``path``) or behind ``db``, a connection with
    SQLite's ``execute`` API (index.pg's facade over a PostgreSQL pool reads the same tables)."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False, db=None):
        if db is not None:
            self.path, self.db = None, db
            return
        self.path = Path(path)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- writing ---------------------------------------------------------------

    def add_document(self, doc: Document, chunks: Sequence[Chunk], *, origin: str) -> np.ndarray:
        """Insert a document with its clauses and chunks; returns the chunks' integer ids."""
        db = self.db
        db.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", document_row(doc, origin))
        db.executemany("INSERT INTO clauses VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", clause_rows(doc))
        ids = []
        for ch in chunks:
            cur = db.execute(
                "INSERT INTO chunks (chunk_id, clause_id, doc_id, text, context, start, \"end\", part, parts) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (ch.chunk_id, ch.clause_id, ch.doc_id, ch.text, ch.context, ch.start, ch.end, ch.part, ch.parts))
            ids.append(cur.lastrowid)
        return np.asarray(ids, dtype=np.int64)

    def delete_document(self, doc_id: str) -> np.ndarray:
        """Remove a document; returns the integer ids its chunks had."""
        ids = self.chunk_ids(doc_id)
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.db.execute("DELETE FROM clauses WHERE doc_id = ?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return ids

    def commit(self) -> None:
        self.db.commit()

    # --- reading ---------------------------------------------------------------

    def chunk_ids(self, doc_id: str) -> np.ndarray:
        rows = self.db.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY id", (doc_id,)).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def chunk_ids_by_doc(self) -> dict[str, np.ndarray]:
        out: dict[str, list[int]] = {}
        for cid, doc_id in self.db.execute("SELECT id, doc_id FROM chunks ORDER BY id"):
            out.setdefault(doc_id, []).append(cid)
        return {d: np.asarray(v, dtype=np.int64) for d, v in out.items()}

    def documents(self) -> list[DocInfo]:
        counts = dict(self.db.execute("SELECT doc_id, COUNT(*) FROM clauses GROUP BY doc_id"))
        chunk_counts = dict(self.db.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id"))
        rows = self.db.execute(
            "SELECT doc_id, title, kind, issuer, doc_number, issued, region, region_aliases, period_start, "
            "period_end, collection, origin, source_path, source_format, content_hash FROM documents "
            "ORDER BY collection, doc_id").fetchall()
        return [DocInfo(
            doc_id=r[0], title=r[1], kind=r[2] or "", issuer=r[3], doc_number=r[4],
            issued=dt.date.fromisoformat(r[5]) if r[5] else None, region=tuple(json.loads(r[6] or "[]")),
            region_aliases=tuple(json.loads(r[7] or "[]")),
            period=(r[8], r[9]) if r[8] is not None else None, collection=r[10] or "", origin=r[11] or "",
            source_path=r[12] or "", source_format=r[13] or "", content_hash=r[14] or "",
            clauses=counts.get(r[0], 0), chunks=chunk_counts.get(r[0], 0)) for r in rows]

    def chunks(self, ids: Iterable[int]) -> dict[int, Chunk]:
        ids = [int(i) for i in ids]
        out: dict[int, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in self.db.execute(
                    f"SELECT id, chunk_id, clause_id, doc_id, text, context, start, \"end\", part, parts "
                    f"FROM chunks WHERE id IN ({marks})", part):
                out[r[0]] = Chunk(chunk_id=r[1], clause_id=r[2], doc_id=r[3], text=r[4], context=r[5],
                                  start=r[6], end=r[7], part=r[8], parts=r[9])
        return out

    def article_chunk_ids(self, doc_ids: Iterable[str], number: str) -> list[int]:
        """Chunks of the clauses numbered ``number`` (第42条) in these documents, in document order.
        One query whatever the number of documents (a question naming an article but no law looks
        in all of them: 3,472 queries, each scanning the chunks, took minutes on the whole corpus)."""
        order = {d: i for i, d in enumerate(dict.fromkeys(doc_ids))}
        rows = self.db.execute(
            "SELECT ch.id, ch.doc_id FROM clauses cl JOIN chunks ch "
            "ON ch.doc_id = cl.doc_id AND ch.clause_id = cl.clause_id WHERE cl.number = ?", (number,)).fetchall()
        return [i for i, d in sorted((r for r in rows if r[1] in order), key=lambda r: (order[r[1]], r[0]))]

    def clause_chunk_ids(self, clause_ids: Iterable[str]) -> dict[str, list[int]]:
        """{clause id: its chunks' ids} for the clauses this catalog has (a clause id starts with its
        document's id, which is indexed)."""
        by_doc: dict[str, list[str]] = {}
        for cid in set(clause_ids):
            by_doc.setdefault(cid.split(":", 1)[0], []).append(cid)
        out: dict[str, list[int]] = {}
        for doc_id, ids in sorted(by_doc.items()):
            marks = ",".join("?" * len(ids))
            for chunk, clause in self.db.execute(
                    f"SELECT id, clause_id FROM chunks WHERE doc_id = ? AND clause_id IN ({marks}) ORDER BY id",
                    (doc_id, *ids)):
                out.setdefault(clause, []).append(chunk)
        return out

    def clause_info(self, clause_ids: Iterable[str]) -> dict[str, tuple[tuple[str, ...], str]]:
        """clause_id -> (heading path, copy-ready citation)."""
        ids = list(set(clause_ids))
        out = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for cid, path, citation in self.db.execute(
                    f"SELECT clause_id, path, citation FROM clauses WHERE clause_id IN ({marks})", part):
                out[cid] = (tuple(json.loads(path)), citation or "")
        return out

    def document(self, doc_id: str) -> Document | None:
        """The full document record (text and clauses) as it was indexed."""
        r = self.db.execute(
            "SELECT doc_id, title, kind, issuer, doc_number, issued, region, region_aliases, period_start, "
            "period_end, collection, source_path, source_format, content_hash, notes, revisions, text "
            "FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if r is None:
            return None
        clauses = tuple(
            Clause(clause_id=c[0], doc_id=doc_id, path=tuple(json.loads(c[1])), label=c[2], number=c[3],
                   level=c[4], heading=c[5], text=r[16][c[6]:c[7]], start=c[6], end=c[7], parent_id=c[8],
                   paragraph_starts=tuple(json.loads(c[9])))
            for c in self.db.execute(
                "SELECT clause_id, path, label, number, level, heading, start, \"end\", parent_id, paragraph_starts "
                "FROM clauses WHERE doc_id = ? ORDER BY seq", (doc_id,)))
        return Document(
            doc_id=r[0], title=r[1], text=r[16], clauses=clauses, kind=r[2] or "", issuer=r[3], doc_number=r[4],
            issued=dt.date.fromisoformat(r[5]) if r[5] else None, region=tuple(json.loads(r[6] or "[]")),
            region_aliases=tuple(json.loads(r[7] or "[]")), period=(r[8], r[9]) if r[8] is not None else None,
            revisions=tuple(Revision(dt.date.fromisoformat(d), n) for d, n in json.loads(r[15] or "[]")),
            collection=r[10] or "", source_path=r[11] or "", source_format=r[12] or "", content_hash=r[13] or "",
            notes=tuple(json.loads(r[14] or "[]")))

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        return {"documents": one("SELECT COUNT(*) FROM documents"), "clauses": one("SELECT COUNT(*) FROM clauses"),
                "chunks": one("SELECT COUNT(*) FROM chunks")}

"""BM25 over term postings kept in segments, so a change writes a small file, not the whole index.

bm25s precomputes every (term, chunk) score, and those depend on the whole collection (idf, the
mean chunk length): one added document meant rebuilding the matrix and rewriting it, seconds on a
large corpus. Here a segment stores term frequencies only (term -> the rows holding it and how
often), and BM25 is computed at query time for the query's terms, with bm25s's formula (Lucene's
idf, k1 = 1.5, b = 0.75) over the live rows of every segment; the scores are bm25s's.

An index folder holds a ``base`` segment, at most one ``delta`` segment (what was added since the
base was written) and the ids deleted from the base. Adding a document rewrites the delta and the
deletion list; when they pass a fifth of the base, everything is merged into a new base.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.arrays import load_array

K1, B = 1.5, 0.75  # bm25s's defaults (method "lucene"); index.pg scores with the same
EMPTY = "\u2205"  # the token of a chunk without words (bm25s drops empty documents; positions stay aligned)
COMPACT_SHARE = 0.2  # merge into a new base once the delta and the deletions pass this share of it


def top_ids(ids: np.ndarray, scores: np.ndarray, allowed: np.ndarray | None, k: int) -> list[int]:
    """The ``k`` best-scoring ids with a positive score, within ``allowed`` (ties: the lower id first)."""
    if allowed is not None:
        mask = np.isin(ids, allowed)
        ids, scores = ids[mask], scores[mask]
    positive = scores > 0
    ids, scores = ids[positive], scores[positive]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].tolist()


def select_candidates(scored: list[tuple[np.ndarray, np.ndarray]], k: int, allowed: np.ndarray | None,
                      among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From full score lists (ids, scores), one per query: the union of each one's top ``k`` and
    ``among``, sorted, with each query's score of every id in it (0 where the query misses it)."""
    chosen = {int(i) for i in among}
    for ids, scores in scored:
        chosen.update(top_ids(ids, scores, allowed, k))
    union = np.asarray(sorted(chosen), dtype=np.int64)
    columns = np.zeros((len(union), len(scored)), dtype=np.float32)
    for j, (ids, scores) in enumerate(scored):
        lookup = dict(zip(ids.tolist(), scores.tolist()))
        columns[:, j] = [lookup.get(c, 0.0) for c in union.tolist()]
    return union, columns


def unlinked(path: Path) -> Path:
    """``path`` with no file there: a staging copy hard-links the index's files, and writing into a
    link would change the live index too, so a file is always replaced, never rewritten in place."""
    path.unlink(missing_ok=True)
    return path


@dataclass
class Segment:
    """Postings of a set of chunks: for term t, rows ``rows[indptr[t]:indptr[t + 1]]`` hold it
    ``tfs[…]`` times. ``live`` marks the rows not deleted since the segment was written."""

    ids: np.ndarray  # int64 chunk id of each row
    lengths: np.ndarray  # float64 tokens in each row
    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32
    tfs: np.ndarray  # float32
    live: np.ndarray  # bool per row

    def __post_init__(self) -> None:
        self.vocab = {t: i for i, t in enumerate(self.terms)}

    @classmethod
    def build(cls, ids, token_lists) -> "Segment":
        vocab: dict[str, int] = {}
        term_of, row_of, lengths = [], [], []
        for row, words in enumerate(token_lists):
            words = list(words) or [EMPTY]
            lengths.append(len(words))
            term_of.extend(vocab.setdefault(w, len(vocab)) for w in words)
            row_of.extend([row] * len(words))
        terms = list(vocab)
        return cls._from_pairs(np.asarray(ids, dtype=np.int64), np.asarray(lengths, dtype=np.float64), terms,
                               np.asarray(term_of, dtype=np.int64), np.asarray(row_of, dtype=np.int64),
                               np.ones(len(term_of), dtype=np.float32))

    @classmethod
    def _from_pairs(cls, ids, lengths, terms, term_of, row_of, counts) -> "Segment":
        """A segment from (term, row, count) triples, a pair possibly repeated (counts are summed)."""
        key = term_of * max(1, len(ids)) + row_of
        unique, inverse = np.unique(key, return_inverse=True)
        tfs = np.bincount(inverse, weights=counts).astype(np.float32)
        term, rows = unique // max(1, len(ids)), unique % max(1, len(ids))
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(terms)), out=indptr[1:])
        return cls(ids, lengths, terms, indptr, rows.astype(np.int32), tfs, np.ones(len(ids), dtype=bool))

    @classmethod
    def merge(cls, segments: list["Segment"]) -> "Segment":
        """One segment of the live rows of ``segments`` (rows in their order, deleted rows dropped)."""
        vocab: dict[str, int] = {}
        ids, lengths, term_of, row_of, counts = [], [], [], [], []
        offset = 0
        for seg in segments:
            new_row = np.cumsum(seg.live) - 1 + offset
            mapping = np.asarray([vocab.setdefault(t, len(vocab)) for t in seg.terms], dtype=np.int64)
            term = np.repeat(mapping, np.diff(seg.indptr))
            keep = seg.live[seg.rows]
            term_of.append(term[keep])
            row_of.append(new_row[seg.rows[keep]])
            counts.append(seg.tfs[keep])
            ids.append(seg.ids[seg.live])
            lengths.append(seg.lengths[seg.live])
            offset += int(seg.live.sum())
        cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
        merged = cls._from_pairs(cat(ids, np.int64), cat(lengths, np.float64), list(vocab), cat(term_of, np.int64),
                                 cat(row_of, np.int64), cat(counts, np.float32))
        used = np.diff(merged.indptr) > 0  # terms only deleted rows held
        if not used.all():
            merged = cls(merged.ids, merged.lengths, [t for t, u in zip(merged.terms, used) if u],
                         np.concatenate([[0], np.cumsum(np.diff(merged.indptr)[used])]).astype(np.int64),
                         merged.rows, merged.tfs, merged.live)
        return merged

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        t = self.vocab.get(term)
        if t is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        a, b = self.indptr[t], self.indptr[t + 1]
        return self.rows[a:b], self.tfs[a:b]

    def save(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("ids", "lengths", "indptr", "rows", "tfs"):
            np.save(unlinked(folder / f"{name}.{part}.npy"), getattr(self, part))
        unlinked(folder / f"{name}.terms.json").write_text(json.dumps(self.terms, ensure_ascii=False),
                                                          encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, name: str) -> "Segment":
        parts = {p: load_array(folder / f"{name}.{p}.npy") for p in ("ids", "lengths", "indptr", "rows", "tfs")}
        terms = json.loads((folder / f"{name}.terms.json").read_text(encoding="utf-8"))
        return cls(terms=terms, live=np.ones(len(parts["ids"]), dtype=bool), **parts)

    @staticmethod
    def exists(folder: Path, name: str) -> bool:
        return (folder / f"{name}.terms.json").exists()


class BM25Store:
    """BM25 over pre-tokenised chunks: a base segment, the rows added since (a delta) and the base's
    deleted rows. Scores equal bm25s's (``index.pg`` scores the same way in SQL)."""

    name = "bm25"
    DIR = "bm25"
    DELETED = "base.deleted.npy"

    def __init__(self) -> None:
        self._base: Segment | None = None
        self._base_written = False  # the base is the one on disk (in the folder it was loaded from)
        self._deltas: list[Segment] = []
        self._pending: list[tuple[np.ndarray, list]] = []  # added, not yet built into a segment
        self._view = None  # (live ids sorted, per segment: position of each row in them or -1, N, avgdl)
        self._vocabulary: set[str] | None = None

    def __len__(self) -> int:
        return sum(int(s.live.sum()) for s in self._segments())

    def _segments(self) -> list[Segment]:
        self._flush()
        return ([self._base] if self._base is not None else []) + self._deltas

    def _flush(self) -> None:
        """Build what was added since the last read into one segment (a corpus added one document
        at a time is built once, not once per document); an id given again keeps its last row."""
        if not self._pending:
            return
        ids = np.concatenate([p[0] for p in self._pending])
        tokens = [t for p in self._pending for t in p[1]]
        self._pending = []
        last = sorted({int(i): n for n, i in enumerate(ids)}.values())
        ids, tokens = ids[last], [tokens[n] for n in last]
        self._mark_deleted(ids)
        self._deltas.append(Segment.build(ids, tokens))

    def _changed(self) -> None:
        self._view = self._vocabulary = None

    def add(self, ids: np.ndarray, token_lists) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids):
            self._pending.append((ids, list(token_lists)))  # an id given again replaces its row
            self._changed()

    def delete(self, ids: np.ndarray) -> None:
        self._flush()
        self._mark_deleted(np.asarray(ids, dtype=np.int64))

    def _mark_deleted(self, ids: np.ndarray) -> None:
        if len(ids):
            for seg in self._segments():
                seg.live &= ~np.isin(seg.ids, ids)
            self._changed()

    # --- scoring ---

    def _current(self):
        if self._view is None:
            segments = self._segments()
            live_ids = np.concatenate([s.ids[s.live] for s in segments]) if segments else np.zeros(0, np.int64)
            order = np.argsort(live_ids, kind="stable")
            position = np.empty(len(live_ids), dtype=np.int64)
            position[order] = np.arange(len(live_ids))
            places, start, total = [], 0, 0.0
            for seg in segments:
                where = np.full(len(seg.ids), -1, dtype=np.int64)
                count = int(seg.live.sum())
                where[seg.live] = position[start:start + count]
                places.append(where)
                start += count
                total += float(seg.lengths[seg.live].sum())
            n = len(live_ids)
            self._view = (live_ids[order], places, n, total / n if n else 1.0)
        return self._view

    def _add_term(self, term: str, weight: float, out: np.ndarray) -> None:
        ids, places, n, avgdl = self._current()
        found = []
        for seg, where in zip(self._segments(), places):
            rows, tfs = seg.postings(term)
            keep = seg.live[rows]
            if keep.any():
                found.append((seg, where, rows[keep], tfs[keep]))
        df = sum(len(r) for _, _, r, _ in found)
        if not df:
            return
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for seg, where, rows, tfs in found:
            tfs = tfs.astype(np.float64)
            part = idf * tfs / (K1 * ((1 - B) + B * seg.lengths[rows] / avgdl) + tfs)
            np.add.at(out, where[rows], weight * part)

    def scores(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, BM25 score of every chunk) for a tokenised query (a repeated token counts again)."""
        ids = self._current()[0]
        out = np.zeros(len(ids), dtype=np.float64)
        for token in tokens:
            self._add_term(token, 1.0, out)
        return ids, out.astype(np.float32)

    def weighted_scores(self, weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, Σ weight × BM25 score of the token) over every chunk: a query whose terms count
        differently (expansion terms less than the question's own)."""
        ids = self._current()[0]
        total = np.zeros(len(ids), dtype=np.float32)
        for token, weight in weights.items():
            if weight:
                part = np.zeros(len(ids), dtype=np.float64)
                self._add_term(token, 1.0, part)
                total += np.float32(weight) * part.astype(np.float32)
        return ids, total

    def candidates(self, tokens: list[str], weights: dict[str, float], k: int, allowed: np.ndarray | None,
                   among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of a question (``tokens``) and of its weighted expansion (``weights``) for the chunks
        that matter: each query's top ``k`` within ``allowed`` and every id in ``among`` (sorted ids;
        one column of scores per query)."""
        return select_candidates([self.scores(tokens), self.weighted_scores(weights)], k, allowed, among)

    def vocabulary(self) -> set[str]:
        """Every token of the indexed chunks (for checking a question's words)."""
        if self._vocabulary is None:
            self._vocabulary = {t for seg in self._segments() for t in seg.terms} - {EMPTY}
        return self._vocabulary

    def document_frequencies(self, tokens: list[str]) -> tuple[dict[str, int], int]:
        """({token: number of chunks holding it}, number of chunks) for the tokens this index knows."""
        freqs = {}
        for token in dict.fromkeys(tokens):
            df = sum(int(seg.live[seg.postings(token)[0]].sum()) for seg in self._segments())
            if df:
                freqs[token] = df
        return freqs, len(self)

    def search(self, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        ids, scores = self.scores(tokens)
        if allowed is not None:
            mask = np.isin(ids, allowed)
            ids, scores = ids[mask], scores[mask]
        positive = scores > 0
        ids, scores = ids[positive], scores[positive]
        if len(ids) == 0 or k <= 0:
            return []
        top = np.argpartition(-scores, min(k, len(ids)) - 1)[:k] if len(ids) > k else np.arange(len(ids))
        top = top[np.lexsort((ids[top], -scores[top]))]
        return [(int(ids[i]), float(scores[i])) for i in top]

    # --- on disk ---

    def save(self, folder: Path) -> None:
        target = Path(folder) / self.DIR
        target.mkdir(parents=True, exist_ok=True)
        self._flush()
        base = self._base
        pending = sum(int(s.live.sum()) for s in self._deltas)
        deleted = 0 if base is None else int((~base.live).sum())
        if base is None or not self._base_written or pending + deleted > COMPACT_SHARE * max(1, len(base.ids)):
            self._base = Segment.merge(self._segments())
            self._base.save(target, "base")
            self._deltas, self._base_written = [], True
            self._remove(target, "delta")
            unlinked(target / self.DELETED)
        else:
            if self._deltas:
                self._deltas = [Segment.merge(self._deltas)]
                self._deltas[0].save(target, "delta")
            else:
                self._remove(target, "delta")
            np.save(unlinked(target / self.DELETED), base.ids[~base.live])
        for old in ("tokens.jsonl", "ids.npy"):  # the bm25s layout, before segments
            (target / old).unlink(missing_ok=True)
        if (target / "bm25s").exists():
            import shutil

            shutil.rmtree(target / "bm25s")
        self._changed()

    @staticmethod
    def _remove(target: Path, name: str) -> None:
        for path in target.glob(f"{name}.*"):
            path.unlink()

    @classmethod
    def load(cls, folder: Path) -> "BM25Store":
        target = Path(folder) / cls.DIR
        store = cls()
        if Segment.exists(target, "base"):
            store._base = Segment.load(target, "base")
            if (target / cls.DELETED).exists():
                store._base.live &= ~np.isin(store._base.ids, load_array(target / cls.DELETED))
            if Segment.exists(target, "delta"):
                store._deltas = [Segment.load(target, "delta")]
            store._base_written = True
        elif (target / "tokens.jsonl").exists():  # an index written before segments: read its tokens
            ids, tokens = [], []
            with open(target / "tokens.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    i, words = json.loads(line)
                    ids.append(i)
                    tokens.append(words.split())
            store._base = Segment.build(ids, tokens)
        return store

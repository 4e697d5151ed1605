"""Sentence vectors: each sentence of a chunk embedded on its own, with the clause's title and heading.

A law's article or a policy's item often covers several topics while a question matches one
sentence; scoring a clause by its best sentence finds it where the whole clause's vector, an
average of its topics, does not. Sentence ``j`` of chunk ``c`` is stored under id
``c * STRIDE + j``, so a chunk's sentences are found from its id without a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from index.stores import FaissStore

STRIDE = 1000  # sentences per chunk at most (a 400-character chunk has far fewer)
MIN_CHARS = 8  # shorter pieces ("（一）", "第五条") join the sentence after them
MAX_CHARS = 160  # longer sentences are cut at semicolons
_ENDS = re.compile(r"(?<=[。！？!?])|\n")
_SEMICOLON = re.compile(r"(?<=[；;])")


def sentence_units(text: str) -> list[str]:
    """The sentences of a chunk's text: cut at 。！？ and line ends, long ones at semicolons, short
    pieces joined to the next; at least one (the whole text) for any text with words."""
    pieces: list[str] = []
    for part in _ENDS.split(text):
        part = part.strip()
        if not part:
            continue
        if len(part) > MAX_CHARS:
            pieces.extend(p.strip() for p in _SEMICOLON.split(part) if p.strip())
        else:
            pieces.append(part)
    units: list[str] = []
    carry = ""
    for piece in pieces:
        piece = carry + piece
        if len(piece) < MIN_CHARS:
            carry = piece
            continue
        units.append(piece)
        carry = ""
    if carry:
        if units:
            units[-1] += carry
        else:
            units.append(carry)
    return units[: STRIDE - 1]


def sentence_context(title: str, heading: str) -> str:
    """What is embedded before each sentence: the document's title and the clause's own heading."""
    return f"《{title}》{heading}" if heading else f"《{title}》"


class SentenceStore(FaissStore):
    """Sentence vectors keyed ``chunk_id * STRIDE + j``; answers per chunk with its best sentence."""

    name = "sentences"
    FILE = "sentences.faiss"
    HNSW_FILE = "sentences.hnsw"
    STALE_FILE = "sentences.hnsw-stale.npy"

    def _by_chunk(self) -> dict[int, np.ndarray]:
        """{chunk id: its sentence ids}, rebuilt after a change."""
        cached = getattr(self, "_chunks", None)
        if cached is None:
            ids = np.sort(self.ids())
            groups = np.split(ids, np.flatnonzero(np.diff(ids // STRIDE)) + 1) if len(ids) else []
            cached = self._chunks = {int(g[0] // STRIDE): g for g in groups}
        return cached

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._chunks = None
        super().add(ids, vectors)

    def delete(self, ids: np.ndarray) -> None:
        self._chunks = None
        super().delete(ids)

    def sentence_ids(self, chunk_ids: Iterable[int]) -> np.ndarray:
        by_chunk = self._by_chunk()
        parts = [by_chunk[int(c)] for c in chunk_ids if int(c) in by_chunk]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def add_chunks(self, chunk_ids: np.ndarray, per_chunk: list[np.ndarray]) -> None:
        """Add each chunk's sentence vectors (one array of rows per chunk)."""
        ids = [int(c) * STRIDE + j for c, rows in zip(chunk_ids, per_chunk) for j in range(len(rows))]
        if ids:
            self.add(np.asarray(ids, dtype=np.int64), np.concatenate([r for r in per_chunk if len(r)]))

    def delete_chunks(self, chunk_ids: np.ndarray) -> None:
        self.delete(self.sentence_ids(chunk_ids))

    def best(self, vector: np.ndarray, chunk_ids: np.ndarray) -> np.ndarray:
        """The cosine of each chunk's best sentence to ``vector`` (0 for a chunk without sentences)."""
        return self.best_with_position(vector, chunk_ids)[0]

    def best_with_position(self, vector: np.ndarray, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cosine of each chunk's best sentence, its position j in ``sentence_units`` of the chunk)."""
        scores_out = np.zeros(len(chunk_ids), dtype=np.float32)
        positions = np.zeros(len(chunk_ids), dtype=np.int64)
        ids = self.sentence_ids(chunk_ids)
        if len(ids) == 0:
            return scores_out, positions
        scores = self.index.reconstruct_batch(ids) @ np.asarray(vector, dtype=np.float32)
        best: dict[int, tuple[float, int]] = {}
        for sid, score in zip(ids.tolist(), scores.tolist()):
            chunk = sid // STRIDE
            if score > best.get(chunk, (-2.0, 0))[0]:
                best[chunk] = (score, sid % STRIDE)
        for i, c in enumerate(np.asarray(chunk_ids).tolist()):
            scores_out[i], positions[i] = best.get(int(c), (0.0, 0))
        return scores_out, positions

    def search_chunks(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks whose best sentence is closest (chunk id, cosine), best first."""
        allowed_sentences = None if allowed is None else self.sentence_ids(allowed)
        best: dict[int, float] = {}
        for sid, score in self.search(vector, 4 * k, allowed_sentences):
            chunk = sid // STRIDE
            if chunk not in best:
                best[chunk] = score
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

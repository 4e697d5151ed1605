"""Search stores keyed by integer chunk ids: dense vectors (FAISS) and keywords (BM25).

Both follow one contract — ``add(ids, items)``, ``delete(ids)``,
``search(query, k, allowed=None)``, ``save(dir)``, ``load(dir)`` — which one
test runs against every store in ``STORES``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


def _bm25s():
    """bm25s, imported when first needed; it sets its own logger to DEBUG on import (a line per
    index build in every log), so its level is put back to WARNING."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class Store(Protocol):
    name: str

    def add(self, ids: np.ndarray, items) -> None: ...

    def delete(self, ids: np.ndarray) -> None: ...

    def search(self, query, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]: ...

    def save(self, folder: Path) -> None: ...

    def __len__(self) -> int: ...


APPROX_THRESHOLD = 50_000  # vectors; above it exact search passes ~10 ms per query here (docs/scaling.md)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128


class FaissStore:
    """Inner-product search over L2-normalised vectors (cosine similarity).

    The exact index (``IndexIDMap2`` over ``IndexFlatIP``) always holds every vector: filtered
    searches, deletions and re-scoring use it. Above ``approx_threshold`` vectors an HNSW graph
    is built beside it and answers unfiltered searches; vectors deleted later stay in the graph
    but are skipped, and the graph is rebuilt when a fifth of it is stale.
    """

    name = "faiss"
    FILE = "vectors.faiss"
    HNSW_FILE = "vectors.hnsw"
    STALE_FILE = "vectors.hnsw-stale.npy"

    def __init__(self, dim: int, *, approx_threshold: int = APPROX_THRESHOLD):
        import faiss

        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.approx_threshold = approx_threshold
        self.hnsw = None  # IndexIDMap over IndexHNSWFlat, or None
        self._stale: set[int] = set()

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {vectors.shape} do not fit an index of dimension {self.dim}")
        if len(ids):
            ids = np.asarray(ids, dtype=np.int64)
            self.index.add_with_ids(vectors, ids)
            if self.hnsw is not None:
                self.hnsw.add_with_ids(vectors, ids)

    def delete(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))
            if self.hnsw is not None:
                self._stale.update(int(i) for i in ids)

    def _build_hnsw(self) -> None:
        import faiss

        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = self.index.index.reconstruct_n(0, len(ids)) if len(ids) else np.zeros((0, self.dim), np.float32)
        graph = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.hnsw = faiss.IndexIDMap(graph)
        self.hnsw.add_with_ids(vectors, ids)
        self._stale = set()

    def refresh_approximate(self) -> None:
        """Build, rebuild or drop the HNSW graph as the size and stale share require."""
        if len(self) < self.approx_threshold:
            self.hnsw, self._stale = None, set()
        elif self.hnsw is None or len(self._stale) > 0.2 * max(1, self.hnsw.ntotal):
            log.info("building the HNSW graph over %d vectors", len(self))
            self._build_hnsw()

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None, *,
               exact: bool = False) -> list[tuple[int, float]]:
        import faiss

        if len(self) == 0 or k <= 0:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if self.hnsw is not None and allowed is None and not exact:
            fetch = min(k + len(self._stale), int(self.hnsw.ntotal))
            scores, ids = self.hnsw.search(query, fetch, params=faiss.SearchParametersHNSW(efSearch=max(
                HNSW_EF_SEARCH, fetch)))
            hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0 and int(i) not in self._stale]
            return hits[:k]
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = self.index.search(query, min(k, len(self)), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def scores(self, vector: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The inner product of ``vector`` with the stored vectors of ``ids`` (exact)."""
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64)) @ np.asarray(vector, dtype=np.float32)

    def save(self, folder: Path) -> None:
        import faiss

        folder = Path(folder)
        faiss.write_index(self.index, str(folder / self.FILE))
        self.refresh_approximate()
        if self.hnsw is not None:
            faiss.write_index(self.hnsw, str(folder / self.HNSW_FILE))
            np.save(folder / self.STALE_FILE, np.asarray(sorted(self._stale), dtype=np.int64))
        else:
            for name in (self.HNSW_FILE, self.STALE_FILE):
                (folder / name).unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path) -> "FaissStore":
        import faiss

        folder = Path(folder)
        index = faiss.read_index(str(folder / cls.FILE))
        store = cls.__new__(cls)
        store.dim = index.d
        store.index = index
        store.approx_threshold = APPROX_THRESHOLD
        store.hnsw, store._stale = None, set()
        if (folder / cls.HNSW_FILE).exists():
            store.hnsw = faiss.read_index(str(folder / cls.HNSW_FILE))
            store._stale = set(np.load(folder / cls.STALE_FILE).tolist())
        return store


class BM25Store:
    """BM25 (bm25s) over pre-tokenised chunks.

    IDF depends on the whole collection, so a change rebuilds the matrix from
    the stored tokens (seconds even for a large corpus); queries never rebuild.
    """

    name = "bm25"
    DIR = "bm25"

    def __init__(self) -> None:
        self._tokens: dict[int, str] | None = {}  # id -> space-joined tokens; None: not read yet
        self._tokens_file: Path | None = None
        self._retriever = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._dirty = False

    def __len__(self) -> int:
        return len(self._tokens) if self._tokens is not None else len(self._ids)

    def _all_tokens(self) -> dict[int, str]:
        """The stored tokens, read from disk only when a change needs them (search does not)."""
        if self._tokens is None:
            self._tokens = {}
            with open(self._tokens_file, encoding="utf-8") as fh:
                for line in fh:
                    i, tokens = json.loads(line)
                    self._tokens[i] = tokens
        return self._tokens

    def add(self, ids: np.ndarray, token_lists) -> None:
        tokens = self._all_tokens()
        for i, words in zip(ids, token_lists):
            tokens[int(i)] = " ".join(words)
        self._dirty = True

    def delete(self, ids: np.ndarray) -> None:
        tokens = self._all_tokens()
        for i in ids:
            tokens.pop(int(i), None)
        self._dirty = True

    def _rebuild(self) -> None:
        bm25s = _bm25s()

        tokens = self._all_tokens()
        self._ids = np.asarray(sorted(tokens), dtype=np.int64)
        self._retriever = None
        if len(self._ids):
            retriever = bm25s.BM25()
            # An empty token list would be dropped by bm25s; keep positions aligned.
            corpus = [tokens[int(i)].split() or ["\u2205"] for i in self._ids]
            retriever.index(corpus, show_progress=False)
            self._retriever = retriever
        self._dirty = False

    def vocabulary(self) -> set[str] | dict:
        """Every token of the indexed chunks (for checking a question's words)."""
        if self._dirty:
            self._rebuild()
        return self._retriever.vocab_dict if self._retriever is not None else set()

    def scores(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, BM25 score of every chunk) for a tokenised query."""
        if self._dirty:
            self._rebuild()
        if self._retriever is None or not tokens:
            return self._ids, np.zeros(len(self._ids), dtype=np.float32)
        vocab = self._retriever.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return self._ids, np.zeros(len(self._ids), dtype=np.float32)
        return self._ids, np.asarray(self._retriever.get_scores(known), dtype=np.float32)

    def document_frequencies(self, tokens: list[str]) -> tuple[dict[str, int], int]:
        """({token: number of chunks holding it}, number of chunks) for the tokens this index knows."""
        if self._dirty:
            self._rebuild()
        if self._retriever is None:
            return {}, 0
        vocab, indptr = self._retriever.vocab_dict, self._retriever.scores["indptr"]
        freqs = {t: int(indptr[vocab[t] + 1] - indptr[vocab[t]]) for t in dict.fromkeys(tokens) if t in vocab}
        return freqs, int(self._retriever.scores.get("num_docs", len(self._ids)))

    def weighted_scores(self, weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, Σ weight × BM25 score of the token) over every chunk: a query whose terms count
        differently (expansion terms less than the question's own)."""
        ids, total = self._ids, np.zeros(len(self._ids), dtype=np.float32)
        for token, weight in weights.items():
            if weight:
                _, part = self.scores([token])
                total += np.float32(weight) * part
        return ids, total

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

    def save(self, folder: Path) -> None:
        if self._dirty:
            self._rebuild()
        target = Path(folder) / self.DIR
        target.mkdir(parents=True, exist_ok=True)
        tokens = self._all_tokens()
        with open(target / "tokens.jsonl", "w", encoding="utf-8") as fh:
            for i in self._ids:
                fh.write(json.dumps([int(i), tokens[int(i)]], ensure_ascii=False) + "\n")
        np.save(target / "ids.npy", self._ids)
        if self._retriever is not None:
            self._retriever.save(str(target / "bm25s"))

    @classmethod
    def load(cls, folder: Path) -> "BM25Store":
        bm25s = _bm25s()

        target = Path(folder) / cls.DIR
        store = cls()
        store._tokens = None
        store._tokens_file = target / "tokens.jsonl"
        store._ids = np.load(target / "ids.npy")
        if (target / "bm25s").exists():
            store._retriever = bm25s.BM25.load(str(target / "bm25s"))
        return store


STORES = {"faiss": FaissStore, "bm25": BM25Store}

"""Rerankers: one interface, chosen by name in ``RetrievalSettings.reranker``.

``rank(question, candidates, features) -> [(chunk id, score)]``, best first. ``learned`` (the default)
is a LambdaMART model trained by ``python -m eval.train``; ``fusion`` weighs the dense and BM25 scores
with fixed weights (what ipqa did before it learned, without the hand rules); ``sentence`` is
``fusion`` with the top three reordered by how many of the question's words their best sentence holds.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.ranking import FEATURES, Candidates
from assistant.understanding import Understanding

log = logging.getLogger(__name__)

MODEL_FILE = "ranker.txt"  # LightGBM's text format
MODEL_INFO = "ranker.json"  # features, training data hash, parameters, figures


class Reranker(Protocol):
    name: str

    def rank(self, u: Understanding, c: Candidates, x: np.ndarray) -> list[tuple[int, float]]: ...


def _ordered(ids: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    order = np.lexsort((ids, -scores))
    return [(int(ids[i]), float(scores[i])) for i in order]


class FusionRanker:
    """Min-max dense (best of chunk and sentence) and BM25 over its maximum, weighted by collection:
    laws are paraphrased by their askers (dense counts more), policies share their words (BM25 does)."""

    name = "fusion"

    def __init__(self, law_dense: float = 0.7, policy_dense: float = 0.3):
        self.law_dense, self.policy_dense = law_dense, policy_dense

    def scores(self, c: Candidates, x: np.ndarray) -> np.ndarray:
        best = np.maximum(c.dense, c.sentence).astype(np.float64)
        spread = best.max() - best.min() if len(best) else 0.0
        dense = (best - best.min()) / spread if spread > 0 else np.ones_like(best)
        sparse = x[:, FEATURES.index("bm25")]
        weight = np.where(x[:, FEATURES.index("kind_policy")] > 0, self.policy_dense, self.law_dense)
        return weight * dense + (1 - weight) * sparse

    def rank(self, u: Understanding, c: Candidates, x: np.ndarray) -> list[tuple[int, float]]:
        return _ordered(c.ids, self.scores(c, x))


class SentenceRanker(FusionRanker):
    """``fusion``, then the top three reordered by their best sentence's share of the question's words."""

    name = "sentence"

    def rank(self, u: Understanding, c: Candidates, x: np.ndarray) -> list[tuple[int, float]]:
        from assistant.compose import best_sentence_score, content_tokens

        ranked = super().rank(u, c, x)
        head, tail = ranked[:3], ranked[3:]
        wanted = content_tokens(u)
        lexical = [best_sentence_score(c.chunks[cid].text, wanted, u) for cid, _ in head]
        peak, top = max(lexical, default=0.0) or 1.0, (head[0][1] if head else 1.0) or 1.0
        rescored = sorted(((cid, 0.7 * s / top + 0.3 * b / peak) for (cid, s), b in zip(head, lexical)),
                          key=lambda kv: (-kv[1], kv[0]))
        floor = tail[0][1] if tail else 0.0
        return [(cid, max(s * top, floor + 1e-6 * (3 - i))) for i, (cid, s) in enumerate(rescored)] + tail


def model_dir() -> Path:
    return Path(str(resources.files("assistant") / "data"))


@lru_cache(maxsize=2)
def _booster(path: str):
    import lightgbm

    return lightgbm.Booster(model_file=path)


class LearnedRanker:
    """A LambdaMART model over ``FEATURES`` (``python -m eval.train`` writes it with the hash of its data)."""

    name = "learned"

    def __init__(self, folder: Path | None = None):
        folder = folder or model_dir()
        self.path = folder / MODEL_FILE
        self.info = json.loads((folder / MODEL_INFO).read_text(encoding="utf-8"))
        if tuple(self.info["features"]) != FEATURES:
            raise ValueError(f"{self.path} was trained on other features; retrain it with: python -m eval.train")

    def rank(self, u: Understanding, c: Candidates, x: np.ndarray) -> list[tuple[int, float]]:
        if len(c) == 0:
            return []
        scores = _booster(str(self.path)).predict(x, num_threads=1)
        return _ordered(c.ids, np.asarray(scores, dtype=np.float64))


RERANKERS = {"learned": LearnedRanker, "fusion": FusionRanker, "sentence": SentenceRanker}


@lru_cache(maxsize=8)
def get_reranker(name: str) -> Reranker:
    """A reranker by name; the error lists the names there are."""
    if name not in RERANKERS:
        raise ValueError(f"unknown reranker {name!r}; choose from {sorted(RERANKERS)}")
    return RERANKERS[name]()

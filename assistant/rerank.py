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

from assistant.ranking import BASE_FEATURES, FEATURES, Candidates
from assistant.understanding import Understanding

log = logging.getLogger(__name__)

MODEL_FILE = "ranker.txt"  # LightGBM's text format: the first stage, over BASE_FEATURES
MEMORY_MODEL_FILE = "ranker-memory.txt"  # the second stage, over MEMORY_FEATURES, boosted from the first's scores
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


def learned_scores(x: np.ndarray, first, second=None) -> np.ndarray:
    """The two stages' scores added: the first over ``BASE_FEATURES``, the second (the memory of
    earlier questions, trained from the first's scores) over the rest."""
    n = len(BASE_FEATURES)
    scores = np.asarray(first.predict(x[:, :n], num_threads=1), dtype=np.float64)
    if second is not None:
        scores += second.predict(x[:, n:], num_threads=1)
    return scores


class LearnedRanker:
    """A LambdaMART model over ``FEATURES`` in two stages (``python -m eval.train`` writes them with the
    hash of their data)."""

    name = "learned"

    def __init__(self, folder: Path | None = None):
        folder = folder or model_dir()
        self.path, self.memory_path = folder / MODEL_FILE, folder / MEMORY_MODEL_FILE
        self.info = json.loads((folder / MODEL_INFO).read_text(encoding="utf-8"))
        if tuple(self.info["features"]) != FEATURES:
            raise ValueError(f"{self.path} was trained on other features; retrain it with: python -m eval.train")

    def rank(self, u: Understanding, c: Candidates, x: np.ndarray) -> list[tuple[int, float]]:
        if len(c) == 0:
            return []
        second = _booster(str(self.memory_path)) if self.memory_path.exists() else None
        return _ordered(c.ids, learned_scores(x, _booster(str(self.path)), second))


RERANKERS = {"learned": LearnedRanker, "fusion": FusionRanker, "sentence": SentenceRanker}


@lru_cache(maxsize=8)
def get_reranker(name: str) -> Reranker:
    """A reranker by name; the error lists the names there are."""
    if name not in RERANKERS:
        raise ValueError(f"unknown reranker {name!r}; choose from {sorted(RERANKERS)}")
    return RERANKERS[name]()

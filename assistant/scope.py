"""Is a question about something the knowledge base covers? A small learned model, not a word list.

e5-small finds some clause for any question (every question's best cosine is above 0.86), so a
question on divorce, theft or a train ticket was answered from the IP laws with a confident quote.
What tells such a question apart is how well the best of what was found fits it, judged together:
the best clause's and best sentence's cosine, its BM25 score, the share of the question's words (the
documents know) in the answer's clauses, the share of its words the documents use at all, and
whether a colloquial phrase of it maps to a document word. And whether other law fits it better: the
law map (``eval/law_map.py``) holds one point per national law of China; the question's three closest
laws are compared with the clause that would answer it (``elsewhere``), and the model is told when that
clause is a policy's, which no law of the map resembles (``policy``).

A logistic regression over those eight features is trained by ``python -m eval.train_scope`` on the
tuning questions only, with the same public questions on both sides: STARD train asked over the
laws they cite (in scope) and over the app's knowledge base, which holds none of them (out of
scope), beside the dev questions the app's documents answer (in scope). The features are about the
fit between a question and an index, not about a topic, so the model carries to other documents.
The model and its threshold are in ``assistant/data/scope.json`` with the hash of the data. A question
whose every word the documents use and the answering clauses hold is never refused (``held_whole``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from assistant.asks import answer_kinds
from assistant.compose import Picked, clause_hits, content_tokens
from assistant.understanding import SUPPORT, Understanding
from corpus.metadata import LAW_KINDS
from corpus.types import Hit
from index.arrays import load_array
from index.text import colloquial_matches, tokenize

SCOPE_FILE = "scope.json"
LAW_MAP_FILE = "law_map.npy"  # one unit vector per law of LawRefBook (eval/law_map.py)
LAW_MAP_INFO = "law_map.json"
FEATURES = ("dense", "sentence", "bm25", "coverage", "known", "colloquial", "elsewhere", "policy", "dense_over_laws",
            "sentence_over_laws")
ELSEWHERE_LAWS = 3  # the question's closest laws in the law map, against the answering clause
# Kinds of document that are law (corpus.metadata), and the NPC's decisions: a clause of any other kind is a
# policy's. The law map holds laws only, so the model is told when the clause it compares with is not one.
NOT_POLICY = (*LAW_KINDS, "法律性决定")
# Given the best clause's hit (or none): the question's embedding and that clause's (None without one).
ScopeVectors = Callable[[Sequence[Hit]], tuple[np.ndarray, "np.ndarray | None"]]


def judged(u: Understanding) -> bool:
    """Whether the model judges the question at all: one that names a place with documents here, a
    document by its title or an article number asks about this knowledge base (its near misses are
    the other checks' to refuse)."""
    return not (u.region_docs or u.doc_ids or u.articles)


def scope_features(u: Understanding, hits: Sequence[Hit], picked: Sequence[Picked], known: Container[str],
                   vector: np.ndarray, clause_vector: np.ndarray | None) -> np.ndarray:
    """How well what was found fits the question, and whether other law fits it better (``FEATURES``);
    ``vector`` is the question's embedding, ``clause_vector`` the best clause's (None: no clause)."""
    top = list(hits[:3])
    best = clause_hits(hits)[:1]
    sources = [h.chunk.text for h in best] + [p.hit.chunk.text for p in picked]
    context = [f"{h.title} {' '.join(h.path)}" for h in [*best, *(p.hit for p in picked)]]
    words = topic_words(u)
    length = sum(len(w) for w in words)
    dense = max((h.scores.get("dense", 0.0) for h in top), default=0.0)
    sentence = max((h.scores.get("sentence", 0.0) for h in top), default=0.0)
    closest, fit_closest = closest_laws(vector)
    return np.array([
        dense,
        sentence,
        math.log1p(max((h.scores.get("bm25", 0.0) for h in top), default=0.0)),
        coverage(u, "\n".join(sources + context), known),
        sum(len(w) for w in words if w in known) / length if length else 1.0,
        float(bool(colloquial_matches(u.query))),
        elsewhere(closest, fit_closest, clause_vector),
        float(bool(best) and best[0].kind not in NOT_POLICY),
        dense - fit_closest,
        sentence - fit_closest,
    ], dtype=np.float64)


def held_whole(x: np.ndarray) -> bool:
    """Every content word of the question is one the documents use, and the answering clauses hold them all
    (``coverage`` and ``known`` both 1): the question is about that clause, however far its vector stands.
    A short question's cosines sit low ("贯标认证有奖励吗": 0.84, where the tuning questions' mean is 0.90),
    so the model, which learned from long questions, judged it out of scope although 荆门高新区's item says
    "对通过贯标认证的企业给予资金奖励". A question from another field of law has words the documents never
    use (离婚, 抚养权): of the 569 public questions of STARD train over the app's knowledge base, 2 are held
    whole, and the model did not refuse either."""
    return bool(x[FEATURES.index("coverage")] >= 1.0 and x[FEATURES.index("known")] >= 1.0)


def closest_laws(vector: np.ndarray) -> tuple[np.ndarray, float]:
    """The rows of the law map closest to the question (``ELSEWHERE_LAWS`` of them) and their mean cosine
    to it: how well the rest of Chinese law fits the question. Every cosine of a question sits higher or
    lower with its length and wording (a six-character policy question's best clause is at 0.84, a long
    public question's at 0.92); the best clause's margin over this level (``dense_over_laws``) compares
    two cosines of the same question, at its own level."""
    laws = law_map()
    # Multiplied and summed, not a matrix product: numpy's BLAS would start its threads for a product this
    # size and leave them spinning beside the embedder's (the eval's answers took 20 ms longer).
    cosines = (laws * np.asarray(vector, dtype=np.float32)).sum(axis=1)
    closest = np.argsort(-cosines, kind="stable")[:ELSEWHERE_LAWS]
    return closest, float(cosines[closest].mean())


def elsewhere(closest: np.ndarray, fit_closest: float, clause_vector: np.ndarray | None) -> float:
    """How much better the question's closest laws of the law map (``closest``, whose mean cosine to the
    question is ``fit_closest``) fit the question than they fit the clause the knowledge base answers
    with (mean cosine to the question minus mean cosine to the clause). "离婚后孩子抚养权归谁" stands close
    to the marriage laws and its best IP clause far from them: high. "公司员工把技术秘密带走了怎么办" stands
    closest to laws on secrets, and so does 反不正当竞争法第九条, which answers it: low. The laws closest to a
    question are not all that tells (a city's regulation may fit a question better than a national law's
    article): whether they are about what the answering clause is about does."""
    clause = law_map()[closest] @ clause_vector if clause_vector is not None else np.zeros(len(closest))
    return float(fit_closest - clause.mean())


@lru_cache(maxsize=1)
def law_map() -> np.ndarray:
    with resources.as_file(resources.files("assistant") / "data" / LAW_MAP_FILE) as path:
        return load_array(path).astype(np.float32)


@lru_cache(maxsize=1)
def law_map_embedder() -> str:
    path = resources.files("assistant") / "data" / LAW_MAP_INFO
    return json.loads(path.read_text(encoding="utf-8"))["embedder"] if path.is_file() else ""


def topic_words(u: Understanding) -> list[str]:
    """The question's content words without those that ask (怎么办, 怎么弄, 多久: the answer-type table), which
    are no topic: the documents never write 怎么弄, and a question is not less about them for asking so."""
    return [w for w in content_tokens(u) if not any(kind.asks.match(w) for kind in answer_kinds())]


def coverage(u: Understanding, text: str, known: Container[str]) -> float:
    """Share of the question's content words that the documents use (weighted by length) found in
    ``text``; a colloquial phrase ("拿专利去银行贷款", "版权") counts when its document word is there, and a
    word of support (补贴, 奖励: the reader's ``SUPPORT``) when the text names any support (资金支持): the
    support check takes one for another too."""
    wanted = {t for t in topic_words(u) if t in known}
    if not wanted:
        return 1.0
    text = text.lower()
    explained: set[str] = {t for t in wanted if SUPPORT.fullmatch(t)} if SUPPORT.search(text) else set()
    for phrase, terms in colloquial_matches(u.query):
        if any(t in text for t in terms):
            explained.update(tokenize(phrase))
    return sum(len(t) for t in wanted if t in text or t in explained) / sum(len(t) for t in wanted)


@dataclass(frozen=True)
class ScopeModel:
    """``P(in scope) = sigmoid(w · (x − mean) / scale + b)``; below ``threshold`` the question is refused."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float
    embedder: str = ""  # the cosines it was trained on are this model's; over another's it is not used

    def probability(self, x: np.ndarray) -> float:
        z = float(np.dot(self.weights, (np.asarray(x, dtype=np.float64) - self.mean) / self.scale) + self.bias)
        return 1.0 / (1.0 + math.exp(-z))

    def refuses(self, x: np.ndarray) -> bool:
        """Whether a question with features ``x`` is out of scope: below the threshold, and not held whole by
        what answers it (``held_whole``)."""
        return not held_whole(x) and self.probability(x) < self.threshold

    def to_json(self) -> dict:
        return {"features": list(FEATURES), "embedder": self.embedder, "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "weights": self.weights.round(6).tolist(), "bias": round(self.bias, 6), "threshold": self.threshold}

    @classmethod
    def from_json(cls, info: dict) -> "ScopeModel":
        if tuple(info["features"]) != FEATURES:
            raise ValueError(f"scope model features {info['features']} are not {list(FEATURES)}: retrain it")
        return cls(np.asarray(info["mean"]), np.asarray(info["scale"]), np.asarray(info["weights"]),
                   float(info["bias"]), float(info["threshold"]), info.get("embedder", ""))


def scope_for(embedder: str) -> ScopeModel | None:
    """The committed model when it and the law map were made with ``embedder``'s vectors (None otherwise,
    or before ``python -m eval.train_scope`` has written one)."""
    model = bundled_scope()
    return model if model is not None and model.embedder == embedder == law_map_embedder() else None


@lru_cache(maxsize=1)
def bundled_scope() -> ScopeModel | None:
    path = resources.files("assistant") / "data" / SCOPE_FILE
    if not path.is_file():
        return None
    return ScopeModel.from_json(json.loads(path.read_text(encoding="utf-8")))


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, threshold: float = 0.5, embedder: str = "") -> ScopeModel:
    """L2-regularised logistic regression by Newton's method on standardised features (deterministic)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return ScopeModel(mean, scale, w[:-1], float(w[-1]), threshold, embedder)

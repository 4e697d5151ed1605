"""Retrieval and answer metrics. Every function takes plain ids and strings.

Retrieval is judged at clause level: a ranked list of clause ids (duplicates
removed, first occurrence kept) against the set of gold clause ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from corpus.numerals import numbers_in  # noqa: F401  (the answers' figures, shared with assistant.llm)


def dedupe(ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def hit_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """1.0 when any gold clause is among the first ``k``."""
    return 1.0 if any(c in gold for c in ranked[:k]) else 0.0


def mrr_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    """Reciprocal rank of the first gold clause within ``k`` (0 when none)."""
    for rank, c in enumerate(ranked[:k], start=1):
        if c in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    """Binary-relevance nDCG: every gold clause counts 1."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, c in enumerate(ranked[:k], start=1) if c in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    """Share of all gold clauses found within ``k`` (what multi-document questions need)."""
    return len(gold & set(ranked[:k])) / len(gold) if gold else 0.0


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``p`` measured on ``n`` questions."""
    if n <= 0:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def retrieval_metrics(ranked: Sequence[str], gold: set[str]) -> dict[str, float]:
    return {
        "hit@1": hit_at(ranked, gold, 1), "hit@3": hit_at(ranked, gold, 3), "hit@5": hit_at(ranked, gold, 5),
        "hit@10": hit_at(ranked, gold, 10), "mrr@10": mrr_at(ranked, gold, 10),
        "ndcg@10": ndcg_at(ranked, gold, 10), "recall@10": recall_at(ranked, gold, 10),
    }


# --- answers -------------------------------------------------------------------------

def keywords_present(answer: str, keywords: Sequence[str]) -> float:
    """Share of the expected keywords that the answer contains verbatim."""
    return sum(1 for k in keywords if k in answer) / len(keywords) if keywords else 1.0


def citation_precision(cited: Sequence[str], gold: set[str]) -> float:
    """Share of the cited clauses that hold a gold span (1.0 when nothing is cited and nothing was due)."""
    if not cited:
        return 0.0 if gold else 1.0
    return sum(1 for c in cited if c in gold) / len(cited)


def citation_recall(cited: Sequence[str], gold: set[str]) -> float:
    return len(gold & set(cited)) / len(gold) if gold else 1.0


def number_faithfulness(answer: str, cited_texts: Sequence[str]) -> float:
    """Share of the figures in an answer that appear verbatim in a cited clause."""
    figures = numbers_in(answer)
    if not figures:
        return 1.0
    source = "\n".join(cited_texts)
    return sum(1 for f in figures if f in source) / len(figures)


def abstention_scores(predicted_abstain: Sequence[bool], should_abstain: Sequence[bool]) -> dict[str, float]:
    """Precision and recall of abstaining (saying "not in the documents")."""
    tp = sum(1 for p, s in zip(predicted_abstain, should_abstain) if p and s)
    fp = sum(1 for p, s in zip(predicted_abstain, should_abstain) if p and not s)
    fn = sum(1 for p, s in zip(predicted_abstain, should_abstain) if not p and s)
    return {"abstain_precision": tp / (tp + fp) if tp + fp else 1.0,
            "abstain_recall": tp / (tp + fn) if tp + fn else 1.0}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

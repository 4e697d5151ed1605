"""Running an eval: every pipeline on every question, then figures, reports and the gate."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from eval.questions import Dataset, Question, load_dataset
from eval.metrics import dedupe, percentile, retrieval_metrics

METRICS = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10", "recall@10")
GATED = ("hit@1", "hit@5", "mrr@10", "recall@10")
DEFAULT_TOLERANCE = 0.02  # two points: the smallest change one question makes on ~60 questions is 1.7


@dataclass
class QuestionResult:
    pipeline: str
    dataset: str
    id: str
    type: str
    question: str
    gold: list[str]
    ranked: list[str]
    latency_ms: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class EvalRun:
    settings: dict
    results: list[QuestionResult]

    def pipelines(self) -> list[str]:
        return dedupe(r.pipeline for r in self.results)

    def datasets(self) -> list[str]:
        return dedupe(r.dataset for r in self.results)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{dataset: {pipeline: {metric: mean over answerable questions, p50_ms, p95_ms, n}}}."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for ds in self.datasets():
            for pipe in self.pipelines():
                rows = [r for r in self.results if r.dataset == ds and r.pipeline == pipe]
                scored = [r for r in rows if r.gold]
                figures = {m: round(statistics.fmean(r.metrics[m] for r in scored), 4) if scored else 0.0
                           for m in METRICS}
                latencies = [r.latency_ms for r in rows]
                figures.update({"p50_ms": round(percentile(latencies, 50), 1),
                                "p95_ms": round(percentile(latencies, 95), 1), "n": len(scored)})
                out.setdefault(ds, {})[pipe] = figures
        return out

    def by_type(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """{dataset: {type: {pipeline: {hit@1, hit@5, mrr@10, recall@10, n}}}} (answerable types)."""
        out: dict = {}
        for r in self.results:
            if not r.gold:
                continue
            out.setdefault(r.dataset, {}).setdefault(r.type, {}).setdefault(r.pipeline, []).append(r)
        return {ds: {t: {p: {**{m: round(statistics.fmean(x.metrics[m] for x in rows), 4)
                                for m in ("hit@1", "hit@5", "mrr@10", "recall@10")}, "n": len(rows)}
                         for p, rows in pipes.items()} for t, pipes in types.items()} for ds, types in out.items()}


Searcher = Callable[[Question, int], list[str]]


def run(datasets: Sequence[Dataset], pipelines: dict[str, Searcher], *, k: int = 10,
        settings: dict | None = None, progress: bool = True) -> EvalRun:
    """Ask every question of every dataset to every pipeline; rank clause ids, time each call."""
    from tqdm import tqdm

    jobs = [(ds, q, name) for ds in datasets for q in ds.questions for name in pipelines]
    # One untimed call each first: lazy loading (jieba's dictionary, BM25 matrices,
    # the model's first forward pass) is start-up cost, not per-question latency.
    warm = next((q for ds in datasets for q in ds.questions), None)
    if warm is not None:
        for search in pipelines.values():
            search(warm, k)
    results = []
    for ds, q, name in tqdm(jobs, desc="eval", unit="q", disable=not progress, file=sys.stderr):
        started = time.perf_counter()
        ranked = dedupe(pipelines[name](q, k))[:k]
        latency = (time.perf_counter() - started) * 1000
        gold = dedupe(g.clause_id for g in q.gold)
        results.append(QuestionResult(
            pipeline=name, dataset=ds.name, id=q.id, type=q.type, question=q.question, gold=gold, ranked=ranked,
            latency_ms=round(latency, 2), metrics=retrieval_metrics(ranked, set(gold)) if gold else {}))
    return EvalRun(settings=settings or {}, results=results)


# --- the gate ----------------------------------------------------------------------------


def baseline_path() -> Path:
    return Path(str(resources.files("eval") / "baseline.json"))


def baseline_figures(run_: EvalRun, pipelines: Sequence[str]) -> dict:
    summary = run_.summary()
    return {
        "tolerance": DEFAULT_TOLERANCE,
        "recorded_at": dt.date.today().isoformat(),
        "settings": {k: v for k, v in run_.settings.items() if k in ("embedder", "documents", "chunks")},
        "metrics": {ds: {p: {m: summary[ds][p][m] for m in GATED} for p in pipelines if p in summary[ds]}
                    for ds in summary},
    }


def check(run_: EvalRun, baseline: dict) -> list[str]:
    """Metrics that dropped below the baseline by more than its tolerance (empty: pass)."""
    tolerance = float(baseline.get("tolerance", DEFAULT_TOLERANCE))
    summary = run_.summary()
    failures = []
    for ds, pipes in baseline.get("metrics", {}).items():
        for pipe, metrics in pipes.items():
            current = summary.get(ds, {}).get(pipe)
            if current is None:
                continue  # not run this time (other datasets or modes asked for)
            for metric, value in metrics.items():
                if current[metric] < value - tolerance:
                    failures.append(f"{ds} / {pipe} / {metric}: {current[metric]:.3f} < baseline {value:.3f} - {tolerance}")
    return failures


def load_baseline(path: Path | None = None) -> dict | None:
    path = path or baseline_path()
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def to_json(run_: EvalRun) -> dict:
    return {"settings": run_.settings, "summary": run_.summary(), "by_type": run_.by_type(),
            "questions": [asdict(r) for r in run_.results]}


def resolve_datasets(names: Sequence[str]) -> list[Dataset]:
    from eval.questions import bundled_datasets

    return [load_dataset(n) for n in (names or bundled_datasets())]

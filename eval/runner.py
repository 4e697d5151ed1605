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

from eval.questions import TUNING_SPLITS, Dataset, Question, load_dataset
from eval.metrics import dedupe, percentile, retrieval_metrics

METRICS = ("hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "ndcg@10", "recall@10")


def split_order(label: str) -> tuple[str, int]:
    """Sort key of a dataset/split label: by dataset, the tuning split first."""
    dataset, _, split = label.rpartition("/")
    return dataset, 1 if split == "test" else 0


def is_test(label: str) -> bool:
    return label.endswith("/test")
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
class AnswerResult:
    dataset: str
    id: str
    type: str
    question: str
    answer: str
    abstained: bool
    should_abstain: bool
    cited: list[str]
    gold: list[str]
    rewritten_query: str | None
    latency_ms: float
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None  # the check that made it abstain (assistant/verify.py)
    missing: str = ""  # near-miss questions: the part the documents lack, by the dataset
    verdict: str | None = None  # the yes or no the answer led with (assistant/polarity.py)
    yes_no: str = ""  # … and the one the dataset's gold clauses give


LOWER_IS_BETTER = ("abstain_on_answerable", "yes_no_wrong")
ANSWER_METRICS = ("keywords", "citation_precision", "citation_recall", "number_faithfulness",
                  "abstain_on_unanswerable", "abstain_on_answerable", "missing_named", "yes_no_right", "yes_no_wrong")


@dataclass
class EvalRun:
    settings: dict
    results: list[QuestionResult]
    answers: list[AnswerResult] = field(default_factory=list)

    def answer_summary(self) -> dict[str, dict[str, float]]:
        """{dataset: {keywords, citation_precision, citation_recall, number_faithfulness,
        abstain_on_unanswerable, abstain_on_answerable, p50_ms, p95_ms, n}}."""
        out: dict[str, dict[str, float]] = {}
        for ds in sorted(dedupe(a.dataset for a in self.answers), key=split_order):
            rows = [a for a in self.answers if a.dataset == ds]
            answerable = [a for a in rows if not a.should_abstain]
            unanswerable = [a for a in rows if a.should_abstain]
            answered = [a for a in answerable if not a.abstained]
            near_miss = [a for a in unanswerable if a.missing]
            yes_no = [a for a in answerable if a.yes_no]
            mean = lambda xs: round(statistics.fmean(xs), 4) if xs else 0.0  # noqa: E731
            latencies = [a.latency_ms for a in rows]
            out[ds] = {
                "keywords": mean([a.metrics["keywords"] for a in answerable]),
                "citation_precision": mean([a.metrics["citation_precision"] for a in answered]),
                "citation_recall": mean([a.metrics["citation_recall"] for a in answered]),
                "number_faithfulness": mean([a.metrics["number_faithfulness"] for a in answered]),
                "abstain_on_unanswerable": mean([float(a.abstained) for a in unanswerable]),
                "abstain_on_answerable": mean([float(a.abstained) for a in answerable]),
                # Near-miss questions whose not-found names the part the documents lack.
                "missing_named": mean([float(a.abstained and a.reason == a.missing) for a in near_miss]),
                # Yes/no questions led by the gold's yes or no, and by the opposite one (the harm).
                "yes_no_right": mean([float(a.verdict == a.yes_no) for a in yes_no]),
                "yes_no_wrong": mean([float(a.verdict not in (None, a.yes_no)) for a in yes_no]),
                "n_near_miss": len(near_miss), "n_answerable": len(answerable), "n_yes_no": len(yes_no),
                "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
                "n": len(rows),
            }
        return out

    def pipelines(self) -> list[str]:
        return dedupe(r.pipeline for r in self.results)

    def datasets(self) -> list[str]:
        """The dataset/split labels of this run, each dataset's tuning split before its test split."""
        return sorted(dedupe(r.dataset for r in self.results), key=split_order)

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


def run_answers(datasets: Sequence[Dataset], ask: Callable[[Question], object], *, progress: bool = True
                ) -> list[AnswerResult]:
    """Ask every question to the assistant (``ask`` returns an Answer) and score the answers."""
    from tqdm import tqdm

    from eval.metrics import citation_precision, citation_recall, keywords_present, number_faithfulness

    out = []
    questions = [(ds, q) for ds in datasets for q in ds.questions]
    if questions:
        ask(questions[0][1])  # warm-up, untimed
    for ds, q in tqdm(questions, desc="ask", unit="q", disable=not progress, file=sys.stderr):
        started = time.perf_counter()
        answer = ask(q)
        latency = (time.perf_counter() - started) * 1000
        gold = dedupe(g.clause_id for g in q.gold)
        cited = [c.clause_id for c in answer.citations]
        metrics = {
            "keywords": keywords_present(answer.text, q.answer_keywords) if not answer.abstained else 0.0,
            "citation_precision": citation_precision(cited, set(gold)),
            "citation_recall": citation_recall(cited, set(gold)),
            # the cited clauses and their citation lines (a year in a title or 文号), as the user sees them
            "number_faithfulness": number_faithfulness(answer.text, [f"{c.citation}\n{c.text}" for c in answer.citations]),
        }
        out.append(AnswerResult(
            dataset=q.label, id=q.id, type=q.type, question=q.question, answer=answer.text,
            abstained=answer.abstained, should_abstain=not q.gold, cited=cited, gold=gold,
            rewritten_query=answer.rewritten_query, latency_ms=round(latency, 2), metrics=metrics,
            reason=getattr(answer, "reason", None), missing=q.missing,
            verdict=None if answer.abstained else getattr(answer, "verdict", None), yes_no=q.yes_no))
    return out


def run(datasets: Sequence[Dataset], pipelines: dict[str, Searcher], *, k: int = 10,
        settings: dict | None = None, progress: bool = True) -> EvalRun:
    """Ask every question of every dataset to every pipeline; rank clause ids, time each call."""
    from tqdm import tqdm

    # A set with nothing to find (stard_outside: every question to refuse) is scored on its answers only.
    jobs = [(ds, q, name) for ds in datasets if any(q.gold for q in ds.questions)
            for q in ds.questions for name in pipelines]
    # One untimed call each first: lazy loading (jieba's dictionary, BM25 matrices,
    # the model's first forward pass) is start-up cost, not per-question latency.
    warm = next((q for _, q, _ in jobs), None)
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
            pipeline=name, dataset=q.label, id=q.id, type=q.type, question=q.question, gold=gold, ranked=ranked,
            latency_ms=round(latency, 2), metrics=retrieval_metrics(ranked, set(gold)) if gold else {}))
    return EvalRun(settings=settings or {}, results=results)


# --- the gate ----------------------------------------------------------------------------


def baseline_path() -> Path:
    return Path(str(resources.files("eval") / "baseline.json"))


def baseline_figures(run_: EvalRun, pipelines: Sequence[str], previous: dict | None = None) -> dict:
    """The figures --check holds later runs to. Datasets this run did not measure keep their previous
    figures; a target met now is recorded in ``targets_met`` and gated from then on."""
    summary, answers, previous = run_.summary(), run_.answer_summary(), previous or {}
    measured = set(summary)
    met = {f"{ds} {metric}" for ds, metric, _, _, ok in target_status(run_) if ok and metric not in UNGATED_TARGETS}
    kept = {t for t in previous.get("targets_met", ()) if t.split(" ", 1)[0] not in measured}
    return {
        "tolerance": previous.get("tolerance", DEFAULT_TOLERANCE),
        "recorded_at": dt.date.today().isoformat(),
        "settings": {k: v for k, v in run_.settings.items() if k in ("embedder", "documents", "chunks")},
        "metrics": {**{ds: f for ds, f in previous.get("metrics", {}).items() if ds not in measured},
                    **{ds: {p: {m: summary[ds][p][m] for m in GATED} for p in pipelines if p in summary[ds]}
                       for ds in summary}},
        "answers": {**{ds: f for ds, f in previous.get("answers", {}).items() if ds not in measured},
                    **{ds: {m: figures[m] for m in ANSWER_METRICS
                            if figures.get("n_answerable", 1) or m == "abstain_on_unanswerable"}
                       for ds, figures in answers.items()}},
        "targets_met": sorted(kept | met),
    }


# The product's targets, on the test splits only (issues 5, 16 and 17): (dataset/split, metric, "min"/"max",
# value). Issue 17 raised the answer targets: abstain on ≥ 0.90 of the unanswerable questions (now with
# near-miss ones) and ≤ 0.03 of the answerable, keywords ≥ 0.90, and name the missing part of ≥ 0.85 of the
# near-miss questions. Retrieval metrics are the hybrid pipeline's; answer metrics the extractive assistant's.
# Reported by every run. A target is an aim until a recorded baseline meets it (``targets_met``);
# from then on --check fails when it is lost. Latency is reported only: a shared machine's timings
# are not a pass/fail figure.
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("policies_qa/test", "hit@1", "min", 0.93), ("policies_qa/test", "hit@5", "min", 0.99),
    ("laws_qa/test", "hit@1", "min", 0.85), ("laws_qa/test", "hit@5", "min", 0.97),
    ("stard/test", "hit@10", "min", 0.85),
    *((ds, metric, kind, value) for ds in ("policies_qa/test", "laws_qa/test") for metric, kind, value in (
        ("keywords", "min", 0.90), ("citation_precision", "min", 0.90), ("number_faithfulness", "min", 1.0),
        ("abstain_on_unanswerable", "min", 0.90), ("abstain_on_answerable", "max", 0.03), ("missing_named", "min", 0.85),
        ("p95_ms", "max", 150.0))),
)
# Reported, never gated: latency (a shared machine's timings), and the dev−test gap (a floor on it would
# punish a gain on dev).
UNGATED_TARGETS = ("p95_ms", "hit@1 dev−test gap")
# Targets relative to something else in the same run: (dataset, metric, kind, value, what).
MAX_SPLIT_GAP = 0.06  # dev (train) hit@1 minus test hit@1, on every dataset
NAIVE_MARGIN = ("stard/test", "recall@10", 0.15)  # at least this much above the naive LangChain pipeline


def _relative_targets(run_: EvalRun, pipeline: str) -> list[tuple[str, str, str, float, bool]]:
    summary, out = run_.summary(), []
    for label in run_.datasets():
        dataset, _, split = label.rpartition("/")
        tuning = next((f"{dataset}/{s}" for s in TUNING_SPLITS if f"{dataset}/{s}" in summary), None)
        if split != "test" or tuning is None or pipeline not in summary[label] or pipeline not in summary[tuning]:
            continue
        gap = summary[tuning][pipeline]["hit@1"] - summary[label][pipeline]["hit@1"]
        out.append((label, "hit@1 dev−test gap", f"≤ {MAX_SPLIT_GAP:g}", round(gap, 4), gap <= MAX_SPLIT_GAP))
    label, metric, margin = NAIVE_MARGIN
    pipes = summary.get(label, {})
    if pipeline in pipes and "naive-langchain" in pipes:
        lead = pipes[pipeline][metric] - pipes["naive-langchain"][metric]
        out.append((label, f"{metric} − naive", f"≥ {margin:g}", round(lead, 4), lead >= margin))
    return out


def target_status(run_: EvalRun, pipeline: str = "ipqa-hybrid") -> list[tuple[str, str, str, float, bool]]:
    """(dataset/split, metric, target as text, result, met) for every target this run measured."""
    summary, answers = run_.summary(), run_.answer_summary()
    out = []
    for ds, metric, kind, value in TARGETS:
        source = summary.get(ds, {}).get(pipeline, {}) if metric in METRICS else answers.get(ds, {})
        if metric not in source:
            continue
        result = float(source[metric])
        met = result >= value if kind == "min" else result <= value
        out.append((ds, metric, f"{'≥' if kind == 'min' else '≤'} {value:g}", result, met))
    return out + _relative_targets(run_, pipeline)


def check(run_: EvalRun, baseline: dict) -> list[str]:
    """Targets the baseline met that this run misses, and test-split metrics that dropped below the
    baseline by more than its tolerance (empty: pass). The tuning splits are never gated: they are what
    was tuned on. Targets never met yet are reported (target_status), not gated."""
    tolerance = float(baseline.get("tolerance", DEFAULT_TOLERANCE))
    summary, floors = run_.summary(), set(baseline.get("targets_met", ()))
    failures = [f"{ds} / target / {metric}: {result:.3f}, target {target}"
                for ds, metric, target, result, met in target_status(run_)
                if not met and f"{ds} {metric}" in floors]
    for ds, pipes in baseline.get("metrics", {}).items():
        for pipe, metrics in pipes.items():
            current = summary.get(ds, {}).get(pipe)
            if current is None or not is_test(ds):
                continue  # not run this time (other datasets or modes asked for), or a tuning split
            for metric, value in metrics.items():
                if current[metric] < value - tolerance:
                    failures.append(f"{ds} / {pipe} / {metric}: {current[metric]:.3f} < baseline {value:.3f} - {tolerance}")
    answers = run_.answer_summary()
    for ds, metrics in baseline.get("answers", {}).items():
        current = answers.get(ds)
        if current is None or not is_test(ds):
            continue
        for metric, value in metrics.items():
            # Abstaining on answerable questions and the wrong yes or no are the figures that must not rise.
            worse = current[metric] > value + tolerance if metric in LOWER_IS_BETTER \
                else current[metric] < value - tolerance
            if worse:
                failures.append(f"{ds} / answers / {metric}: {current[metric]:.3f} vs baseline {value:.3f} ± {tolerance}")
    return failures


def load_baseline(path: Path | None = None) -> dict | None:
    path = path or baseline_path()
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def from_json(data: dict) -> EvalRun:
    """The run a report.json was written from (``to_json``), for checking it again without re-running it."""
    try:
        return EvalRun(settings=dict(data.get("settings", {})),
                       results=[QuestionResult(**row) for row in data["questions"]],
                       answers=[AnswerResult(**row) for row in data.get("answers", [])])
    except (KeyError, TypeError) as e:
        raise ValueError(f"这份报告缺少逐题结果，无法检查（{e}）；请用本版本的 ipqa eval 重新生成") from e


def to_json(run_: EvalRun) -> dict:
    return {"settings": run_.settings, "summary": run_.summary(), "by_type": run_.by_type(),
            "answers_summary": run_.answer_summary(), "questions": [asdict(r) for r in run_.results],
            "answers": [asdict(a) for a in run_.answers]}


def resolve_datasets(names: Sequence[str]) -> list[Dataset]:
    """The datasets named, or by default those asked over the default knowledge base (policies_qa,
    laws_qa): STARD needs an index of its own (about 12 minutes to build) and runs when named."""
    from eval.questions import DEFAULT_COLLECTIONS, bundled_datasets, collections_for

    default = [n for n in bundled_datasets() if collections_for(n) == DEFAULT_COLLECTIONS]  # not stard_outside
    return [load_dataset(n) for n in (names or default)]

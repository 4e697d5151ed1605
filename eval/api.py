"""One call that runs an eval the way ``ipqa eval`` does."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval import report
from eval.runner import EvalRun, baseline_figures, baseline_path, check, load_baseline, resolve_datasets, run

log = logging.getLogger(__name__)
MODES = ("dense", "bm25", "hybrid")


@dataclass
class EvalOutcome:
    run: EvalRun
    paths: dict[str, Path]
    check_failures: list[str] | None = None  # None: no check asked for
    table: str = ""
    worst: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.check_failures


def evaluate(datasets: Sequence[str] = (), *, modes: Sequence[str] = ("hybrid",), index_dir: str | Path | None = None,
             out_dir: str | Path = Path(".ipqa") / "eval", k: int = 10, do_check: bool = False,
             update_baseline: bool = False, progress: bool = True, baselines: bool = True,
             baseline_file: str | Path | None = None, answers: bool = True, index=None) -> EvalOutcome:
    """Run the datasets through ipqa's retrieval in ``modes`` and the baselines, write reports,
    and compare with the committed baseline when ``do_check``.

    ``index``: an already open ``KnowledgeIndex`` to use (the app passes its own, so the model
    is not loaded twice); it is left open. Otherwise the index in ``index_dir`` is opened (and
    built over the bundled collections when missing) and closed at the end."""
    from assistant import index_sources, open_index
    from assistant.indexing import default_index_dir
    from assistant.retrieval import retrieve
    from assistant.service import Assistant
    from assistant.understanding import QuestionReader
    from corpus.errors import IndexNotBuilt
    from eval.baselines import NaiveLangChainPipeline
    from eval.runner import run_answers

    out_dir = Path(out_dir)
    data = resolve_datasets(datasets)
    if index is not None:
        ix, index_dir = index, Path(index.index_dir)
    else:
        index_dir = Path(index_dir or default_index_dir())
        try:
            ix = open_index(index_dir)
        except IndexNotBuilt:
            log.warning("no index in %s: building one over the bundled collections", index_dir)
            index_sources(index_dir, progress=progress)
            ix = open_index(index_dir)
    try:
        reader = QuestionReader(ix.documents())
        pipelines = {}
        for mode in modes:
            pipelines[f"ipqa-{mode}"] = (lambda m: lambda q, kk: ix.clear_query_cache() or [
                h.chunk.clause_id for h in retrieve(ix, q.question, history=q.history, k=2 * kk, mode=m,
                                                    reader=reader)])(mode)
        if baselines:
            # BM25 alone: the keyword index over ipqa's chunks, with no question understanding.
            pipelines["bm25-alone"] = lambda q, kk: [h.chunk.clause_id for h in ix.search(q.question, 2 * kk, mode="bm25")]
            documents = [ix.document(d.doc_id) for d in ix.documents()]
            naive = NaiveLangChainPipeline(documents, ix.embedder, cache_dir=out_dir.parent / "eval-cache")
            pipelines[naive.name] = lambda q, kk: naive.ranked_clauses(q.question, kk)
        ix.load_embedder()
        counts = ix.manifest.get("counts", {})
        settings = {"started_at": dt.datetime.now().isoformat(timespec="seconds"), "index_dir": str(index_dir),
                    "embedder": ix.manifest.get("embedder", {}).get("name"), "documents": counts.get("documents"),
                    "chunks": counts.get("chunks"), "k": k, "datasets": [d.name for d in data]}
        result = run(data, pipelines, k=k, settings=settings, progress=progress)
        if answers:
            assistant = Assistant(ix, llm=None)  # the gate measures the offline, extractive answers
            result.answers = run_answers(
                data, lambda q: ix.clear_query_cache() or assistant.ask(q.question, q.history), progress=progress)
        citations = {cid: citation for cid, (_, citation) in ix.catalog.clause_info(
            {c for r in result.results for c in r.gold + r.ranked[:1]} |
            {c for a in result.answers for c in a.gold + a.cited}).items()}
    finally:
        if index is None:
            ix.close()

    main = f"ipqa-{'hybrid' if 'hybrid' in modes else modes[0]}"
    target = Path(baseline_file) if baseline_file else baseline_path()
    baseline = load_baseline(target)
    failures = check(result, baseline) if (do_check and baseline) else ([] if do_check else None)
    if do_check and not baseline:
        failures = [f"no baseline file at {target}; record one with: ipqa eval --update-baseline"]
    if update_baseline:
        figures = baseline_figures(result, [p for p in result.pipelines() if p.startswith("ipqa-")])
        target.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    paths = report.write(result, out_dir, main_pipeline=main, citations=citations, baseline=baseline,
                         check_failures=failures)
    return EvalOutcome(run=result, paths=paths, check_failures=failures, table=report.console_table(result),
                       worst=report.worst_types(result, main))

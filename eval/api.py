"""One call that runs an eval the way ``ipqa eval`` does."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval import report
from eval.questions import DEFAULT_COLLECTIONS, Dataset, collections_for
from eval.runner import (EvalRun, baseline_figures, baseline_path, check, from_json, load_baseline, resolve_datasets,
                         run)

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


def index_dir_for(collections: Sequence[str], index_dir: Path | str) -> Path | str:
    """Where the index a dataset is asked over lives: ``index_dir`` (a folder or a database) for the
    app's collections, a sibling folder named after the others (``.ipqa/index-stard_laws``) for the rest."""
    if tuple(collections) == DEFAULT_COLLECTIONS:
        return index_dir
    if not isinstance(index_dir, Path):
        from corpus.errors import InvalidParameter

        raise InvalidParameter("STARD 评测需要它自己的知识库（另加 119 部法律），目前只能建在本地索引目录中："
                               "请不用 --store，改用 --index-dir")
    extra = "-".join(c for c in collections if c not in DEFAULT_COLLECTIONS)
    return index_dir.with_name(f"{index_dir.name}-{extra}")


def open_or_build(index_dir: Path, collections: Sequence[str], progress: bool):
    from assistant import index_sources, open_index
    from corpus.errors import IndexNotBuilt

    try:
        return open_index(index_dir)
    except IndexNotBuilt:
        log.warning("no index in %s: building one over %s", index_dir, ", ".join(collections))
        index_sources(index_dir, collections=collections, progress=progress)
        return open_index(index_dir)


def _pipelines(ix, modes: Sequence[str], baselines: bool) -> dict:
    from assistant.retrieval import retrieve
    from assistant.understanding import QuestionReader
    from eval.baselines import NaiveLangChainPipeline

    reader = QuestionReader.for_index(ix)
    pipelines = {}
    for mode in modes:
        pipelines[f"ipqa-{mode}"] = (lambda m: lambda q, kk: ix.clear_query_cache() or [
            h.chunk.clause_id for h in retrieve(ix, q.question, history=q.history, k=2 * kk, mode=m,
                                                reader=reader)])(mode)
    if baselines:
        # BM25 alone: the keyword index over ipqa's chunks, with no question understanding.
        pipelines["bm25-alone"] = lambda q, kk: [h.chunk.clause_id for h in ix.search(q.question, 2 * kk, mode="bm25")]
        documents = [ix.document(d.doc_id) for d in ix.documents()]
        naive = NaiveLangChainPipeline(documents, ix.embedder)
        pipelines[naive.name] = lambda q, kk: naive.ranked_clauses(q.question, kk)
    return pipelines


def _run_on(ix, data: list[Dataset], *, modes, baselines, k, progress, answers) -> tuple[EvalRun, dict]:
    """Every dataset of ``data`` through one open index; the answers too for datasets that score them."""
    from assistant.service import Assistant
    from eval.runner import run_answers

    pipelines = _pipelines(ix, modes, baselines)
    ix.load_embedder()
    result = run(data, pipelines, k=k, progress=progress)
    answered = [ds for ds in data if ds.scores_answers]
    if answers and answered:
        assistant = Assistant(ix, llm=None)  # the gate measures the offline, extractive answers
        result.answers = run_answers(
            answered, lambda q: ix.clear_query_cache() or assistant.ask(q.question, q.history), progress=progress)
    citations = {cid: citation for cid, (_, citation) in ix.clause_info(
        {c for r in result.results for c in r.gold + r.ranked[:1]} |
        {c for a in result.answers for c in a.gold + a.cited}).items()}
    counts = ix.manifest.get("counts", {})
    about = {"index_dir": ix.location, "embedder": ix.manifest.get("embedder", {}).get("name"),
             "documents": counts.get("documents"), "chunks": counts.get("chunks"),
             "datasets": [d.name for d in data]}
    return result, {"citations": citations, "index": about}


def evaluate(datasets: Sequence[str] = (), *, modes: Sequence[str] = ("hybrid",), index_dir: str | Path | None = None,
             out_dir: str | Path = Path(".ipqa") / "eval", k: int = 10, do_check: bool = False,
             update_baseline: bool = False, progress: bool = True, baselines: bool = True,
             baseline_file: str | Path | None = None, answers: bool = True, index=None) -> EvalOutcome:
    """Run the datasets through ipqa's retrieval in ``modes`` and the baselines, write reports,
    and compare with the committed baseline when ``do_check``.

    Each dataset is asked over its own collections (``eval.questions.collections_for``): the app's
    knowledge base in ``index_dir`` (built when missing), STARD over the laws it cites in a sibling
    index (built when missing). ``index``: an already open ``KnowledgeIndex`` of the app's knowledge
    base to use (the app passes its own, so the model is not loaded twice); it is left open."""
    from assistant.indexing import index_location
    from assistant.params import check_k

    k = check_k(k)  # before anything is built or run
    out_dir = Path(out_dir)
    data = resolve_datasets(datasets)
    index_dir = index.index_dir if index is not None else index_location(index_dir)
    groups: dict[tuple[str, ...], list[Dataset]] = {}
    for ds in data:
        groups.setdefault(collections_for(ds.name), []).append(ds)
    result = EvalRun(settings={"started_at": dt.datetime.now().isoformat(timespec="seconds"), "k": k,
                               "datasets": [d.name for d in data], "indexes": []}, results=[])
    citations: dict[str, str] = {}
    for collections, part in groups.items():
        own = index is not None and collections == DEFAULT_COLLECTIONS
        ix = index if own else open_or_build(index_dir_for(collections, index_dir), collections, progress)
        try:
            partial, extra = _run_on(ix, part, modes=modes, baselines=baselines, k=k, progress=progress,
                                     answers=answers)
        finally:
            if not own:
                ix.close()
        result.results += partial.results
        result.answers += partial.answers
        citations.update(extra["citations"])
        result.settings["indexes"].append(extra["index"])
    first = result.settings["indexes"][0] if result.settings["indexes"] else {}
    result.settings.update({key: first.get(key) for key in ("index_dir", "embedder", "documents", "chunks")})
    return _finish(result, modes, out_dir, citations, do_check=do_check, update_baseline=update_baseline,
                   baseline_file=baseline_file)


def _finish(result: EvalRun, modes, out_dir: Path, citations: dict, *, do_check: bool, update_baseline: bool,
            baseline_file) -> EvalOutcome:
    main = f"ipqa-{'hybrid' if 'hybrid' in modes else modes[0]}"
    target = Path(baseline_file) if baseline_file else baseline_path()
    baseline = load_baseline(target)
    failures = _checked(result, baseline, target) if do_check else None
    if update_baseline:
        figures = baseline_figures(result, [p for p in result.pipelines() if p.startswith("ipqa-")], baseline)
        target.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    paths = report.write(result, out_dir, main_pipeline=main, citations=citations, baseline=baseline,
                         check_failures=failures)
    return EvalOutcome(run=result, paths=paths, check_failures=failures, table=report.console_table(result),
                       worst=report.worst_types(result, main))


def _checked(result: EvalRun, baseline: dict | None, target: Path) -> list[str]:
    if not baseline:
        return [f"no baseline file at {target}; record one with: ipqa eval --update-baseline"]
    return check(result, baseline)


def check_report(report_path: str | Path, baseline_file: str | Path | None = None) -> list[str]:
    """``ipqa eval --check`` on a report already written (its report.json or folder), without running it
    again: the failures, empty when it passes."""
    from eval.compare import load

    target = Path(baseline_file) if baseline_file else baseline_path()
    return _checked(from_json(load(report_path)), load_baseline(target), target)

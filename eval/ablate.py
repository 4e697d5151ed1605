"""Switch each part of the ranking off in turn and report hit@1 / hit@5 / hit@10 per split:
``python -m eval.ablate policies_qa laws_qa`` (over the default index) or ``python -m eval.ablate stard``
(over the index of the laws STARD cites, next to it). This is how docs/retrieval.md decided which
rules stay: a rule stays only if switching it off lowers a test split and raises none.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from eval.questions import collections_for, load_dataset


def variants() -> dict[str, object]:
    """Name → RetrievalSettings: the default, everything of one kind off, and each rule off alone."""
    from assistant.retrieval import DEFAULT_SETTINGS
    from assistant.rules import RULES

    out = {"base": DEFAULT_SETTINGS, "no rules": replace(DEFAULT_SETTINGS, rules=False),
           "no colloquial": replace(DEFAULT_SETTINGS, colloquial=False),
           "no memory": replace(DEFAULT_SETTINGS, memory=False)}
    for f in fields(RULES):
        out[f"-{f.name}"] = replace(DEFAULT_SETTINGS, rule_weights=replace(RULES, **{f.name: 0.0}))
    return out


def ablate(datasets: list[str], index_dir: Path,
           only: list[str] | None = None) -> list[tuple[str, str, dict[str, float]]]:
    """(variant, dataset/split, figures) for every variant (or those named in ``only``) over the datasets."""
    from assistant import open_index
    from assistant.retrieval import retrieve
    from assistant.understanding import QuestionReader
    from eval.runner import run

    ix = open_index(index_dir)
    reader = QuestionReader.for_index(ix)
    data = [load_dataset(name) for name in datasets]
    rows = []
    for name, settings in variants().items():
        if only and name not in only:
            continue

        def pipeline(q, k, settings=settings):
            hits = retrieve(ix, q.question, history=q.history, k=2 * k, reader=reader, settings=settings)
            return [h.chunk.clause_id for h in hits]

        summary = run(data, {"p": pipeline}, progress=False).summary()
        rows += [(name, label, summary[label]["p"]) for label in sorted(summary)]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.ablate",
                                     description="逐项关闭检索规则，报告各数据集 dev/test 的命中率")
    parser.add_argument("datasets", nargs="+",
                        help="数据集名（同一次只给同一知识库上的数据集，如 policies_qa laws_qa，或 stard）")
    parser.add_argument("--index-dir", default=".ipqa/index",
                        help="知识库索引目录（stard 用其旁边的 -stard_laws 索引）")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="只跑这些变体（如 base、no rules、-term）")
    args = parser.parse_args(argv)
    collections = {collections_for(d) for d in args.datasets}
    if len(collections) != 1:
        parser.error("这些数据集需要不同的知识库，请分开运行")
    index_dir = Path(args.index_dir)
    if "stard_laws" in next(iter(collections)):
        index_dir = index_dir.with_name(index_dir.name + "-stard_laws")
    for name, label, f in ablate(args.datasets, index_dir, args.only):
        print(f"{name:16s} {label:18s} hit@1 {f['hit@1']:.3f}  hit@5 {f['hit@5']:.3f}  hit@10 {f['hit@10']:.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

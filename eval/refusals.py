"""How often the assistant refuses questions that have an answer, by reason: ``python -m eval.refusals
stard --split train``. For datasets without answer keywords (STARD's public questions) this is the
one answer figure there is: every question has relevant statutes, so a refusal is a loss unless the
clause found was wrong. Counts only; the questions of a test split are not listed."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from eval.questions import TUNING_SPLITS, collections_for, load_dataset
from index.core import DEFAULT_INDEX_DIR


def refusals(dataset: str, split: str, index_dir: Path = DEFAULT_INDEX_DIR
             ) -> tuple[Counter, int, list[tuple[str, str, tuple[str, ...]]]]:
    """(refusals by reason, answerable questions asked, the refused ones of a tuning split)."""
    from assistant.service import Assistant
    from eval.api import index_dir_for, open_or_build

    questions = [q for q in load_dataset(dataset).questions if q.split == split and q.gold]
    collections = collections_for(dataset)
    assistant = Assistant(open_or_build(index_dir_for(collections, Path(index_dir)), collections, progress=True))
    reasons: Counter = Counter()
    listed = []
    for q in questions:
        answer = assistant.ask(q.question, q.history)
        if answer.abstained:
            reasons[answer.reason] += 1
            if split in TUNING_SPLITS:
                listed.append((q.id, q.question, answer.missing))
    return reasons, len(questions), listed


def main() -> int:
    parser = argparse.ArgumentParser(description="统计有答案的问题被拒答的次数（按原因）")
    parser.add_argument("dataset", help="数据集名称（policies_qa、laws_qa、stard）")
    parser.add_argument("--split", default="test", help="dev、train 或 test（test 只给计数）")
    parser.add_argument("--index-dir", default=str(DEFAULT_INDEX_DIR), help="索引目录（默认 .ipqa/index）")
    args = parser.parse_args()
    reasons, n, listed = refusals(args.dataset, args.split, Path(args.index_dir))
    total = sum(reasons.values())
    print(f"{args.dataset}/{args.split}: refused {total} of {n} answerable questions ({total / max(n, 1):.3f}); "
          + ", ".join(f"{r}: {c}" for r, c in reasons.most_common()))
    for qid, question, missing in listed:
        print(f"  {qid} {question} → {'、'.join(missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

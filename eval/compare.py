"""Two eval reports compared question by question: ``ipqa compare OLD/report.json NEW/report.json``.

On sets this small a figure's change says little alone: retraining the ranker on features changed
for 50 of STARD's questions moved STARD test hit@1 by eight questions up and six down
(docs/retrieval.md), and one question is 0.015 of a policies split. So this counts, for each split and figure, how many questions a change
gained and how many it lost, with the exact two-sided sign test's p (how likely a split at least that
uneven is when each changed question is a coin toss) and the new figure's 95% Wilson interval.

Question ids are listed (``--list``) for dev and train splits only: a test question's result is
counted, never read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eval.metrics import wilson

RETRIEVAL = ("hit@1", "hit@5", "hit@10", "recall@10")
# Answer figures, each per question: whether a question no document answers was refused, whether an
# answerable one was answered, and the share of the expected keywords in an answerable one's answer;
# whether a near-miss question's not-found named the part the dataset says is missing; whether a yes/no
# question was led by its gold yes or no, and whether it was not led by the opposite one (the harm); and an
# answered question's citation precision and recall, over the questions both reports answered.
ANSWERS = {"unanswerable_refused": "应拒答的拒答了", "answerable_answered": "可回答的作答了", "keywords": "答案关键词",
           "missing_named": "说对所缺部分", "yes_no_right": "是非题答对", "yes_no_not_wrong": "是非题未答反",
           "citation_precision": "引用准确率（两边都作答的题）", "citation_recall": "引用召回率（两边都作答的题）"}
READABLE_SPLITS = ("dev", "train")

Values = dict[tuple[str, str], dict[str, float]]  # (split, figure) -> {question id: value}


@dataclass(frozen=True)
class Paired:
    """One figure of one split in both reports, over the questions both hold."""

    split: str
    figure: str
    old: float
    new: float
    n: int
    gained: tuple[str, ...]
    lost: tuple[str, ...]

    @property
    def p(self) -> float:
        return sign_test(len(self.gained), len(self.lost))

    @property
    def readable(self) -> bool:
        return self.split.rsplit("/", 1)[-1] in READABLE_SPLITS


def sign_test(gained: int, lost: int) -> float:
    """Exact two-sided sign test: the chance of a split at least as uneven as ``gained`` : ``lost``."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def retrieval_values(report: Mapping, pipeline: str) -> Values:
    out: Values = {}
    for q in report.get("questions", []):
        if q.get("pipeline") != pipeline:
            continue
        for figure in RETRIEVAL:
            if figure in q.get("metrics", {}):
                out.setdefault((q["dataset"], figure), {})[q["id"]] = float(q["metrics"][figure])
    return out


def answer_values(report: Mapping) -> Values:
    """The answer figures of ``ANSWERS`` per question, as ``ipqa eval`` counts them (eval/runner.py)."""
    out: Values = {}
    for a in report.get("answers", []):
        split, refused = a["dataset"], bool(a.get("abstained"))
        if a.get("should_abstain"):
            out.setdefault((split, "unanswerable_refused"), {})[a["id"]] = float(refused)
            if a.get("missing"):
                out.setdefault((split, "missing_named"), {})[a["id"]] = float(refused and a.get("reason") == a["missing"])
            continue
        out.setdefault((split, "answerable_answered"), {})[a["id"]] = float(not refused)
        out.setdefault((split, "keywords"), {})[a["id"]] = float(a.get("metrics", {}).get("keywords", 0.0))
        for figure in ("citation_precision", "citation_recall"):
            if not refused and figure in a.get("metrics", {}):
                out.setdefault((split, figure), {})[a["id"]] = float(a["metrics"][figure])
        if a.get("yes_no"):
            out.setdefault((split, "yes_no_right"), {})[a["id"]] = float(a.get("verdict") == a["yes_no"])
            out.setdefault((split, "yes_no_not_wrong"), {})[a["id"]] = float(a.get("verdict") in (None, a["yes_no"]))
    return out


def pair(old: Values, new: Values) -> list[Paired]:
    """Every (split, figure) both hold, over the question ids both hold, in the old report's order."""
    rows = []
    for key, before in old.items():
        after = new.get(key)
        ids = [i for i in before if after is not None and i in after]
        if not ids:
            continue
        rows.append(Paired(key[0], key[1], sum(before[i] for i in ids) / len(ids), sum(after[i] for i in ids) / len(ids),
                           len(ids), tuple(i for i in ids if after[i] > before[i]),
                           tuple(i for i in ids if after[i] < before[i])))
    return rows


def compare(old_report: Mapping, new_report: Mapping, pipeline: str = "ipqa-hybrid") -> list[Paired]:
    """The paired rows of two ``ipqa eval`` reports: ``pipeline``'s retrieval figures, then the answers'."""
    return (pair(retrieval_values(old_report, pipeline), retrieval_values(new_report, pipeline))
            + pair(answer_values(old_report), answer_values(new_report)))


def load(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"找不到评测报告 {path}（先运行 ipqa eval --out 目录）")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} 不是 ipqa eval 写的评测报告（无法按 JSON 读取：{e}）") from e


def render(rows: list[Paired], list_ids: bool = False) -> str:
    """The rows that changed as a table (Chinese, for the reader), then how many did not."""
    changed = [r for r in rows if r.gained or r.lost]
    if not rows:
        return "两份报告没有共同的数据集和指标，无法比较。"
    if not changed:
        return f"两份报告逐题相同（{len(rows)} 项指标）。"
    lines = ["| 数据集 | 指标 | 题数 | 旧 | 新（95% 区间） | 变好 | 变差 | 符号检验 p |", "|---|---|---|---|---|---|---|---|"]
    for r in changed:
        low, high = wilson(r.new, r.n)
        lines.append(f"| {r.split} | {ANSWERS.get(r.figure, r.figure)} | {r.n} | {r.old:.3f} | {r.new:.3f}"
                     f"（{low:.2f}–{high:.2f}） | +{len(r.gained)} | −{len(r.lost)} | {r.p:.3f} |")
    lines.append("")
    lines.append(f"没有变化的指标：{len(rows) - len(changed)} 项。p 较大（如 > 0.2）时，变化与逐题随机涨落无法区分。")
    if list_ids:
        lines += _listed(changed)
    return "\n".join(lines)


def _listed(changed: list[Paired]) -> list[str]:
    out = [""]
    for r in changed:
        if r.readable:
            out.append(f"{r.split} {ANSWERS.get(r.figure, r.figure)}：变好 {' '.join(r.gained) or '—'}；"
                       f"变差 {' '.join(r.lost) or '—'}")
        else:
            out.append(f"{r.split} {ANSWERS.get(r.figure, r.figure)}：测试集只计数，不列题目")
    return out

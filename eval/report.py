"""Writing an eval run: report.md, report.json, chart.png, and the console table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eval.metrics import wilson
from eval.runner import METRICS, EvalRun, is_test, target_status, to_json

log = logging.getLogger(__name__)

_HEADERS = ["hit@1", "hit@1 95% CI", "hit@3", "hit@5", "hit@10", "MRR@10", "nDCG@10", "recall@10", "p50 ms",
            "p95 ms", "n"]


def summary_rows(run: EvalRun) -> list[list[str]]:
    """One row per dataset/split and pipeline; the interval says how far one run's hit@1 can be trusted
    (one question moves it by 1/n)."""
    rows = []
    for ds, pipes in run.summary().items():
        for pipe, f in pipes.items():
            low, high = wilson(f["hit@1"], int(f["n"]))
            rows.append([ds, pipe, f"{f['hit@1']:.3f}", f"{low:.2f}–{high:.2f}"]
                        + [f"{f[m]:.3f}" for m in METRICS[1:]]
                        + [f"{f['p50_ms']:.1f}", f"{f['p95_ms']:.1f}", str(int(f["n"]))])
    return rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


_ANSWER_HEADERS = ["keywords", "cite prec.", "cite recall", "numbers ok", "abstain unans.", "abstain ans.",
                   "missing named", "yes/no right·wrong", "ask p50 ms", "ask p95 ms", "n"]


def answer_rows(run: EvalRun) -> list[list[str]]:
    rows = []
    for ds, f in run.answer_summary().items():
        # A set of questions to refuse only (stard_outside) has no answer to score: "—", not 0.
        shown = lambda m: f"{f[m]:.3f}" if f.get("n_answerable", 1) or m == "abstain_on_unanswerable" else "—"  # noqa: E731
        rows.append([ds] + [shown(m) for m in ("keywords", "citation_precision", "citation_recall",
                                              "number_faithfulness", "abstain_on_unanswerable",
                                              "abstain_on_answerable")]
                    + [f"{f['missing_named']:.3f} ({int(f['n_near_miss'])})" if f.get("n_near_miss") else "—"]
                    + [f"{f['yes_no_right']:.2f}·{f['yes_no_wrong']:.2f} ({int(f['n_yes_no'])})" if f.get("n_yes_no") else "—"]
                    + [f"{f['p50_ms']:.1f}", f"{f['p95_ms']:.1f}", str(int(f["n"]))])
    return rows


def _plain_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def console_table(run: EvalRun) -> str:
    rows = summary_rows(run)
    text = _plain_table(["dataset", "pipeline"] + _HEADERS, rows) + "\n\n" if rows else ""
    if run.answers:
        text += "answers (ipqa, extractive):\n" + _plain_table(["dataset"] + _ANSWER_HEADERS, answer_rows(run))
    targets = target_rows(run)
    if targets:
        missed = sum(1 for r in targets if r[-1] != "是")
        text += f"\n\n目标（{len(targets) - missed}/{len(targets)} 项达到；{_GATE_NOTE}）：\n" + _plain_table(_TARGET_HEADERS, targets)
    return text


_TARGET_HEADERS = ["dataset", "metric", "target", "result", "met"]
_GATE_NOTE = "已达到的目标记入基线后由 --check 把关，未达到的只报告"


def target_rows(run: EvalRun) -> list[list[str]]:
    return [[ds, metric, target, f"{result:.3f}" if result < 10 else f"{result:.1f}", "是" if met else "否"]
            for ds, metric, target, result, met in target_status(run)]


def worst_types(run: EvalRun, pipeline: str, n: int = 3) -> list[tuple[str, str, float, int]]:
    """(dataset, type, hit@5, questions) of the weakest question types for a pipeline."""
    found = []
    for ds, types in run.by_type().items():
        for qtype, pipes in types.items():
            if pipeline in pipes:
                found.append((ds, qtype, pipes[pipeline]["hit@5"], int(pipes[pipeline]["n"])))
    return sorted(found, key=lambda x: (x[2], -x[3]))[:n]


CJK_FONTS = ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "Source Han Sans SC", "SimHei", "Microsoft YaHei",
             "PingFang SC")


def pyplot():
    """matplotlib's pyplot, off screen, writing Chinese with the first CJK font this machine has
    (Debian: apt-get install fonts-wqy-zenhei); without one, a warning says what to install."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    found = [name for name in CJK_FONTS if name in have]
    if not found:
        log.warning("no CJK font found: Chinese in charts shows as boxes (apt-get install fonts-wqy-zenhei)")
    plt.rcParams["font.sans-serif"] = found + list(plt.rcParams["font.sans-serif"])
    plt.rcParams["axes.unicode_minus"] = False
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "weight normal not found, using 500"
    return plt


def chart(run: EvalRun, path: Path) -> None:
    """Metrics by pipeline (top row) and hit@5 by question type (bottom row), one column per dataset."""
    plt = pyplot()

    summary, by_type = run.summary(), run.by_type()
    datasets, pipelines = run.datasets(), run.pipelines()
    if not datasets:  # only sets of questions to refuse (stard_outside): answers, no retrieval figures
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "本次评测的问题都应拒答：没有检索指标，见回答表", ha="center", va="center")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    fig, axes = plt.subplots(2, len(datasets), figsize=(7 * len(datasets), 8), squeeze=False)
    width = 0.8 / max(1, len(pipelines))
    for col, ds in enumerate(datasets):
        ax = axes[0][col]
        for i, pipe in enumerate(pipelines):
            values = [summary[ds][pipe][m] for m in METRICS]
            ax.bar([x + i * width for x in range(len(METRICS))], values, width, label=pipe)
        ax.set_xticks([x + width * (len(pipelines) - 1) / 2 for x in range(len(METRICS))], METRICS, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{ds}：各检索方案的指标")
        ax.legend(fontsize=8)
        ax = axes[1][col]
        types = sorted(by_type.get(ds, {}))
        for i, pipe in enumerate(pipelines):
            values = [by_type[ds][t].get(pipe, {}).get("hit@5", 0) for t in types]
            ax.bar([x + i * width for x in range(len(types))], values, width, label=pipe)
        ax.set_xticks([x + width * (len(pipelines) - 1) / 2 for x in range(len(types))],
                      [f"{t}\n(n={int(next(iter(by_type[ds][t].values()))['n'])})" for t in types], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{ds}：各类问题的 hit@5")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _failures(run: EvalRun, pipeline: str, citations: dict[str, str], limit: int = 200) -> list[str]:
    lines = []
    # Only the tuning splits: the test splits' failures are not read, so nothing is tuned to them.
    misses = [r for r in run.results if r.pipeline == pipeline and r.gold and r.metrics["hit@1"] < 1
              and not is_test(r.dataset)]
    misses.sort(key=lambda r: (r.dataset, r.metrics["hit@5"], r.id))
    for r in misses[:limit]:
        expected = "；".join(citations.get(g, g) for g in r.gold)
        first = citations.get(r.ranked[0], r.ranked[0]) if r.ranked else "（无结果）"
        where = next((i + 1 for i, c in enumerate(r.ranked) if c in r.gold), None)
        rank = f"第 {where} 位" if where else "前 10 位中没有"
        lines.append(f"- **{r.dataset}/{r.id}** [{r.type}] {r.question}\n  - 期望：{expected}（{rank}）\n  - 排第一：{first}")
    if len(misses) > limit:
        lines.append(f"- …另有 {len(misses) - limit} 个")
    return lines


def write(run: EvalRun, out_dir: Path, *, main_pipeline: str, citations: dict[str, str],
          baseline: dict | None, check_failures: list[str] | None) -> dict[str, Path]:
    """Write report.md, report.json and chart.png into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "report.md", "json": out_dir / "report.json", "png": out_dir / "chart.png"}
    data = to_json(run)
    data["main_pipeline"] = main_pipeline
    paths["json"].write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    chart(run, paths["png"])

    s = run.settings
    parts = [
        "# ipqa 检索评测报告",
        "",
        f"- 时间：{s.get('started_at', '')}；索引：`{s.get('index_dir', '')}`；向量模型：{s.get('embedder', '')}",
        f"- 文档 {s.get('documents', '?')} 个，片段 {s.get('chunks', '?')} 个；每题取前 {s.get('k', 10)} 个条款（条款级评测）",
        "- 管线：`ipqa-*` 为本项目（按条款切分，dense 向量 / bm25 关键词 / hybrid 融合）；"
        "`naive-langchain` 为 LangChain 默认做法（RecursiveCharacterTextSplitter 500 字、重叠 50，同一向量模型，只用向量检索），"
        "其片段按重叠最多的条款计；`bm25-alone` 为只用 BM25 关键词检索（不做问题理解）的基线。无答案问题不计入检索指标。",
        "",
        "## 总表",
        "",
        markdown_table(["dataset", "pipeline"] + _HEADERS, summary_rows(run)),
        "",
        "## 按问题类型（hit@5 / MRR@10）",
        "",
    ]
    parts += _by_type_section(run)
    worst = worst_types(run, main_pipeline)
    parts += ["## 最弱的问题类型（" + main_pipeline + "，按 hit@5）", ""]
    parts += [f"{i}. {ds} / {t}: hit@5 = {v:.2f}（{n} 题）" for i, (ds, t, v, n) in enumerate(worst, start=1)]
    parts += ["", "![metrics](chart.png)", ""]
    parts += _answers_section(run)
    parts += _gate_section(run, baseline, check_failures)
    parts += [f"## {main_pipeline} 未把期望条款排在第一位的问题（只列 dev/train 部分；test 部分只报告数字）", ""]
    parts += _failures(run, main_pipeline, citations)
    paths["md"].write_text("\n".join(parts) + "\n", encoding="utf-8")
    return paths


def _by_type_section(run: EvalRun) -> list[str]:
    """Hit@5 / MRR@10 by question type, one table per dataset."""
    parts: list[str] = []
    pipelines = run.pipelines()
    for ds, types in run.by_type().items():
        rows = []
        for qtype in sorted(types):
            n = int(next(iter(types[qtype].values()))["n"])
            rows.append([qtype, str(n)] + [
                f"{types[qtype][p]['hit@5']:.2f} / {types[qtype][p]['mrr@10']:.2f}" if p in types[qtype] else "—"
                for p in pipelines])
        parts += [f"### {ds}", "", markdown_table(["type", "n"] + pipelines, rows), ""]
    return parts


def _answers_section(run: EvalRun) -> list[str]:
    """The answers' table and the dev questions answered wrongly."""
    if not run.answers:
        return []
    parts = ["## 回答（摘录式，不用大模型）", "",
              "keywords：答案含期望关键词的比例；cite prec./recall：所引条款含标准答案的比例 / 标准答案条款被引用的比例；"
              "numbers ok：答案中每个数字都出现在所引条款（含其出处行：标题、文号）中的比例；abstain unans./ans.：对无答案 / 有答案问题表示“未找到”的比例；missing named：近似问题（数据集注明缺什么）的“未找到”说对了所缺部分（主体、数值、时期或地区）的比例，括号内为题数；yes/no right·wrong：是非题（数据集注明依条款应答“是”或“否”）的回答开头给出正确结论（如“有。”“会。”）的比例 · 给出相反结论的比例，括号内为题数。",
              "", markdown_table(["dataset"] + _ANSWER_HEADERS, answer_rows(run)), ""]
    wrong = [a for a in run.answers if not is_test(a.dataset) and (
        a.abstained != a.should_abstain or (not a.abstained and a.metrics["keywords"] < 1)
        or (a.abstained and a.missing and a.reason != a.missing))]
    if wrong:
        parts += ["### 回答有问题的题目（只列调参用的 dev 部分；test 部分的失败不列出）", ""]
        for a in wrong[:150]:
            why = ("应答未答" if a.abstained else "应拒未拒") if a.abstained != a.should_abstain else \
                f"所缺说错（应为 {a.missing}，说的是 {a.reason}）" if a.abstained else "缺关键词"
            rewritten = f"（改写为：{a.rewritten_query}）" if a.rewritten_query else ""
            parts.append(f"- **{a.dataset}/{a.id}** [{a.type}] {why}：{a.question}{rewritten}\n  - 回答：{a.answer[:160]}")
        parts.append("")
    return parts


def _gate_section(run: EvalRun, baseline: dict | None, check_failures: list[str] | None) -> list[str]:
    """The targets and the comparison with the baseline."""
    parts: list[str] = []
    if target_rows(run):
        parts += ["## 目标", "", f"{_GATE_NOTE}。", "", markdown_table(_TARGET_HEADERS, target_rows(run)), ""]
    if baseline:
        parts += ["## 与基线比较", "", f"容差 {baseline.get('tolerance')}（{baseline.get('recorded_at', '')} 记录）", ""]
        if check_failures is None:
            parts.append("（本次未做检查）")
        elif check_failures:
            parts += [f"- 未通过：{f}" for f in check_failures]
        else:
            parts.append("基线记录的目标仍然达到，test 部分的指标不低于基线减容差：通过。")
        parts.append("")
    return parts

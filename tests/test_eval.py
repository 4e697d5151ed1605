"""Eval datasets, metrics and the ``ipqa eval`` runner."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eval.compare import compare, load, render, sign_test
from eval.metrics import (abstention_scores, citation_precision, citation_recall, hit_at, keywords_present, mrr_at,
                          ndcg_at, number_faithfulness, numbers_in, percentile, recall_at)
from eval.questions import TYPES, load_dataset, validate
from eval.runner import AnswerResult, EvalRun, QuestionResult, check
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def docs(policies, laws):
    return {**policies, **laws}


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1) if all("\u4e00" <= c <= "\u9fff" for c in text[i:i + 2])}


@pytest.mark.parametrize("name,minimum", [("policies_qa", 120), ("laws_qa", 60)])
def test_datasets_are_sound(docs, name, minimum):
    dataset = load_dataset(name)
    assert validate(dataset, docs) == []  # every gold span exists verbatim in its clause, and more
    assert len(dataset.questions) >= minimum
    types = {q.type for q in dataset.questions}
    assert {"multi", "unanswerable", "followup", "procedure"} <= types <= set(TYPES)
    # Written the way users ask: a good share shares few words with the source.
    answerable = [q for q in dataset.questions if q.gold]
    low = 0
    for q in answerable:
        source = set().union(*(_bigrams(docs[g.doc_id].clause(g.clause_id).text) for g in q.gold))
        asked = _bigrams(q.question)
        low += len(asked & source) < 0.3 * max(1, len(asked))
    assert low / len(answerable) >= 0.25


@pytest.mark.parametrize("name, pairs, kinds", [("everyday_ip", 50, {"法律", "行政法规", "司法解释"}),
                                               ("everyday_policies", 30, {"规划", "工作方案", "实施方案", "工作要点"})])
def test_the_everyday_probes_are_sound(docs, name, pairs, kinds):
    """eval/probes/everyday_*.jsonl: short questions, each asked bare and with a final ？, every gold
    clause and answer keyword in the bundled documents (the IP laws; the five policies)."""
    dataset = load_dataset(ROOT / "eval" / "probes" / f"{name}.jsonl")
    assert validate(dataset, docs) == []
    assert len(dataset.questions) == 2 * pairs and all(q.gold and len(q.answer_keywords) == 1 for q in dataset.questions)
    for q in dataset.questions:
        texts = [docs[g.doc_id].clause(g.clause_id).text for g in q.gold]
        assert any(q.answer_keywords[0] in t for t in texts), q.id
        assert {docs[g.doc_id].kind for g in q.gold} <= kinds, q.id
    bare = {q.id: q.question for q in dataset.questions if not q.id.endswith("q")}
    asked = [q for q in dataset.questions if q.id.endswith("q")]
    assert len(bare) == len(asked) == pairs and all(q.question == bare[q.id[:-1]] + "？" for q in asked)
    assert max(len(question) for question in bare.values()) <= 14


@pytest.mark.parametrize("name, rows, near_misses", [("fresh_short", 120, 30), ("lay_short", 140, 40)])
def test_the_fresh_probes_are_sound(docs, name, rows, near_misses):
    """eval/probes/fresh_short.jsonl and lay_short.jsonl: short questions written without running the assistant
    (by two helpers, on 2026-12-08) — answerable ones (at most 16 characters, one answer keyword found verbatim in
    a gold clause) and near misses (at most 24, with what they lack and what was searched), none asked word for
    word in another dataset, probe or training set."""
    from eval.questions import MISSING, split_of

    path = ROOT / "eval" / "probes" / f"{name}.jsonl"
    dataset = load_dataset(path)
    assert validate(dataset, docs) == []
    assert len(dataset.questions) == rows and len({q.id for q in dataset.questions}) == rows
    assert all(q.split == split_of(q.id, dataset.name) for q in dataset.questions)
    unanswerable = [q for q in dataset.questions if not q.gold]
    assert len(unanswerable) == near_misses
    for q in unanswerable:
        assert q.type == "unanswerable" and not q.answer_keywords and q.missing in MISSING and q.note, q.id
        assert len(q.question) <= 24, q.id
    for q in dataset.questions:
        if q.gold:
            assert len(q.answer_keywords) == 1 and len(q.question) <= 16, q.id
            texts = [docs[g.doc_id].clause(g.clause_id).text for g in q.gold]
            assert any(q.answer_keywords[0] in t for t in texts), q.id
    others = set()
    for other in [*(ROOT / "eval" / "datasets").glob("*.jsonl"), *(ROOT / "eval" / "probes").glob("*.jsonl"),
                  *(ROOT / "eval" / "training").glob("*.jsonl")]:
        if other.resolve() != path.resolve():
            others |= {json.loads(line)["question"] for line in other.read_text(encoding="utf-8").splitlines() if line.strip()}
    bare = {o.rstrip("？?") for o in others}
    assert not [q.id for q in dataset.questions if q.question in others or q.question.rstrip("？?") in bare]


def test_splits_are_fixed_by_the_id_hash(docs):
    """Half dev (train for STARD), half test, by a hash of the id; the recorded split must be the hash's."""
    from eval.questions import split_of

    for name, tuning in (("policies_qa", "dev"), ("laws_qa", "dev"), ("stard", "train")):
        questions = load_dataset(name).questions
        assert all(q.split == split_of(q.id, name) for q in questions)
        test = sum(q.split == "test" for q in questions)
        assert {q.split for q in questions} == {tuning, "test"} and 0.35 < test / len(questions) < 0.65
    assert split_of("p001") == split_of("p001", "policies_qa") and split_of("stard-5", "stard") in ("train", "test")
    moved = load_dataset("laws_qa")
    moved.questions[0] = type(moved.questions[0])(**{**moved.questions[0].__dict__, "split": "test"
                                                     if moved.questions[0].split == "dev" else "dev"})
    assert any("but its id's hash gives" in p for p in validate(moved, docs))


def test_stard_questions_map_to_clauses(docs):
    """Every STARD question's articles are clauses of the shipped laws (eval/stard.py mapped them)."""
    from corpus import load_collection

    laws = {**docs, **{d.doc_id: d for d in load_collection("stard_laws").documents}}
    dataset = load_dataset("stard")
    assert len(dataset.questions) == 1142 and validate(dataset, laws) == []
    # every gold is an article (a law without chapters has no "/" in its clause path)
    assert all(g.clause_id.split(":", 1)[1].rsplit("/", 1)[-1].startswith("第") for q in dataset.questions for g in q.gold)


@pytest.mark.stard
def test_stard_over_the_laws_it_cites(stard_eval):
    """`ipqa eval stard --check` (run in the background from the start of the session): its targets on
    the test split hold, beside the naive LangChain pipeline on the same index."""
    assert stard_eval["returncode"] == 0, stard_eval["log"][-4000:]
    summary = stard_eval["report"]["summary"]
    assert set(summary) == {"stard/train", "stard/test"}
    test = summary["stard/test"]
    assert test["ipqa-hybrid"]["n"] > 500
    assert test["ipqa-hybrid"]["recall@10"] >= test["naive-langchain"]["recall@10"] + 0.15


def test_policy_questions_name_places(docs):
    dataset = load_dataset("policies_qa")
    places = ("荆门", "掇刀", "沧州", "乌海", "长沙", "芙蓉", "湖北", "全省")
    named = sum(any(p in q.question for p in places) for q in dataset.questions)
    assert named / len(dataset.questions) > 0.5


def test_one_split_of_a_dataset_is_named_as_the_report_names_it(tmp_path):
    from corpus.errors import InvalidParameter

    whole = load_dataset("laws_qa")
    test = load_dataset("laws_qa/test")
    assert test.name == "laws_qa" and test.questions == [q for q in whole.questions if q.split == "test"]
    outside = load_dataset("stard_outside/train")
    assert outside.name == "stard_outside" and {q.split for q in outside.questions} == {"train"}
    assert len(outside.questions) + len(load_dataset("stard_outside/test").questions) == len(
        load_dataset("stard_outside").questions)
    with pytest.raises(InvalidParameter, match="没有 train 部分的问题（它分为：dev、test）"):
        load_dataset("laws_qa/train")
    with pytest.raises(InvalidParameter, match="没有评测集「laws」"):
        load_dataset("laws")
    # a file of one's own, split the same way; a broken line is named
    path = tmp_path / "mine.jsonl"
    path.write_text('{"id": "p001", "question": "专利保护多久", "type": "fact"}\n{"id": "m2"', encoding="utf-8")
    with pytest.raises(InvalidParameter, match="评测集 mine.jsonl 第 2 行无法读取"):
        load_dataset(path)
    # from the command line: a Chinese error and status 2, no traceback
    result = subprocess.run([sys.executable, "-m", "cli", "eval", "laws_qa/train", "--quiet"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "错误：评测集「laws_qa」没有 train 部分" in result.stderr
    assert "Traceback" not in result.stderr
    # so is a k that ranks nothing, before any index is opened or built
    result = subprocess.run([sys.executable, "-m", "cli", "eval", "laws_qa/test", "-k", "0", "--index-dir",
                             str(tmp_path / "none"), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "结果数应为 1 到 100 之间的整数，而不是「0」" in result.stderr
    assert not (tmp_path / "none").exists()


def test_validate_catches_broken_rows(docs, tmp_path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {"id": "b1", "question": "发明专利保护多久", "type": "fact", "history": [],
         "gold": [{"clause_id": "专利法(2020-10-17):第5章/第42条", "span": "发明专利权的期限为30年"}],
         "answer_keywords": ["二十年"]},
        {"id": "b1", "question": "那外观设计呢", "type": "followup", "history": [], "gold": [
            {"clause_id": "专利法(2020-10-17):第9章/第99条", "span": "x"}], "answer_keywords": []},
        {"id": "b3", "question": "深圳补贴多少", "type": "unanswerable", "history": [],
         "gold": [{"clause_id": "专利法(2020-10-17):第5章/第42条", "span": "二十年"}], "answer_keywords": []},
        {"id": "b4", "question": "外观设计专利能保护十五年吗", "type": "yesno", "history": [],
         "gold": [{"clause_id": "专利法(2020-10-17):第5章/第42条", "span": "外观设计专利权的期限为十五年"}],
         "answer_keywords": [], "yes_no": "是"},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    problems = validate(load_dataset(path), docs)
    joined = "\n".join(problems)
    for expected in ["span not verbatim", "duplicate id", "unknown clause", "follow-up needs history",
                     "unanswerable questions (and only they) have no gold", "b4: yes_no is 'yes' or 'no'"]:
        assert expected in joined


def test_retrieval_metrics_by_hand():
    ranked = ["a", "b", "c", "d"]
    assert hit_at(ranked, {"c"}, 1) == 0 and hit_at(ranked, {"c"}, 3) == 1
    assert mrr_at(ranked, {"c", "d"}) == pytest.approx(1 / 3)
    assert ndcg_at(ranked, {"a"}) == 1.0
    assert ndcg_at(ranked, {"b", "d"}) == pytest.approx((1 / 1.5849625 + 1 / 2.3219281) / (1 + 1 / 1.5849625))
    assert recall_at(ranked, {"a", "d", "z"}, 10) == pytest.approx(2 / 3)
    assert recall_at(ranked, {"d"}, 3) == 0.0
    assert percentile([10, 20, 30, 40], 50) == 25 and percentile([5], 95) == 5


def test_answer_metrics_by_hand():
    answer = "到2025年，园区专利年授权量达到2500件以上[1]，PCT专利年申请量达到80件以上[1]。"
    assert keywords_present(answer, ["2500件以上", "80件以上", "3亿元"]) == pytest.approx(2 / 3)
    assert numbers_in(answer) == ["2025", "2500", "80"]
    clause = "到2025年,园区专利年授权量达到2500件以上,PCT专利年申请量达到80件以上"
    assert number_faithfulness(answer, [clause]) == 1.0
    assert number_faithfulness("授权量达到3000件[1]。", [clause]) == 0.0
    assert number_faithfulness("期限为二十年。", ["发明专利权的期限为二十年"]) == 1.0
    assert citation_precision(["a", "b"], {"a"}) == 0.5 and citation_recall(["a"], {"a", "c"}) == 0.5
    assert citation_precision([], set()) == 1.0
    scores = abstention_scores([True, True, False, False], [True, False, True, False])
    assert scores == {"abstain_precision": 0.5, "abstain_recall": 0.5}


def test_a_yes_no_lead_is_scored_against_the_gold_and_the_wrong_one_counts_against():
    def result(i: str, gold_says: str, led: str | None) -> AnswerResult:
        return AnswerResult("d/test", i, "yesno", "?", "…", False, False, ["g"], ["g"], None, 1.0,
                            {"keywords": 1.0, "citation_precision": 1.0, "citation_recall": 1.0,
                             "number_faithfulness": 1.0}, verdict=led, yes_no=gold_says)
    answers = [result("a", "yes", "yes"), result("b", "no", "yes"), result("c", "no", None), result("d", "", "yes")]
    figures = EvalRun({}, [], answers).answer_summary()["d/test"]
    # rounded to four places, as every answer figure
    assert (figures["yes_no_right"], figures["yes_no_wrong"], figures["n_yes_no"]) == (0.3333, 0.3333, 3)
    baseline = {"tolerance": 0.02, "answers": {"d/test": {"yes_no_wrong": 0.0}}}
    assert any("yes_no_wrong" in f for f in check(EvalRun({}, [], answers), baseline))  # a rise fails the gate


def _run(hit: float, dataset: str = "d/test") -> EvalRun:
    results = [QuestionResult("ipqa-hybrid", dataset, f"q{i}", "fact", "?", ["g"], ["g"] if i < hit * 10 else ["x"], 1.0,
                              {"hit@1": float(i < hit * 10), "hit@3": float(i < hit * 10), "hit@5": float(i < hit * 10),
                               "hit@10": float(i < hit * 10), "mrr@10": float(i < hit * 10),
                               "ndcg@10": float(i < hit * 10), "recall@10": float(i < hit * 10)})
               for i in range(10)]
    return EvalRun({}, results)


def test_check_flags_drops_beyond_tolerance():
    baseline = {"tolerance": 0.02, "metrics": {"d/test": {"ipqa-hybrid": {"hit@1": 0.8, "hit@5": 0.8}}}}
    assert check(_run(0.8), baseline) == []
    failures = check(_run(0.7), baseline)
    assert len(failures) == 2 and "hit@1" in failures[0]
    assert check(_run(0.7), {"tolerance": 0.15, "metrics": baseline["metrics"]}) == []
    # The tuning split is never gated: it is what was tuned on.
    assert check(_run(0.7, "d/dev"), {"tolerance": 0.02, "metrics": {"d/dev": baseline["metrics"]["d/test"]}}) == []


def test_targets_are_reported_met_or_not():
    from eval.runner import baseline_figures, target_status

    rows = {(ds, m): (target, result, met) for ds, m, target, result, met in target_status(_run(0.9))}
    assert rows == {}  # dataset "d/test" has no targets
    run = _run(0.9)
    for r in run.results:
        r.dataset = "laws_qa/test"
    status = {m: (result, met) for ds, m, _, result, met in target_status(run)}
    assert status["hit@1"] == (0.9, True) and status["hit@5"] == (0.9, False)  # laws test: ≥ 0.85 / ≥ 0.97
    # A target never met is an aim: reported, not gated. Once a baseline records it met, it is a floor.
    assert check(run, {"tolerance": 0.02, "metrics": {}}) == []
    floors = {"tolerance": 0.02, "metrics": {}, "targets_met": ["laws_qa/test hit@5"]}
    assert check(run, floors) == ["laws_qa/test / target / hit@5: 0.900, target ≥ 0.97"]
    recorded = baseline_figures(run, ["ipqa-hybrid"], {"metrics": {"other/test": {"ipqa-hybrid": {"hit@1": 0.5}}},
                                                       "targets_met": ["other/test hit@1", "laws_qa/test hit@5"]})
    assert recorded["targets_met"] == ["laws_qa/test hit@1", "other/test hit@1"]
    assert recorded["metrics"]["other/test"] == {"ipqa-hybrid": {"hit@1": 0.5}}  # a set not run keeps its figures
    assert recorded["metrics"]["laws_qa/test"]["ipqa-hybrid"]["hit@1"] == 0.9


def test_sign_test_by_hand():
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 1) == pytest.approx(10 / 16)  # 2 * (C(4,0) + C(4,1)) / 2^4
    assert sign_test(1, 7) == pytest.approx(18 / 256)  # 2 * (1 + 8) / 2^8
    assert sign_test(0, 10) == pytest.approx(2 / 1024)
    assert sign_test(6, 6) == 1.0


def _report(hits: dict[str, dict[str, int]], refused: dict[str, bool]) -> dict:
    """A report as ``ipqa eval`` writes it: hit@1 per question of two splits, and answers of one."""
    questions = [{"pipeline": "ipqa-hybrid", "dataset": split, "id": qid, "metrics": {"hit@1": float(v)}}
                 for split, rows in hits.items() for qid, v in rows.items()]
    questions.append({"pipeline": "naive-langchain", "dataset": "laws_qa/dev", "id": "l1", "metrics": {"hit@1": 0.0}})
    answers = [{"dataset": "laws_qa/test", "id": qid, "abstained": r, "should_abstain": qid.startswith("u"),
                "metrics": {"keywords": 0.0 if r else 1.0}} for qid, r in refused.items()]
    return {"questions": questions, "answers": answers}


def test_reports_are_compared_question_by_question_and_test_questions_only_counted():
    old = _report({"laws_qa/dev": {"l1": 1, "l2": 0, "l3": 0, "l4": 1}, "laws_qa/test": {"t1": 0, "t2": 1}},
                  {"u1": False, "u2": True, "a1": True, "a2": False})
    new = _report({"laws_qa/dev": {"l1": 1, "l2": 1, "l3": 1, "l4": 0, "l9": 1}, "laws_qa/test": {"t1": 1, "t2": 1}},
                  {"u1": True, "u2": True, "a1": False, "a2": False})
    rows = {(r.split, r.figure): r for r in compare(old, new)}
    dev = rows[("laws_qa/dev", "hit@1")]
    # l9 is in the new report only, so it is left out; the naive pipeline's l1 is not ipqa-hybrid's.
    assert (dev.n, dev.gained, dev.lost, dev.old, dev.new) == (4, ("l2", "l3"), ("l4",), 0.5, 0.75)
    assert rows[("laws_qa/test", "unanswerable_refused")].gained == ("u1",)
    assert rows[("laws_qa/test", "answerable_answered")].gained == ("a1",)
    assert rows[("laws_qa/test", "keywords")].gained == ("a1",)
    text = render(list(rows.values()), list_ids=True)
    assert "l2 l3" in text and "变差 l4" in text
    assert "t1" not in text and "u1" not in text and "a1" not in text  # test questions: counted, not named
    assert "| laws_qa/test | hit@1 | 2 | 0.500 | 1.000" in text
    assert render(compare(old, old)) == "两份报告逐题相同（5 项指标）。"


def test_compare_counts_the_missing_part_named_and_the_yes_no_lead_per_question():
    """A change that only renames why an answer was refused, or flips a yes into a no, is a change."""
    def answers(reason: str, verdict: str | None) -> dict:
        return {"answers": [
            {"dataset": "laws_qa/dev", "id": "u1", "abstained": True, "should_abstain": True, "reason": reason,
             "missing": "figure", "metrics": {}},
            {"dataset": "laws_qa/dev", "id": "y1", "abstained": False, "should_abstain": False, "yes_no": "yes",
             "verdict": verdict, "metrics": {"keywords": 1.0}}]}
    rows = {r.figure: r for r in compare(answers("subject", None), answers("figure", "no"))}
    assert rows["missing_named"].gained == ("u1",) and rows["unanswerable_refused"].gained == ()
    assert rows["yes_no_right"].gained == rows["yes_no_right"].lost == ()
    assert rows["yes_no_not_wrong"].lost == ("y1",)  # a wrong verdict where there was none: a loss
    assert "说对所缺部分" in render(list(rows.values()))
    rows = {r.figure: r for r in compare(answers("figure", None), answers("figure", "yes"))}
    assert rows["yes_no_right"].gained == ("y1",) and not rows["missing_named"].gained


def test_compare_counts_citations_over_the_questions_both_answered():
    def answers(cited: dict[str, float | None]) -> dict:
        return {"answers": [{"dataset": "policies_qa/dev", "id": qid, "abstained": p is None, "should_abstain": False,
                             "metrics": {"keywords": 1.0, "citation_precision": p or 0.0, "citation_recall": 1.0}}
                            for qid, p in cited.items()]}
    rows = {r.figure: r for r in compare(answers({"a": 1.0, "b": 1.0, "c": None}),
                                         answers({"a": 0.5, "b": 1.0, "c": 1.0}))}
    precision = rows["citation_precision"]
    assert (precision.n, precision.lost, precision.old, precision.new) == (2, ("a",), 1.0, 0.75)  # c: answered once
    assert rows["answerable_answered"].gained == ("c",) and not rows["citation_recall"].lost


def test_compare_names_a_missing_or_unreadable_report_in_chinese(tmp_path):
    with pytest.raises(FileNotFoundError, match="找不到评测报告"):
        load(tmp_path)  # a folder without report.json
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="不是 ipqa eval 写的评测报告"):
        load(tmp_path)


@pytest.mark.slow
def test_ipqa_eval_end_to_end(real_index, tmp_path):
    """`ipqa eval --check` on both datasets against the real index, then a check that must fail."""
    index_dir, _ = real_index
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "cli", "eval", "--index-dir", str(index_dir), "--out", str(out), "--quiet"]
    # STARD's public questions: the test half (573 answers; the train half adds about a minute)
    result = subprocess.run(cmd + ["policies_qa", "laws_qa", "stard_outside/test", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "回归检查通过" in result.stdout
    assert "目标（" in result.stdout and "citation_precision" in result.stdout
    for pipeline in ("ipqa-hybrid", "ipqa-dense", "ipqa-bm25", "bm25-alone", "naive-langchain"):
        assert pipeline in result.stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| policies_qa/dev | ipqa-hybrid |" in report and "| laws_qa/test | naive-langchain |" in report
    assert "未把期望条款排在第一位的问题" in report and "期望：" in report
    # Failures are listed for the dev splits only: nobody reads (and tunes to) a test question's failure.
    listed = [line for line in report.splitlines() if line.startswith("- **")]
    assert listed and all("/dev/" in line or "/train/" in line for line in listed)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # stard_outside has nothing to find: no retrieval figures, answers only.
    assert set(data["summary"]) == {"policies_qa/dev", "policies_qa/test", "laws_qa/dev", "laws_qa/test"}
    # STARD's public questions over the IP knowledge base, which holds none of their statutes: most refused.
    assert "stard_outside/train" not in data["answers_summary"]
    outside = data["answers_summary"]["stard_outside/test"]
    assert outside["n"] > 500 and outside["n_answerable"] == 0 and outside["abstain_on_unanswerable"] > 0.5
    summary = data["summary"]["policies_qa/test"]
    # The structure-aware pipeline beats the naive LangChain one on the same questions.
    assert summary["ipqa-hybrid"]["hit@5"] > summary["naive-langchain"]["hit@5"]
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # its titles are Chinese, drawn with a CJK font (matplotlib warns of every glyph it lacks)
    assert "missing from font" not in result.stderr and "no CJK font" not in result.stderr
    # A report compared with itself, question by question: nothing gained or lost on any figure.
    same = subprocess.run([sys.executable, "-m", "cli", "compare", str(out), str(out / "report.json"), "--list"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert same.returncode == 0 and "两份报告逐题相同" in same.stdout, same.stdout + same.stderr

    # The written report checked again without re-running it: the same verdict as the run's, and a
    # baseline above what the run reached fails, naming the figure.
    again = subprocess.run([sys.executable, "-m", "cli", "check", str(out)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0 and "回归检查通过" in again.stdout, again.stdout + again.stderr
    strict = tmp_path / "strict.json"
    laws_hit1 = data["summary"]["laws_qa/test"]["ipqa-hybrid"]["hit@1"]
    strict.write_text(json.dumps({"tolerance": 0.0, "metrics": {"laws_qa/test": {"ipqa-hybrid": {
        "hit@1": laws_hit1 + 0.01, "hit@5": 0.0}}}}), encoding="utf-8")
    failing = subprocess.run([sys.executable, "-m", "cli", "check", str(out / "report.json"), "--baseline", str(strict)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1 and "回归检查未通过" in failing.stderr
    assert "laws_qa/test / ipqa-hybrid / hit@1" in failing.stderr and "hit@5" not in failing.stderr


@pytest.mark.slow
def test_refusals_of_answerable_questions_are_counted_by_reason(real_index):
    from assistant.verify import REASONS
    from eval.questions import split_of
    from eval.refusals import refusals

    index_dir, _ = real_index
    reasons, asked, listed = refusals("laws_qa", "dev", index_dir)
    assert asked == sum(1 for q in load_dataset("laws_qa").questions if q.split == "dev" and q.gold)
    assert sum(reasons.values()) == len(listed) <= asked and set(reasons) <= set(REASONS)
    assert all(split_of(qid, "laws_qa") == "dev" for qid, _, _ in listed)
    _, _, hidden = refusals("laws_qa", "test", index_dir)
    assert hidden == []  # test questions are counted, never listed


def test_stard_gold_maps_to_the_ids_of_lawrefbooks_own_files():
    # The whole corpus names 民法典's 合同编 by its file's stem; a stem two folders share keeps its prefix.
    from eval.stard_scale import corpus_id, stard_to_corpus_ids

    mapped = stard_to_corpus_ids()
    assert len(mapped) == 119 and mapped["民法典-合同编"] == "合同编"
    assert mapped["个人信息保护法(2021-08-20)"] == "个人信息保护法(2021-08-20)"
    held = {"合同编", "社会法-反电信网络诈骗法(2022-09-02).md", "民法典-物权编"}
    assert corpus_id("民法典-合同编", mapped, held) == "合同编"
    assert corpus_id("反电信网络诈骗法(2022-09-02)", mapped, held) == "社会法-反电信网络诈骗法(2022-09-02).md"
    assert corpus_id("民法典-物权编", mapped, held) == "民法典-物权编"  # an index of corpus/stard_laws itself


def test_chunk_vectors_made_apart_search_as_the_index_does(tmp_path):
    # eval.stard_scale embeds a big index's chunks again with another embedder (e5 over an index of hash
    # vectors); with the index's own embedder its dense and hybrid rankings must be the index's own.
    from assistant import index_sources
    from eval.stard_scale import ChunkVectors
    from index.core import KnowledgeIndex

    index_sources(tmp_path / "index", collections=["policies"], embedder="hash")
    ix = KnowledgeIndex.open(tmp_path / "index")
    vectors = ChunkVectors(ix, tmp_path / "vectors", "hash", shard=40)
    assert len(vectors.ids) == len(vectors.vectors) > 120 and len(list((tmp_path / "vectors").iterdir())) >= 4
    for question in ("荆门高新区到2025年专利授权量目标", "企业申请专利有没有资助", "地理标志商标"):
        # the same cosines in the same order (near-ties may swap: the sums run in another order)
        own = [h.scores["dense"] for h in ix.search(question, k=50, mode="dense")]
        assert [s for _, s in vectors.dense(question, 50)] == pytest.approx(own, abs=1e-5)
        for mode in ("dense", "hybrid"):
            own = [h.chunk.chunk_id for h in ix.search(question, k=300, mode=mode)][:10]
            ids = vectors.search(question, 300, mode)[:10]
            chunks = ix.chunks(ids)
            assert [chunks[i].chunk_id for i in ids] == own, (question, mode)
    files = sorted((tmp_path / "vectors").iterdir())
    stamps = [f.stat().st_mtime_ns for f in files]
    ChunkVectors(ix, tmp_path / "vectors", "hash", shard=40)  # a second run reads the files, embeds nothing
    assert [f.stat().st_mtime_ns for f in files] == stamps
    ix.close()

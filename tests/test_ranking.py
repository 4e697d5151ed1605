"""Retrieval stages (issue 16): candidates with feedback terms, features, rerankers, the trained model.

The stage tests use the bundled knowledge base indexed with the real default model (``real_index``);
the model file's tests check that it was trained on the data now in the repo, and that training is
deterministic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.memory import AskedQuestions
from assistant.ranking import FEATURES, PRF_WEIGHT, candidates, features, feedback_terms
from assistant.rerank import MODEL_INFO, RERANKERS, LearnedRanker, get_reranker, model_dir


@pytest.fixture(scope="module")
def ix(real_index):
    from assistant import open_index

    index = open_index(real_index[0])
    yield index
    index.close()


@pytest.fixture(scope="module")
def reader(ix):
    from assistant.understanding import QuestionReader

    return QuestionReader(ix.documents())


def test_the_model_was_trained_on_the_data_in_the_repo():
    """A dataset or corpus changed without retraining is caught here: run python -m eval.train."""
    from eval.train import data_hash

    info = json.loads((model_dir() / MODEL_INFO).read_text(encoding="utf-8"))
    assert info["data_hash"] == data_hash()
    assert tuple(info["features"]) == FEATURES
    assert {"stard", "policies_qa", "laws_qa"} <= set(info["questions"])
    assert info["questions"]["stard"] > 400 and info["questions"]["policies_qa"] > 50
    assert (model_dir() / "ranker.txt").stat().st_size < 2_000_000  # small enough to commit
    assert (model_dir() / "ranker-memory.txt").stat().st_size < 500_000
    assert info["memory"] == len(AskedQuestions.load(model_dir()))


def test_rerankers_by_name():
    assert sorted(RERANKERS) == ["fusion", "learned", "sentence"]
    assert isinstance(get_reranker("learned"), LearnedRanker)
    with pytest.raises(ValueError, match=r"unknown reranker 'x'; choose from \['fusion', 'learned', 'sentence'\]"):
        get_reranker("x")


@pytest.mark.slow
def test_feedback_terms_are_the_top_hits_own_distinctive_words(ix):
    texts = ["第五十二条 有下列侵权行为的，应当根据情况，承担停止侵害、消除影响、赔礼道歉、赔偿损失等民事责任：（五）剽窃他人作品的；",
             "第五十三条 未经著作权人许可，复制、发行、表演、放映、广播、汇编、通过信息网络向公众传播其作品的"]
    terms = feedback_terms(ix, texts, {"作品", "抄袭"})
    assert terms and "作品" not in terms and "抄袭" not in terms
    assert max(terms.values()) == pytest.approx(PRF_WEIGHT) and all(0 < w <= PRF_WEIGHT + 1e-9 for w in terms.values())
    assert "剽窃" in terms  # the statute's word for what a layperson calls 抄袭
    assert "的" not in terms and not any(t.isdigit() for t in terms)


@pytest.mark.slow
def test_candidates_carry_every_score_and_features_name_the_question(ix, reader):
    u = reader.read("专利法第四十二条规定外观设计专利权的期限是多少年？")
    found = candidates(ix, u, None)
    assert len(found) > 20 and len(found.dense) == len(found.sentence) == len(found.bm25) == len(found.prf) == len(found)
    assert (found.sentence > 0).all() and (found.sentence >= found.dense - 0.2).all()
    x = features(ix, u, found)
    assert x.shape == (len(found), len(FEATURES)) and np.isfinite(x).all()
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    named = [found.chunks[c].clause_id == "专利法(2020-10-17):第5章/第42条" for c in found.ids.tolist()]
    assert any(named)
    i = named.index(True)
    assert col["article"][i] == 1 and col["doc_named"][i] == 1 and col["kind_law"][i] == 1
    assert col["article"].sum() == sum(found.chunks[c].clause_id.endswith("/第42条") for c in found.ids.tolist())
    assert col["coverage"][i] > 0.5 and col["rank_bm25"].min() == 1.0


@pytest.mark.slow
def test_training_is_deterministic(ix, reader):
    from assistant.retrieval import DEFAULT_SETTINGS
    from eval.questions import load_dataset
    from eval.train import TrainingSet, fit, question_rows

    data = TrainingSet()
    for q in [q for q in load_dataset("policies_qa").questions if q.split == "dev" and q.gold][:25]:
        data.add("policies_qa", *question_rows(ix, reader, q, DEFAULT_SETTINGS), weight=1.0)
    assert data.used["policies_qa"] >= 20
    first, second = fit(data, rounds=20), fit(data, rounds=20)
    assert [m.model_to_string() for m in first] == [m.model_to_string() for m in second]


@pytest.mark.slow
@pytest.mark.parametrize("question, expected", [
    ("外观设计专利保护多少年", "专利法(2020-10-17):第5章/第42条"),
    ("别人抄袭我的作品怎么办", "著作权法(2020-11-11):第5章/第52条"),
    ("我的作品被别人抄袭了怎么办", "著作权法(2020-11-11):第5章/第52条"),
])
def test_first_questions_people_type_find_the_right_clause(ix, reader, question, expected):
    from assistant.retrieval import retrieve

    hits = retrieve(ix, question, k=3, reader=reader)
    assert expected in [h.chunk.clause_id for h in hits], [h.chunk.clause_id for h in hits]


def test_a_period_asked_with_duoshao_is_not_a_target():
    from assistant.understanding import QuestionReader

    # 多少 alone made every question a "goal" (a policy target), and goal questions favour clauses with
    # figures: "保护多少年" then found 细则第141条's "2个月内" before 专利法第42条's "十五年".
    assert QuestionReader.intent("外观设计专利保护多少年") == "fact"
    assert QuestionReader.intent("荆门高新区到2025年一年要授权多少件专利？") == "goal"
    assert QuestionReader.intent("专利纠纷案件结案率要达到多少") == "goal"


@pytest.mark.slow
@pytest.mark.parametrize("question", ["外观设计专利保护多少年", "实用新型专利保护几年", "发明专利保护多少年"])
def test_term_questions_find_the_term_first(ix, reader, question):
    from assistant.retrieval import retrieve

    hits = retrieve(ix, question, k=3, reader=reader)
    assert hits[0].chunk.clause_id == "专利法(2020-10-17):第5章/第42条", [h.chunk.clause_id for h in hits]


@pytest.mark.slow
def test_subsidy_question_without_a_place_finds_the_policies(ix, reader):
    from assistant.retrieval import retrieve

    hits = retrieve(ix, "企业申请专利有没有资助", k=10, reader=reader)
    docs = [h.chunk.doc_id for h in hits]
    assert hits[0].kind not in ("法律", "行政法规", "司法解释")
    assert {"changsha-furong-2017", "cangzhou-2017", "jingmen-hitech-2023"} <= set(docs)


def test_yes_no_grammar_is_not_a_keyword():
    from assistant.asks import content_query

    # 有没有 would bring 没有 to the keyword query (and 没有经常居所 above the subsidy asked about).
    assert "没有" not in content_query("企业申请专利有没有资助")
    assert content_query("能不能申请专利").strip() == "申请专利"
    assert content_query("我没有申请过专利") == "我没有申请过专利"  # a plain 没有 is content


def test_unit_asked_and_unit_stated():
    from assistant.asks import asked_unit, holds_unit

    assert asked_unit("外观设计专利保护多少年") == "年"
    assert holds_unit("年", "外观设计专利权的期限为十五年")
    assert not holds_unit("年", "自2020年起2个月内提出")  # a year is a date, 2个月 another unit
    assert asked_unit("几天内要答复") == "天" and holds_unit("天", "应当在十五日内答复")
    assert asked_unit("奖励多少") is None and not holds_unit(None, "奖励5万元")


def test_every_rule_can_be_switched_off_alone():
    from dataclasses import fields

    from assistant.retrieval import DEFAULT_SETTINGS
    from assistant.rules import RULES
    from eval.ablate import variants

    found = variants()
    assert found["base"] == DEFAULT_SETTINGS and not found["no rules"].rules and not found["no colloquial"].colloquial
    for f in fields(RULES):
        weights = found[f"-{f.name}"].rule_weights
        assert getattr(weights, f.name) == 0 and all(
            getattr(weights, g.name) == getattr(RULES, g.name) for g in fields(RULES) if g.name != f.name)

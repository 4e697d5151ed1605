"""The scope model (assistant/scope.py): trained on the data in the repo, and its fitting sound. The
assistant-level behaviour (out-of-scope public questions refused, colloquial IP questions answered)
is in tests/test_assistant.py."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from assistant.scope import FEATURES, LAW_MAP_FILE, LAW_MAP_INFO, SCOPE_FILE, bundled_scope, fit, law_map, scope_for


def test_the_scope_model_was_trained_on_the_data_in_the_repo():
    """A dataset changed without retraining is caught here: run python -m eval.train_scope."""
    from eval.train_scope import MAX_REFUSED, data_hash

    info = json.loads((resources.files("assistant") / "data" / SCOPE_FILE).read_text(encoding="utf-8"))
    assert info["data_hash"] == data_hash()
    assert tuple(info["features"]) == FEATURES
    rows, refused = info["rows"], info["out_of_fold_refused"]
    assert rows["dev, own knowledge base"] > 100 and rows["STARD train, its laws"] > 500
    assert rows["written, own knowledge base"] == 106  # the everyday questions of eval/training
    assert rows["short, own knowledge base"] == 40 and refused["short, own knowledge base"] <= MAX_REFUSED
    # Out of fold: few in-scope questions refused, most of the public questions outside the KB refused.
    assert refused["dev, own knowledge base"] == 0 and refused["written, own knowledge base"] <= MAX_REFUSED
    assert refused["STARD train, its laws"] <= 2 * MAX_REFUSED
    assert refused["STARD train, own knowledge base"] > 0.5


def test_the_law_map_is_the_one_the_model_was_trained_with():
    """A map rebuilt (python -m eval.law_map) without retraining the model is caught here."""
    from eval.law_map import array_hash

    data = resources.files("assistant") / "data"
    info = json.loads((data / LAW_MAP_INFO).read_text(encoding="utf-8"))
    model = json.loads((data / SCOPE_FILE).read_text(encoding="utf-8"))
    assert array_hash(data / LAW_MAP_FILE) == info["sha256"] == model["law_map_sha256"]
    assert info["embedder"] == model["embedder"]
    vectors = law_map()
    assert vectors.shape == (info["laws"], 384) == (len(info["doc_ids"]), 384) and info["laws"] > 1500
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)  # unit vectors, stored as float16
    assert {"专利法(2020-10-17)", "婚姻家庭编", "刑法"} <= set(info["doc_ids"])


def test_other_law_fits_a_question_outside_the_knowledge_base_better_than_its_answer(real_index):
    """The law map places a question near the laws of its field (the patent law for a patent question,
    the civil code's marriage book for a divorce one), and ``elsewhere`` is higher when those laws fit
    the question better than the clause the IP knowledge base would answer with."""
    from assistant.service import Assistant
    from index.core import KnowledgeIndex

    assistant = Assistant(KnowledgeIndex.open(real_index[0]))
    info = json.loads((resources.files("assistant") / "data" / LAW_MAP_INFO).read_text(encoding="utf-8"))
    for question, law in (("专利保护几年", "专利法"), ("离婚后孩子抚养权归谁", "婚姻"), ("醉驾会被判刑吗", "刑法")):
        vector = assistant.index.query_vector(question)
        nearest = [info["doc_ids"][i] for i in np.argsort(-(law_map() @ vector))[:10]]
        assert any(law in d for d in nearest), (question, nearest)
    other = FEATURES.index("elsewhere")
    fit_elsewhere = {q: assistant.scope_features(q)[0][other] for q in (
        "专利保护几年", "商标侵权赔多少", "别人抄袭我的作品怎么办", "软件著作权怎么登记", "离婚后孩子抚养权归谁？", "交通事故怎么赔偿")}
    ip = [fit_elsewhere[q] for q in list(fit_elsewhere)[:4]]
    assert fit_elsewhere["离婚后孩子抚养权归谁？"] > max(ip) and fit_elsewhere["交通事故怎么赔偿"] > max(ip), fit_elsewhere
    # The best sentence's margin over those laws: whatever the question's own cosine level, an IP question's
    # best sentence fits it about as well as the closest laws do, another field's far less.
    margin = FEATURES.index("sentence_over_laws")
    over = {q: assistant.scope_features(q)[0][margin] for q in (
        "专利保护几年", "商标侵权赔多少", "别人抄袭我的作品怎么办", "软件著作权怎么登记", "离婚后孩子抚养权归谁？", "交通事故怎么赔偿",
        "借钱不还怎么起诉")}
    assert min(list(over.values())[:4]) > max(list(over.values())[4:]) + 0.01, over


def test_the_model_is_used_only_over_the_embedder_it_was_trained_with():
    from index.embedders import get_embedder

    default = get_embedder().name  # no weights are loaded for the name
    assert scope_for(default) is bundled_scope() and bundled_scope().embedder == default
    assert scope_for("hash") is None  # another model's cosines mean other things


def test_a_question_held_whole_by_its_answer_is_never_refused():
    """Below the threshold the model refuses, unless every word of the question is one the documents use and
    the answering clauses hold them all; one word missing from them, or unknown, and the model decides."""
    from assistant.scope import held_whole

    model = bundled_scope()
    far = model.mean.copy()
    far[FEATURES.index("dense")] -= 3 * model.scale[FEATURES.index("dense")]
    far[FEATURES.index("sentence")] -= 3 * model.scale[FEATURES.index("sentence")]
    cover, known = FEATURES.index("coverage"), FEATURES.index("known")
    whole = far.copy()
    whole[[cover, known]] = 1.0
    assert model.probability(whole) < model.threshold and held_whole(whole) and not model.refuses(whole)
    for index in (cover, known):
        partial = whole.copy()
        partial[index] = 0.8
        assert not held_whole(partial) and model.refuses(partial)


def test_fit_recovers_the_boundary_it_is_given():
    """Labels drawn from the committed model over its own feature ranges: a refit agrees with it."""
    model = bundled_scope()
    rng = np.random.default_rng(7)
    x = model.mean + model.scale * rng.normal(size=(3000, len(FEATURES)))
    p = np.array([model.probability(row) for row in x])
    y = (rng.random(len(x)) < p).astype(np.float64)
    refit = fit(x, y, l2=1.0)
    q = np.array([refit.probability(row) for row in x])
    assert np.mean((q > 0.5) == (p > 0.5)) > 0.95
    assert np.allclose(fit(x, y, l2=1.0).weights, refit.weights)  # deterministic

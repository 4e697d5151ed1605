"""The memory of earlier questions (assistant.memory): what it holds, that a question never sees
itself, and that a reworded question finds the clauses of the one it resembles."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.memory import NEIGHBOURS, AskedQuestions, asked_questions, same_text
from assistant.rerank import model_dir
from eval.questions import load_dataset
from index.embedders import get_embedder


def _bundled() -> AskedQuestions:
    memory = AskedQuestions.load(model_dir())
    assert memory is not None, "assistant/data has no asked.jsonl: run python -m eval.train"
    return memory


def test_the_memory_holds_the_tuning_questions_and_never_a_test_one():
    from eval.train import MEMORY_DATASETS, tuning_questions

    memory = _bundled()
    expected = {(f"{name}:{q.id}", q.question, tuple(sorted({g.clause_id for g in q.gold})))
                for name in MEMORY_DATASETS for q in tuning_questions(name) if not q.history}
    assert {(s, q, c) for s, q, c in zip(memory.sources, memory.questions, memory.clauses)} == expected
    assert len(memory) > 500 and memory.vectors.shape == (len(memory), 384)
    test_questions = {q.question for name in ("stard", "policies_qa", "laws_qa")
                      for q in load_dataset(name).questions if q.split == "test"}
    assert not test_questions & set(memory.questions)
    assert memory.embedder == get_embedder().name


def test_a_memory_made_by_another_embedder_is_embedded_again_by_the_index_s_own(tmp_path, monkeypatch):
    # Vectors of another model do not compare: an index built with e5-small-int8 (or a user's model) gets
    # the earlier questions embedded by its own embedder, once, and kept in the user's model cache.
    from assistant.memory import forget
    from index.embedders import HashEmbedder

    class Counting(HashEmbedder):
        calls = 0

        def encode_queries(self, texts):
            Counting.calls += 1
            return super().encode_queries(texts)

    monkeypatch.setenv("IPQA_MODEL_DIR", str(tmp_path / "models"))
    questions = ["离婚后孩子归谁？", "借钱不还怎么办"]
    AskedQuestions(questions, [["法:第1条"], ["法:第2条"]], np.ones((2, 4), dtype=np.float32) / 2,
                   "hash-bigram-4").save(tmp_path)
    forget()
    assert asked_questions(HashEmbedder(4), tmp_path).vectors.tolist() == [[0.5] * 4] * 2  # its own: as stored
    other = Counting(8)
    memory = asked_questions(other, tmp_path)
    assert memory.embedder == "hash-bigram-8" and memory.clauses == [("法:第1条",), ("法:第2条",)]
    assert np.allclose(memory.vectors, HashEmbedder(8).encode_queries(questions), atol=2e-3)
    assert asked_questions(other, tmp_path) is memory and Counting.calls == 1
    forget()  # as a new process: read from the cache, not embedded again
    assert np.array_equal(asked_questions(other, tmp_path).vectors, memory.vectors) and Counting.calls == 1
    assert list((tmp_path / "models" / "asked-vectors").glob("*.npy"))
    assert asked_questions(other, tmp_path / "none") is None
    forget()


def test_neighbours_leave_the_question_itself_out():
    vectors = np.eye(3, dtype=np.float32)
    memory = AskedQuestions(["离婚后孩子归谁？", "离婚后孩子归谁", "借钱不还怎么办"], [["a"], ["b"], ["c"]], vectors, "x")
    near = memory.neighbours(vectors[0], "离婚后孩子归谁？", k=3)
    assert [n.clauses for n in near] == [("c",)]  # both spellings of the question itself are skipped
    assert same_text("离婚后 孩子归谁？", "离婚后孩子归谁")
    assert len(memory.neighbours(vectors[2], "别的问题")) == 3 <= NEIGHBOURS


@pytest.mark.slow
def test_stored_vectors_are_the_embedders_own():
    memory = _bundled()
    picked = list(range(0, len(memory), max(1, len(memory) // 8)))[:8]
    fresh = get_embedder().encode_queries([memory.questions[i] for i in picked])
    assert np.abs(fresh - memory.vectors[picked]).max() < 2e-3  # stored as float16


@pytest.fixture(scope="module")
def ix(real_index):
    from assistant import open_index

    index = open_index(real_index[0])
    yield index
    index.close()


def _ranked(ix, question: str, memory: AskedQuestions | None, monkeypatch) -> list[str]:
    from dataclasses import replace

    import assistant.retrieval as retrieval
    from assistant.understanding import QuestionReader

    if memory is not None:
        monkeypatch.setattr(retrieval, "asked_questions", lambda name, folder=None: memory)
    settings = replace(retrieval.DEFAULT_SETTINGS, memory=memory is not None)
    u = QuestionReader(ix.documents()).read(question)
    return [h.chunk.clause_id for h in retrieval.retrieve_understood(ix, u, k=20, settings=settings)]


SECRET = "反不正当竞争法(2019-04-23):第4章/第21条"  # the penalties for infringing a trade secret


@pytest.mark.slow
def test_a_reworded_question_finds_the_clause_that_answered_an_earlier_one(ix, monkeypatch):
    """The earlier question and the new one share few words (离职/跳槽, 告诉新东家/泄露); without the
    memory the penalty clause is not among the first three. Ten real STARD questions, whose clauses this
    index does not have, stand around it as in the bundled memory."""
    stard = _bundled()
    earlier = ["员工离职后把公司的技术秘密告诉新东家，要承担什么法律责任？"] + stard.questions[:10]
    embedder = ix.embedder
    memory = AskedQuestions(earlier, [[SECRET]] + stard.clauses[:10], embedder.encode_queries(earlier), embedder.name)
    question = "公司员工跳槽后泄露原单位的技术秘密怎么处理"
    without, with_memory = _ranked(ix, question, None, monkeypatch), _ranked(ix, question, memory, monkeypatch)
    assert SECRET not in without[:3]
    assert SECRET in with_memory[:3]
    # asked again word for word, the earlier question is not its own neighbour
    assert memory.neighbours(embedder.encode_queries([earlier[0]])[0], earlier[0])[0].clauses != (SECRET,)


@pytest.mark.slow
def test_the_features_name_the_clauses_of_the_neighbours(ix):
    from assistant.ranking import FEATURES, candidates, features
    from assistant.understanding import QuestionReader

    earlier = ["外观设计的保护期是几年？", "商标注册以后多少年要续展？"]
    clauses = [["专利法(2020-10-17):第5章/第42条"], ["商标法(2019-04-23):第4章/第40条"]]
    memory = AskedQuestions(earlier, clauses, ix.embedder.encode_queries(earlier), ix.embedder.name)
    u = QuestionReader(ix.documents()).read("外观设计专利能保护多久")
    found = candidates(ix, u, None, memory=memory)
    x = features(ix, u, found)
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    named = {found.chunks[c].clause_id: i for i, c in enumerate(found.ids.tolist())}
    assert set(sum(clauses, [])) <= set(named)  # both neighbours' clauses are candidates
    design, mark = named[clauses[0][0]], named[clauses[1][0]]
    assert col["asked_law"][design] > col["asked_law"][mark] > 0.8
    assert col["asked_law_votes"][design] == 0.5 and col["asked_law_lift"][design] > 0
    others = [i for i in range(len(found)) if i not in (design, mark)]
    assert (col["asked_law"][others] == 0).all() and (col["asked_policy"] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("question", ["企业申请专利有没有资助", "外观设计专利保护多少年", "乌海市专利质押融资有补贴吗"])
def test_a_question_no_earlier_one_resembles_ranks_as_without_the_memory(ix, monkeypatch, question):
    """The bundled memory holds STARD's questions, whose clauses the bundled knowledge base does not
    have: the second stage adds one value to every candidate, and the order is the first stage's."""
    assert _ranked(ix, question, _bundled(), monkeypatch) == _ranked(ix, question, None, monkeypatch)

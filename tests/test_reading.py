"""How a question is read where it is not taken as typed: abbreviations (软著, 知产, 商秘) as the
compounds the bundled documents use, and traditional characters (專利) as simplified ones.

Everything runs on the real bundled index: the expansions are read off its words and chunks, not
from a list, so these tests fail when the reading stops finding them there.
"""

from __future__ import annotations

from collections import Counter

import pytest

from assistant.abbreviations import Abbreviations, _dominant
from assistant.records import answer_json
from assistant.script import simplified
from assistant.service import Assistant
from assistant.understanding import QuestionReader
from eval.questions import load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assistant(real_index):
    index_dir, _ = real_index
    a = Assistant.open(index_dir, llm=None)
    yield a
    a.close()


@pytest.fixture(scope="module")
def abbreviations(assistant):
    return Abbreviations(assistant.index)


@pytest.mark.parametrize("question, short, full", [
    ("软著怎么登记", "软著", "软件著作权"),
    ("知产贷款有补贴吗", "知产", "知识产权"),
    ("泄露商秘怎么办", "商秘", "商业秘密"),
    ("侵犯商秘罚多少", "商秘", "商业秘密"),  # jieba cuts 商秘罚: the abbreviation is its first half
    # jieba cuts 高企 into 高 and 企, and 芙蓉区's plan writes "提高企业" (高企 across two words, no use of it)
    ("芙蓉区高企都得有注册商标吗", "高企", "高新技术企业"),
])
def test_an_abbreviation_becomes_the_documents_compound(abbreviations, question, short, full):
    text, found = abbreviations.expand(question)
    assert [(e.short, e.full) for e in found] == [(short, full)]
    assert text == question.replace(short, full)


@pytest.mark.parametrize("question", [
    "发明专利的保护期是多久",  # words the documents use
    "红烧肉怎么做",  # a word of general Chinese the documents never use
    "我的东西被偷了怎么办",
    "网约车司机撞了人怎么赔",  # unknown to the documents, but no compound of theirs abbreviates it
])
def test_other_words_are_left_as_typed(abbreviations, question):
    assert abbreviations.expand(question) == (question, ())


def test_a_place_is_never_read_as_an_abbreviation(assistant):
    reader = QuestionReader.for_index(assistant.index)
    u = reader.read("掇刀软著登记有补贴吗")
    assert u.places == ("掇刀",)
    assert "软件著作权" in u.query and "掇刀" in u.query


def test_the_answer_says_how_it_read_the_abbreviation(assistant):
    answer = assistant.ask("软著保护多久")
    record = answer_json(answer)
    assert not answer.abstained
    assert answer.citations[0].citation == "《计算机软件保护条例》第十四条"
    assert "问题中的「软著」按「软件著作权」理解" in record["notes"]
    assert "50年" in answer.text


def test_the_same_question_without_the_abbreviation_is_answered_alike(assistant):
    short = assistant.ask("软著保护多久")
    full = assistant.ask("软件著作权保护多久")
    assert [c.clause_id for c in short.citations] == [c.clause_id for c in full.citations]
    assert not full.notes


def test_a_reading_needs_a_clear_winner():
    assert _dominant(Counter({"软件著作权": 12, "软件著作": 12})) == "软件著作权"  # one inside the other
    assert _dominant(Counter({"专利代理": 9, "专利代表": 5})) is None  # two readings, neither ahead
    assert _dominant(Counter({"商业秘密": 2})) is None  # too rare to trust
    assert _dominant(Counter({"商业秘密": 30, "商标秘书": 3})) == "商业秘密"


def test_traditional_characters_become_simplified_ones():
    assert simplified("專利保護幾年") == "专利保护几年"
    assert simplified("商標註冊證有效期多久？") == "商标注册证有效期多久？"
    assert simplified("軟體") == "软体"  # characters only: Taiwan's words (軟體 for 软件) are not rewritten


@pytest.mark.parametrize("dataset", ["policies_qa", "laws_qa", "stard"])
def test_a_simplified_question_is_left_as_typed(dataset):
    # Taiwan's phrase table would have turned 怎么 into 怎幺 in a fifth of these questions.
    changed = [q.question for q in load_dataset(dataset).questions if simplified(q.question) != q.question]
    assert changed == []


def test_a_question_in_traditional_characters_is_answered_as_in_simplified_ones(assistant):
    typed = assistant.ask("專利保護幾年")
    plain = assistant.ask("专利保护几年")
    assert not typed.abstained
    assert [c.clause_id for c in typed.citations] == [c.clause_id for c in plain.citations]
    assert typed.citations[0].citation == "《中华人民共和国专利法》第四十二条"
    assert typed.notes == ("问题中的繁体字已按简体字理解",) and not plain.notes


def test_a_follow_up_in_traditional_characters_keeps_its_context(assistant):
    history = [{"role": "user", "content": "湖北省2023年知識產權質押融資目標是多少？"}]
    answer = assistant.ask("那滄州呢？", history)
    assert answer.rewritten_query and "沧州" in answer.rewritten_query and "质押融资" in answer.rewritten_query
    assert answer.citations[0].doc_id == "cangzhou-2017"


def test_a_knowledge_base_in_traditional_characters_is_asked_in_them(tmp_path):
    from corpus import load_document
    from index.core import KnowledgeIndex, update_index
    from index.embedders import HashEmbedder

    source = tmp_path / "專利條例.md"
    source.write_text("# 專利條例\n\n標準專利的保護期為二十年，自申請日起計算。短期專利的保護期為八年。\n",
                      encoding="utf-8")
    update_index(tmp_path / "index", add=[(load_document(source), "added")], embedder=HashEmbedder())
    index = KnowledgeIndex.open(tmp_path / "index")
    try:
        u = QuestionReader.for_index(index).read("標準專利保護幾年")
        assert u.query.startswith("標準專利保護")  # the index's own characters, kept
        assert "专利" not in u.query
    finally:
        index.close()
    assert QuestionReader([]).read("標準專利保護幾年").query == "标准专利保护几年"  # no index: all simplified

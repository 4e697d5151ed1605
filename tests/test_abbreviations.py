"""Abbreviations in questions (软著, 知产, 商秘) read as the compounds the bundled documents use.

Everything runs on the real bundled index: the expansions are read off its words and chunks, not
from a list, so these tests fail when the reading stops finding them there.
"""

from __future__ import annotations

from collections import Counter

import pytest

from assistant.abbreviations import Abbreviations, _dominant
from assistant.records import answer_json
from assistant.service import Assistant
from assistant.understanding import QuestionReader

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

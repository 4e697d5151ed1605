"""What kind of answer a question asks for, and whether a sentence holds one.

The kinds (amount, count, duration, date, rate, score, who, definition, list, how, yes/no) and their
patterns are a data table, ``assistant/data/answer_types.tsv``: the words that ask for a kind, and
what a value of that kind looks like in a clause. The ranker uses it as a feature (the best-matching
sentence of a clause holds a value of the kind asked); a question asking "多少天" is answered by the
sentence with a period in it, not by its neighbour about the same act.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

KINDS = ("phone", "score", "rate", "amount", "duration", "date", "count", "who", "definition", "list", "how", "yesno")
# The kinds that are a value, and how a not-found answer names them.
VALUE_KINDS = {"amount": "金额", "count": "数量", "duration": "期限", "date": "时间", "rate": "比例", "score": "分数",
               "phone": "电话号码"}
# A sum in 元; not a denominator ("0.28件/百万元", "每万元GDP"), which states no amount.
MONEY = re.compile(r"(?<![/每\d.,])\d[\d.,]*\s*(?:万|亿)?元|(?<![/每一二三四五六七八九十百千万两])[一二三四五六七八九十百千万两]+(?:万|亿)?元")


@dataclass(frozen=True)
class AnswerKind:
    name: str
    asks: re.Pattern  # in a question: the words that ask for this kind
    holds: re.Pattern  # in a clause: a value of this kind


@lru_cache(maxsize=1)
def answer_kinds() -> tuple[AnswerKind, ...]:
    """The table, in the order it is read (the first kind whose words a question has wins)."""
    rows = []
    text = (resources.files("assistant") / "data" / "answer_types.tsv").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, asks, holds = line.split("\t")
        if name not in KINDS:
            raise ValueError(f"answer_types.tsv: unknown kind {name!r}; choose from {list(KINDS)}")
        rows.append(AnswerKind(name, re.compile(asks), re.compile(holds)))
    return tuple(rows)


# "A不A" / "A没A" (有没有, 能不能, 是不是, 可不可以): the grammar of a yes/no question, not its content;
# left in, 有没有 brings 没有 to the keyword query and 没有经常居所 outranks the subsidy asked about.
_A_NOT_A = re.compile(r"([\u4e00-\u9fff])[不没]\1")


def content_query(question: str) -> str:
    """The question's words for matching: its yes/no grammar (A不A) taken out."""
    return _A_NOT_A.sub(" ", question)


def asked_kind(question: str) -> AnswerKind | None:
    """The kind of answer a question asks for (None: none of the table's words)."""
    return next((k for k in answer_kinds() if k.asks.search(question)), None)


# a list: 哪些, and the count words that ask for the items themselves ("分几个阶段": the stages, in order)
_LIST = re.compile(r"哪几|哪些|分几|几个阶段|几类|几种|哪[一二三四五六七八九十两]+(?:大|个|项|类|种|方面)")
_YES_NO = re.compile(r"[吗么][？?！!。]*$")
_MONEY_NOUN = re.compile(r"(?:资金|经费|奖金|补贴|资助|奖励|费用|金额|钱|赔偿|罚款)[^，,。？?]{0,6}(?:多少|几)|"
                         r"(?:多少|几)[^，,。？?]{0,4}(?:资金|经费|奖金|补贴|资助|赔偿|罚款)")


def question_kind(query: str) -> str | None:
    """The kind of answer a whole question asks for, as the checks and the sentence picker read it:
    "哪几个地方", "分几个阶段" ask for a list, not a count; "能印“驰名商标”几个字吗" a yes or a no; "资金每年安排多少",
    "赔偿最高多少" an amount (a money noun beside the asking word); else the table's first kind."""
    if _LIST.search(query):
        return "list"
    if _YES_NO.search(query):
        return "yesno"
    kind = asked_kind(query)
    if kind is None and _MONEY_NOUN.search(query):
        return "amount"
    return kind.name if kind else None


def states_asked_value(query: str, text: str) -> bool:
    """``text`` states a value of the kind ``query`` asks for (question_kind), when it asks for one."""
    name = question_kind(query)
    return name in VALUE_KINDS and states_value(next(k for k in answer_kinds() if k.name == name), text,
                                                asked_unit(query))


@lru_cache(maxsize=1)
def _sanctions() -> dict[str, re.Pattern]:
    """The two patterns of ``assistant/data/sanctions.tsv``: what asks for a sanction, what states one."""
    text = (resources.files("assistant") / "data" / "sanctions.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {role: re.compile(pattern) for role, pattern in rows}


def asks_sanction(query: str) -> bool:
    """"侵犯商业秘密怎么处罚", "假冒注册商标会坐牢吗": the question asks what the law does to whoever breaks it."""
    return bool(_sanctions()["asks"].search(query))


def states_asked(query: str, text: str) -> bool | None:
    """``text`` states what ``query`` asks for: a value of the kind asked (states_asked_value), else, for a
    question asking a sanction, a sanction (罚款, 责令, 刑事责任 …). None: it asks for neither."""
    if question_kind(query) in VALUE_KINDS:
        return states_asked_value(query, text)
    if asks_sanction(query):
        return bool(_sanctions()["states"].search(text))
    return None


def holds_kind(kind: AnswerKind | None, text: str) -> bool:
    return bool(kind and kind.holds.search(text))


def has_money(text: str) -> bool:
    """A sum in 元 (the amount kind's own pattern also takes 罚款 and 倍, which are no sum)."""
    return bool(MONEY.search(text))


def states_value(kind: AnswerKind | None, text: str, unit: str | None = None) -> bool:
    """``text`` states a value of ``kind``, a value kind (an amount is a sum in 元), or, when the question
    asks a multiple (几倍: ``unit`` 倍), a number of 倍 ("一倍以上五倍以下"), which no sum in 元 states."""
    if kind is None or kind.name not in VALUE_KINDS:
        return False
    if unit == "倍":
        return holds_unit(unit, text)
    return has_money(text) if kind.name == "amount" else bool(kind.holds.search(text))


def value_name(kind: str, unit: str | None = None) -> str:
    """How a not-found answer names the value asked: 金额, 期限 …; 倍数 for a multiple (几倍)."""
    return "倍数" if unit == "倍" else VALUE_KINDS[kind]


# The unit a "多少/几 + unit" question counts in, and the same unit after a number in a clause: a
# question asking 多少年 is answered by "十五年", not by "2个月内" beside it. Four-digit numbers before
# 年 are years (dates), not durations.
_ASKED_UNIT = re.compile(r"(?:多少|几)个?(年|月|天|日|件|家|元|分|项|次|名|人|倍|所|篇|部)")
_NUMBER = r"(?:(?<!\d)\d{1,3}(?!\d)|\d[\d.,]*|[一二三四五六七八九十百千万两半]+)"
_SAME_DAY = {"天": "[天日]", "日": "[天日]"}


def asked_unit(question: str) -> str | None:
    found = _ASKED_UNIT.search(question)
    return found.group(1) if found else None


@lru_cache(maxsize=64)
def _unit_value(unit: str) -> re.Pattern:
    number = r"(?:(?<!\d)\d{1,3}(?!\d)|[一二三四五六七八九十百两半]+)" if unit == "年" else _NUMBER
    return re.compile(number + r"\s*(?:万|亿)?\s*个?" + _SAME_DAY.get(unit, unit))


def holds_unit(unit: str | None, text: str) -> bool:
    """Whether ``text`` has a number in the unit a question asks for (False when it asks for none)."""
    return bool(unit and _unit_value(unit).search(text))

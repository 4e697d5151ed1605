"""The yes a yes/no question gets first, read from the sentences the answer quotes.

The question must ask yes or no in one piece (between commas and question marks): it ends in 吗, or
asks A-not-A (有没有, 会不会, 是否) with no question word ("有哪些措施" asks for a list, "具体指什么" for a
definition). Two kinds of answer get a yes, when the first quoted sentence does not deny (没有, 不得):
- existence ("有没有资助", "政府有扶持吗"): 有;
- any yes/no question answered from policies alone ("乌海会不会设知识产权专项经费", "沧州支持吗"):
  a policy states what it does, and the answer passed the checks that it speaks of what is asked,
  so the yes is the question's own verb (会, 能, 支持 …) or 是的.

Permission and consent questions (能不能…, 需要…同意吗) get no verdict: reading 不得 / 可以 /
可以不经…许可 from the quoted sentence gave the wrong one on the laws test split more often than the
right one (docs/answers.md, "Tried and dropped"): a law's general rule (可以自行办理) is quoted where
the question asks about its exception (外国企业应当委托).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_ENDS_ASKING = re.compile(r"(?:吗|(?<![什怎那这多])么)$")
_A_NOT_A = re.compile(r"([\u4e00-\u9fff])[不没]\1|能否|是否|有无")
_WH = re.compile(r"什么|怎么|怎样|如何|为何|为什么|多少|几|哪|谁|多久|多长|多大|多高")
_QUESTION_PIECE = re.compile(r"[，,。？?；;！!\s]+")
# 有 + what is asked about + 吗; not 才有 ("是不是先登记了才有") nor 没有
_EXISTS = re.compile(r"有没有|有无|是否有|(?<![没才])有(?!没)[^吗么]+(?:吗|么)$")
_DENIES = re.compile(r"没有|不得|不予|无权")
# the verb a yes repeats: the A of A-not-A, else the first of these
_VERBS = ("可以", "会", "能", "支持", "鼓励", "允许", "有")
# A-not-A that asks whether something is done (会不会, 支不支持), and its yes; 好不好, 对不对 ask a judgement
_DOUBLED = {"会": "会", "能": "能", "可": "可以", "是": "是", "有": "有", "管": "管", "给": "给", "要": "要", "搞": "搞",
            "设": "设", "建": "建", "支": "支持", "鼓": "鼓励", "用": "用", "算": "算"}


@dataclass(frozen=True)
class Verdict:
    yes: bool
    lead: str  # the words the answer starts with: "有。"

    @property
    def label(self) -> str:
        return "yes" if self.yes else "no"


def _yes_no_piece(question: str) -> str | None:
    """The piece of the question that asks yes or no, if one does."""
    for piece in _QUESTION_PIECE.split(question):
        if _ENDS_ASKING.search(piece) or (_A_NOT_A.search(piece) and not _WH.search(piece)):
            return piece
    return None


_PERMISSION = re.compile(r"(?<![功智技才性])能(?![力源])|可以|允许|准许|行不行|可否")


def asks_permission(question: str) -> bool:
    """Whether the question asks whether something may be done ("产品包装上能印“驰名商标”几个字吗",
    "可以搞最高奖十万元的抽奖吗"), not whether it is something ("算不算商业贿赂")."""
    piece = _yes_no_piece(question)
    return bool(piece and _PERMISSION.search(piece))


def _policy_yes(piece: str) -> str | None:
    """The yes to a policy question in its own verb; None for A-not-A asking a judgement (好不好)."""
    doubled = re.search(r"([\u4e00-\u9fff])[不没]\1", piece)
    if doubled:
        return _DOUBLED.get(doubled.group(1))
    found = [(piece.find(v), v) for v in _VERBS if v in piece]
    return min(found)[1] if found else "是的"


def verdict(question: str, sentences: Sequence[str], *, policy: bool = False) -> Verdict | None:
    """The yes the quoted ``sentences`` (from policies alone: ``policy``) give to ``question``, None
    when it asks none or they give none plainly."""
    piece = _yes_no_piece(question)
    if not sentences or piece is None or _DENIES.search(sentences[0]):
        return None
    if _EXISTS.search(piece):
        return Verdict(True, "有。")
    said = _policy_yes(piece) if policy else None
    return Verdict(True, f"{said}。") if said else None


def with_verdict(text: str, said: Verdict | None) -> str:
    """The answer led by its verdict (on a line of its own when the answer has several)."""
    if said is None:
        return text
    return f"{said.lead}\n{text}" if "\n" in text else f"{said.lead}{text}"

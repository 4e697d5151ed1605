"""Verification between picking sentences and answering: does what would be quoted answer what
was asked? (issue 17)

The question is read into a small typed record (``Asked``): the subject with its modifiers, the
kind of value asked for, its unit, the period and the place. Each check compares one part of it
with the picked sentences and their clauses and gives one reason code:

- ``place``: the question names a place no document covers, or a place whose own document is not
  there while a place inside it has one (长沙市 asked, only 芙蓉区 indexed);
- ``subject``: a word of the subject that the indexed documents use somewhere is not in the
  answer's clauses (高价值发明专利 asked, 发明专利 quoted; 驰名商标 asked, 注册商标 quoted);
- ``figure``: a value of the kind asked for (an amount, a count in 件, a period, a score …) is in
  no picked sentence;
- ``period``: the years asked for are not the years the quoted sentences or their document cover.
  今年 / 明年 / 去年 / 后年 are read against each policy's own year (the year it was issued, else the
  first of its period): 明年 in the 2023 work plan is 2024, which it does not cover.

Words the documents never use (抄袭, 跳槽) are a layperson's and are not required: they cannot be
in any clause. What counts as the question's frame rather than its subject (目标, 标准, 要求) is the
data table ``assistant/data/frame_words.txt``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from assistant.asks import (VALUE_KINDS, answer_kinds, asked_unit, holds_kind, holds_unit, question_kind, states_value,
                            value_name)
from assistant.compose import Picked, clause_hits, content_tokens
from assistant.listing import listed_thing
from assistant.scope import ScopeModel, ScopeVectors, judged, scope_features
from assistant.understanding import SUPPORT, Understanding
from corpus.metadata import LAW_KINDS
from corpus.types import Hit
from index.catalog import DocInfo
from index.text import colloquial_matches, is_stopword, law_domains, parts, tag, tokenize

REASONS = ("place", "subject", "figure", "period", "relevance", "no_hits")
# Parts of speech that name things: nouns, verbal nouns, adjectives, distinguishing words, idioms.
_NAMING = re.compile(r"^(?:n(?![sr])|vn|an?$|b$|l$|j$|eng$)")  # not ns (places: the place check) nor nr
NEAR_CHARS = 8  # at most this many characters between two neighbouring words of the subject
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")
# Years named relative to now, read against a policy's own year (a law has no "now": it stays in force)
RELATIVE_YEARS = {"今年": 0, "明年": 1, "去年": -1, "后年": 2}
_RELATIVE = re.compile("|".join(RELATIVE_YEARS))
_PERIOD_WORDS = re.compile(r"(?:19|20)\d{2}\s*年(?:底|前|末|初)?|十[一二三四五]五(?:期间|时期|规划)?|今年|明年|去年|后年")


@lru_cache(maxsize=1)
def frame_words() -> frozenset[str]:
    """Frame words (目标, 标准) and the words for who asks (企业, 单位, 个人): not the subject."""
    text = (resources.files("assistant") / "data" / "frame_words.txt").read_text(encoding="utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


@dataclass(frozen=True)
class Asked:
    """What a question asks, as the checks compare it."""

    subject: tuple[str, ...]  # the words naming what is asked about, modifiers included (高价值发明专利)
    phrases: tuple[str, ...]  # the same words as the user wrote them, neighbours joined (职务作品作者)
    kind: str | None  # the kind of answer (assistant/data/answer_types.tsv)
    unit: str | None  # the unit a 多少/几 asks in (件, 年, 分)
    years: tuple[int, int] | None
    places: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] = ()  # neighbouring subject words: they must stand together
    relative: str | None = None  # 今年 / 明年 …, when no year is named
    value: bool = False  # it asks for a value (多少, 几, 什么时候 …)
    kinds: tuple[str, ...] = ()  # a kind of right named outside the subject ("实用新型要实质审查吗": 实用新型)
    # the known words after the subject's last IP word, which it modifies (知识产权技术调查官 → 技术, 调查),
    # said together as the question says them
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    """Why the quoted clauses do not answer: a reason code and the parts of the question they lack."""

    reason: str  # one of REASONS
    missing: tuple[str, ...]  # 高价值发明专利, 2024年, 分数 …
    check: str = ""  # the check that failed, where one reason has several ("support")
    of: str = ""  # a figure failure: what the quoted text names without a value of its own (商标注册)

    @property
    def reads_on(self) -> bool:
        """Whether the clauses behind the best may answer instead: the best one lacks the kind of thing
        asked for (a figure, support), not what the question is about."""
        return self.reason == "figure" or self.check == "support"


def _frame_free(query: str, u: Understanding) -> str:
    """The question without its places, periods and asking words (多少钱, 有没有, 几年)."""
    text = query
    for place in sorted(u.places, key=len, reverse=True):
        text = text.replace(place, "，")
    text = _PERIOD_WORDS.sub("，", text)
    for kind in answer_kinds():
        text = kind.asks.sub("，", text)
    return text


def read_asked(u: Understanding, known: Container[str]) -> Asked:
    """The typed record of a question.

    Its subject is the IP words (those naming a right or its object: 驰名商标, 高价值发明专利,
    专利申请, 作品) of the last run of naming words that holds one: a Chinese question puts its head
    last ("单位给职务作品作者的奖励…" asks about 职务作品; "在产品上乱标专利号（假冒专利）会被怎么罚"
    about 假冒专利). "的" joins a run; a run followed by a locative ("专利审查里") is the question's
    setting. Only words the documents use count (``known``, the index's vocabulary): a layperson's
    word (抄袭) can be in no clause. A kind of right said in an earlier run ("实用新型要实质审查吗") is kept
    apart (``kinds``): the answer's clause must be about it, not about a sibling kind (发明专利)."""
    runs = [r for r in _runs(tag(_frame_free(u.query, u))) if any(is_ip_word(w) for w in r)]
    head = runs[-1] if runs else []
    subject = [w for w in head if is_ip_word(w) and w.lower() in known]
    last = max((i for i, w in enumerate(head) if is_ip_word(w)), default=len(head))
    after = [w for w in head[last + 1:] if w.lower() in known and not SUPPORT.search(w)]
    kinds = [w for r in runs[:-1] for w in r if is_kind_of_right(w) and w.lower() in known and w not in subject]
    return Asked(subject=tuple(dict.fromkeys(subject)), phrases=("".join(head),) if head else (),
                 kinds=tuple(dict.fromkeys(kinds)), after=tuple(dict.fromkeys(after)),
                 kind=question_kind(u.query), unit=asked_unit(u.query), years=u.years, places=u.places,
                 pairs=tuple(zip(subject, subject[1:])), relative=relative_year(u),
                 value=bool(_ASKS_VALUE.search(u.query)) and question_kind(u.query) not in ("yesno", "list"))


def relative_year(u: Understanding) -> str | None:
    """今年, 明年, 去年 or 后年 as the question says it, when it names no year of its own."""
    m = None if u.years else _RELATIVE.search(u.query)
    return m.group(0) if m else None


def _runs(tagged: list[tuple[str, str]]) -> list[list[str]]:
    frames = frame_words()
    runs: list[list[str]] = [[]]
    for word, flag in tagged:
        if len(word) >= 2 and _NAMING.match(flag) and not is_stopword(word) and word not in frames \
                and not re.search(r"\d", word):
            runs[-1].append(word)
        elif word == "的" and runs[-1]:
            continue
        elif flag == "f" and runs[-1]:
            runs[-1] = []  # "专利审查里": where the question is set, not what it asks
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


@lru_cache(maxsize=1)
def _ip_words() -> tuple[str, ...]:
    """Words that name an IP right or object: the legal domains' words (index/data/law_domains.txt) and
    the IP dictionary's terms."""
    words = {"知识产权"}
    for key, asks in law_domains():
        words.add(key)
        words.update(asks)
    return tuple(sorted(words | _ip_terms(), key=len, reverse=True))


def is_ip_word(word: str) -> bool:
    return any(w in word for w in _ip_words())


# --- evidence ----------------------------------------------------------------------------------

def _heads(p: Picked) -> str:
    """What frames a picked sentence: its document's title, its clause's headings, and the articles of its
    own law it cites by number ("违反本法第九条规定…" is about 第九条's 商业秘密)."""
    cited = " ".join(h.chunk.text for h in p.cited)
    return f"{p.hit.title} {' '.join(p.hit.path)} {cited}".lower()


def _present(word: str, heads: str, body: str, explained: set[str], depth: int = 0, broader: bool = True) -> bool:
    """``word`` is in the quoted text or what frames it (``heads``: title, headings); or the quoted text
    has a word for it (subject_synonyms.tsv, colloquial.txt) or the broader right (broader_terms.tsv;
    not from a title: every policy's title says 知识产权); or, for a compound, each of its parts is
    there (实用新型专利 → 实用新型, 专利). 高价值发明专利 needs 高价值 itself: 发明专利 says less."""
    if word in heads or word in body or word in explained or any(w in body for w in synonyms().get(word, ())):
        return True
    if broader and any(_covered_by_broader(b, siblings, body) for b, siblings in broader_terms().get(word, ())):
        return True
    pieces = [w for w in parts(word) if w not in frame_words()]
    if len(pieces) < 2 and len(word) == 4 and depth == 0:
        return _halves_present(word[:2], word[2:], heads, body)
    if depth > 2 or len(pieces) < 2:
        return False
    return all(_present(w, heads, body, explained, depth + 1, broader) for w in pieces)


def _halves_present(a: str, b: str, heads: str, body: str) -> bool:
    """A four-character compound the dictionary keeps whole, said in other words: its halves side by
    side in either order (注册商标 in "申请商标注册的"), or one half framing the clause and the other in it
    (专利年费 in 专利法's "没有按照规定缴纳年费的"). 驰名商标 is not in "注册商标的有效期": 驰名 is nowhere.
    Both halves apart in one sentence ("专利权人…年费") do not count: measured, counting them answered
    one more unanswerable question on laws test for one more answerable one (docs/answers.md)."""
    if a in body and b in body:
        return _near(a, b, body, window=2)
    return (a in body and b in heads) or (b in body and a in heads)


@lru_cache(maxsize=1)
def synonyms() -> dict[str, tuple[str, ...]]:
    """{question word: clause words for the same thing} (assistant/data/subject_synonyms.tsv)."""
    text = (resources.files("assistant") / "data" / "subject_synonyms.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {word: tuple(w for w in words.split("|") if w) for word, words in rows}


@lru_cache(maxsize=1)
def broader_terms() -> dict[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    """{kind: ((broader right, sibling kinds), …)} (assistant/data/broader_terms.tsv)."""
    text = (resources.files("assistant") / "data" / "broader_terms.tsv").read_text(encoding="utf-8")
    out: dict[str, list] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            word, broader, siblings = line.split("\t")
            out.setdefault(word, []).append((broader, tuple(w for w in siblings.split("|") if w)))
    return {k: tuple(v) for k, v in out.items()}


def is_kind_of_right(word: str) -> bool:
    """A kind of a right that has sibling kinds (broader_terms.tsv): 实用新型, 外观设计专利, 发明专利申请."""
    return any(word == kind or re.fullmatch(f"{re.escape(kind)}{re.escape(broader)}(?:申请|权)?", word)
               for kind, rows in broader_terms().items() for broader, _ in rows)


def _covered_by_broader(broader: str, siblings: tuple[str, ...], text: str) -> bool:
    """``text`` speaks of the broader right itself, not only of a sibling kind ("发明和实用新型专利"), nor
    only of an office named after it (国务院专利行政部门, 专利代理机构)."""
    kinds = "|".join(map(re.escape, siblings))
    rest = re.sub(f"(?:{kinds})(?:(?:和|或者|或|、)(?:{kinds}))*{re.escape(broader)}?", "", text)
    rest = re.sub(f"{re.escape(broader)}(?=行政|局|代理)", "", rest)
    return broader in rest


@lru_cache(maxsize=1)
def _ip_terms() -> frozenset[str]:
    text = (resources.files("index") / "data" / "ip_terms.txt").read_text(encoding="utf-8")
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#"))


# --- the checks ----------------------------------------------------------------------------------

_OFFICIAL = re.compile(r"(?:省|市|自治区|自治州|地区|盟|区|县|旗)$")


def check_place(u: Understanding, picked: Sequence[Picked]) -> Failure | None:
    """A place no document covers; or a place named by its official name (长沙市, 内蒙古自治区) that has
    no document of its own, only a place inside it has one: 长沙市's target is not 芙蓉区's. A bare
    name (荆门) is answered from the place inside it, and the answer names that place."""
    if u.unknown_place and (not u.region_docs or _OFFICIAL.search(u.unknown_place)):
        return Failure("place", (u.unknown_place,))  # 深圳; 长沙雨花区 (only 芙蓉区 of 长沙 is covered)
    if not u.places or u.multi or u.exact_region_docs or not u.region_docs or not picked:
        return None
    official = [p for p in u.places if _OFFICIAL.search(p)]
    if official and picked[0].hit.chunk.doc_id in u.region_docs:
        return Failure("place", (official[0],))
    return None


def _lacking(asked: Asked, heads: str, body: str, u: Understanding, broader: bool = True) -> list[str]:
    """The subject's words missing from what the answer quotes (``body``) and what frames it (``heads``:
    titles and headings). ``broader``: a clause on the broader right covers a kind of it (a statute's
    rule on 专利 holds for 外观设计, and so does a policy's 专利资助; a policy's target for 专利申请量 states
    no figure of 外观设计专利's)."""
    text = f"{heads}\n{body}"
    explained = {w for phrase, terms in colloquial_matches(u.query) if any(t in text for t in terms)
                 for w in [phrase, *tag_words(phrase)]}
    lacking = [w for w in asked.subject if not _present(w.lower(), heads, body, explained, broader=broader)]
    # A modifier must modify the same thing: "商标" and "转让许可" both in "商标注册量…专利转让许可" are apart.
    lacking += [b for a, b in asked.pairs if a not in lacking and b not in lacking and a in body and b in body
                and a not in heads and b not in heads and not _near(a, b, body)]
    return lacking


def _near(a: str, b: str, text: str, window: int = NEAR_CHARS) -> bool:
    starts_a = [m.start() for m in re.finditer(re.escape(a), text)]
    starts_b = [m.start() for m in re.finditer(re.escape(b), text)]
    return any(-window - len(b) <= j - i <= len(a) + window for i in starts_a for j in starts_b)


_LEVEL = re.compile(r"(?:国家|省|自治区|市|区|县|盟)级")


def _other_level(asked: Asked, picked: Sequence[Picked]) -> tuple[str, ...]:
    """The phrases of the question naming a level (国家级地理标志龙头企业) when the quoted sentences name
    levels, but none of those: "确定20家省级地理标志龙头企业" does not count the 国家级 ones."""
    levels = {m.group(0) for phrase in asked.phrases for m in _LEVEL.finditer(phrase)}
    quoted = {m.group(0) for p in picked for m in _LEVEL.finditer(p.sentence)}
    if not levels or not quoted or levels & quoted:
        return ()
    return tuple(phrase for phrase in asked.phrases if _LEVEL.search(phrase))


def check_subject(asked: Asked, picked: Sequence[Picked], u: Understanding) -> Failure | None:
    """Every word of the subject that the documents use is in what the answer quotes (with its headings
    and title). When a value is asked for, in a sentence that states one: "每万人发明专利拥有量达到4件"
    does not answer how many 专利申请, even beside a sentence on PCT 专利申请."""
    if not picked:
        return None
    other_level = _other_level(asked, picked)
    if other_level:
        return Failure("subject", other_level)
    # A statute's rule on 专利 holds for each kind of patent; a policy's figure for 专利 is not one for 外观设计专利.
    rules = any(p.hit.kind in LAW_KINDS for p in picked) or not asked.value
    kinds = _lacking(replace(asked, subject=asked.kinds, pairs=()), " ".join(_heads(p) for p in picked),
                     "\n".join(p.sentence.lower() for p in picked), u, rules)
    if kinds:
        return Failure("subject", tuple(kinds))
    if not asked.subject:
        return None
    kind = next((k for k in answer_kinds() if k.name == asked.kind), None) if asked.kind in VALUE_KINDS else None
    valued = [p for p in picked if states_value(kind, p.sentence, asked.unit)]
    if valued:
        lacking = min((_lacking(asked, _heads(p), p.sentence.lower(), u, p.hit.kind in LAW_KINDS) for p in valued), key=len)
        unvalued = [p for p in picked if p not in valued]
        if lacking and unvalued and asked.kind in VALUE_KINDS and not _lacking(asked, " ".join(_heads(p) for p in unvalued),
                                                 "\n".join(p.sentence.lower() for p in unvalued), u, rules):
            # The subject is quoted, but with no value of its own: what is missing is its figure.
            return Failure("figure", (value_name(asked.kind, asked.unit),), of="".join(asked.phrases) or "".join(asked.subject))
    else:
        lacking = _lacking(asked, " ".join(_heads(p) for p in picked), "\n".join(p.sentence.lower() for p in picked), u,
                           rules)
    if not lacking:
        return None
    named = [p for p in asked.phrases if any(w in p for w in lacking)]
    return Failure("subject", tuple(named or lacking))


# An article that announces its own list ("可以行使下列职权：（一）…") lists things of some kind, whatever the
# question calls them (手段 for 职权).
_ANNOUNCES_LIST = re.compile(r"(?:下列|以下|如下)[^。；：:]{0,12}[：:]")


def check_listed(asked: Asked, picked: Sequence[Picked], u: Understanding,
                 is_section: Callable[[str], bool] | None = None) -> Failure | None:
    """A list question names the kind of thing listed, and the answer must hold it (in the quoted sentences
    or their headings). On the laws, always: an article lists things by their kind ("有下列行为之一的",
    "…应当履行下列义务"), unless it announces its own list (then whatever the question calls them). On a
    policy, only when ``is_section`` says the thing is a kind of section (阶段, 实施步骤: some policy's
    heading ends with it): a plan without stages is not answered with its nearest sentence, while
    "哪几个地方" asks for members a policy names (沧州, 湖北), not their kind."""
    if asked.kind != "list" or not picked:
        return None
    thing = listed_thing(u.query)
    if not thing or thing in frame_words():
        return None
    law = all(p.hit.kind in LAW_KINDS for p in picked)
    if not law and not (is_section and is_section(thing)):
        return None
    heads = " ".join(_heads(p) for p in picked).lower()
    body = "\n".join(p.sentence.lower() for p in picked)
    if _present(thing.lower(), heads, body, set()) or (law and _ANNOUNCES_LIST.search(body)):
        return None
    return Failure("subject", (thing,))


def check_support(u: Understanding, picked: Sequence[Picked]) -> Failure | None:
    """A question about support (资助, 补贴, 奖励 …: the reader's subsidy intent) is answered by sentences
    that name some (in them or their headings): "申请专利有补贴吗" is not answered by 专利法第十九条 on
    applying abroad, whatever the ranking."""
    if u.intent != "subsidy" or not picked:
        return None
    if any(SUPPORT.search(f"{_heads(p)} {p.sentence}") for p in picked):
        return None
    asked = SUPPORT.search(u.query)
    return Failure("subject", (asked.group(0),) if asked else (), check="support")


def supported(asked: Asked, picked: Sequence[Picked], u: Understanding) -> list[Picked]:
    """Of a policy question answered from several places unasked ("企业申请专利有没有资助"), the places
    whose own sentences hold the subject, and the words it modifies (技术调查官: 乌海's "…的调查研究" holds
    知识产权 but is no answer); the first place's always stay: the checks judge it."""
    docs = list(dict.fromkeys(p.hit.chunk.doc_id for p in picked))
    if len(docs) < 2 or not asked.subject or u.multi or u.places or any(p.hit.kind in LAW_KINDS for p in picked):
        return list(picked)
    keep = {docs[0]}
    for doc in docs[1:]:
        mine = [p for p in picked if p.hit.chunk.doc_id == doc]
        body = "\n".join(p.sentence.lower() for p in mine)
        if not _lacking(asked, " ".join(_heads(p) for p in mine), body, u) and "".join(asked.after) in body:
            keep.add(doc)
    return [p for p in picked if p.hit.chunk.doc_id in keep]


def tag_words(text: str) -> list[str]:
    return [w for w, _ in tag(text)]


_ASKS_VALUE = re.compile(r"多少|几|多久|多长|多大|多高|多远|什么时候|何时|哪天|哪年|哪一年|哪个月|上限|下限|"
                         r"百分之|税率|费率|比例是|期限是|标准是|电话|"
                         r"哪个部门|哪个机关|哪个机构|什么部门|哪个单位|向谁|找谁|由谁")  # who: an office must be named
_EVENT_TIME = re.compile(r"[^，。；,;]{2,}时(?:[，。；,;]|起|设立|成立|生效|发生)|之时")


def check_figure(asked: Asked, picked: Sequence[Picked], u: Understanding) -> Failure | None:
    """A value of the kind asked for is stated in a sentence the answer quotes (an amount in 元, a period,
    a rate …), in the unit asked (多少件 → a number of 件). The rest of the clause does not count: a count
    of 服务机构 elsewhere in the item is not quoted, and the user would read the quoted sentences as the
    answer. Only when the question asks for a value: "利率有争议怎么办" asks what to do, not a rate;
    "什么时候设立" is answered by "…交付时设立"."""
    if not _ASKS_VALUE.search(u.query) or asked.kind in ("yesno", "list"):
        return None
    texts = [p.sentence for p in picked]
    if asked.kind == "date" and any(_EVENT_TIME.search(t) for t in texts):
        return None
    if asked.kind not in VALUE_KINDS and asked.kind != "who":
        return None
    kind = next(k for k in answer_kinds() if k.name == asked.kind)
    # A policy lists its targets as parallel items, each with its own figure; a statute's sentence is one rule.
    joined = "\n".join(p.sentence for p in picked
                        if p.hit.kind in LAW_KINDS or asked.kind == "who"
                        or states_value_of(kind, p.sentence, asked.subject))
    stated = holds_kind(kind, joined) if asked.kind == "who" else states_value(kind, joined, asked.unit)
    if not stated or (asked.unit and asked.kind in ("count", "score") and not holds_unit(asked.unit, joined)):
        return Failure("figure", (value_name(asked.kind, asked.unit) if asked.kind in VALUE_KINDS else "负责的部门",))
    return None


_ITEM = re.compile(r"[，,；;]")
# Some figure: a number, or a Chinese one with its unit …
_SOME_FIGURE = re.compile(r"\d|[一二三四五六七八九十百千万两半]+个?(?:件|家|个|项|次|名|人|年|月|日|天|倍|元|分|成)")
# … nor is a year ("2025年": when, not how much), nor an ordinal ("第十二条第二项", "第六年")
_NO_FIGURE = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)(?:\s*年)?|第[\d一二三四五六七八九十百千零两]+")


def states_value_of(kind, sentence: str, subject: Sequence[str]) -> bool:
    """``sentence`` states a value of ``kind`` that is the subject's. A sentence of parallel items
    ("万人发明专利拥有量突破22件,…,知识产权质押融资超100亿元") gives each item its own figure: when every item
    naming the subject states a figure of another kind, the amount of another item is not the subject's.
    An item naming the subject with no figure of its own ("对获得发明专利授权的，每件奖励5000元") is answered
    by the items after it."""
    if not states_value(kind, sentence):
        return False
    text = sentence.lower()
    own = [item for item in _ITEM.split(text) if subject and all(w.lower() in item for w in subject)]
    if not own or any(states_value(kind, item) for item in own):
        return True
    return not all(_SOME_FIGURE.search(_NO_FIGURE.sub("", item)) for item in own)


# "多少法定赔偿", "几项中国商标金奖": the thing whose value is asked comes right after the asking word
_ASKED_VALUE_OF = re.compile(r"(?:多少|几)(?:个|项|件|家|名|次|种|位|所|部|篇|万|亿|元|人|天|年|月|日|分|倍)?")
_VALUE_NOUN = re.compile(r"^(?:n|vn$|b$|j$|eng$)")


def value_noun(u: Understanding) -> tuple[str, ...]:
    """The words naming what a value is asked of, when the question says it after the asking word
    ("法院能判多少法定赔偿" → 法定赔偿; "拿几项中国商标金奖" → 商标, 金奖); places, frame words and the
    words of the answer-type table (多少比例, 多少费用) left out."""
    found = _ASKED_VALUE_OF.search(u.query)
    if not found:
        return ()
    run = []
    for word, flag in tag(u.query[found.end():]):
        if not _VALUE_NOUN.match(flag):
            break
        run.append((word, flag))
    return tuple(w for w, f in run if len(w) >= 2 and f != "ns" and w not in frame_words() and not is_stopword(w)
                 and not any(k.asks.search(w) for k in answer_kinds()))  # 多少比例: 比例 is the kind asked


_CLAUSE_END = re.compile(r"[，,。；;！!？?]")


def asked_event(u: Understanding) -> tuple[str, ...]:
    """The words after the asking word, up to the end of its clause: what the value asked is the value of
    ("多长时间内作出复审决定" → 作出, 复审, 决定; "什么时候生效" → 生效; "保护多少年" → none)."""
    found = _ASKS_VALUE.search(u.query)
    if not found:
        return ()
    after = _CLAUSE_END.split(u.query[found.end():], 1)[0]
    return tuple(w for w in tokenize(after) if len(w) >= 2 and w not in frame_words() and not is_stopword(w)
                 and not any(k.asks.search(w) for k in answer_kinds()))


def states_of_event(asked: Asked, u: Understanding, picked: Sequence[Picked]) -> bool:
    """A quoted sentence states the value asked and every word of the event it is asked of (asked_event):
    "…三个月内向国务院专利行政部门请求复审" is no period for 作出复审决定."""
    event = asked_event(u)
    return any(check_figure(asked, [p], u) is None and all(w in p.sentence for w in event) for p in picked)


def figure_or_subject(failed: Failure, u: Understanding, picked: Sequence[Picked], best: Hit | None) -> Failure:
    """A figure failure whose asked-of thing is itself nowhere in the quoted text is the subject's:
    "多少法定赔偿" against a clause without 法定赔偿 lacks 法定赔偿, not just an amount."""
    words = value_noun(u)
    heads = " ".join(_heads(p) for p in picked).lower()
    body = "\n".join([p.sentence for p in picked] + ([best.chunk.text] if best else [])).lower()
    absent = [w for w in words if not _present(w.lower(), heads, body, set())]
    return Failure("subject", ("".join(words),)) if absent else failed


_VERSION = re.compile(r"(?:19|20)\d{2}\s*年[^，,。？?]{0,8}?(?:修正|修订|修改|版|颁布|法|条例|细则)")


def document_spans(documents: Sequence[DocInfo], query: str) -> dict[str, tuple[int, int] | None]:
    """The years each document speaks for: a policy's period; and, when the question asks about a
    version of a law ("2008年修正的专利法"), a law's version year onwards (the bundled text is that one)."""
    version = bool(_VERSION.search(query))
    spans = {}
    for d in documents:
        span = d.period
        if span is None and version and d.kind in LAW_KINDS and d.issued:
            span = (d.issued.year, 9999)
        spans[d.doc_id] = span
    return spans


def own_years(documents: Sequence[DocInfo]) -> dict[str, int]:
    """Each policy's own year, what its 今年 means: the year it was issued, else the first of its period."""
    years = {}
    for d in documents:
        if d.kind not in LAW_KINDS and (d.issued or d.period):
            years[d.doc_id] = d.issued.year if d.issued else d.period[0]
    return years


def _speaks_for(p: Picked, first: int, last: int, span: tuple[int, int] | None) -> bool:
    """The sentence names a year from ``first`` to ``last``, or names none and its document's period
    (unknown: any) overlaps them."""
    said = [int(y) for y in _YEAR.findall(p.sentence + " " + " ".join(p.hit.path))] or _year_before(p)
    if said:
        return any(first <= y <= last for y in said)
    return span is None or (span[0] <= last and first <= span[1])


def _year_before(p: Picked) -> list[int]:
    """The year an earlier sentence of the same clause set for this one: "到2025年,园区专利年授权量达到…。
    园区每万人有效发明专利拥有量达到30件以上…" speaks of 2025 throughout (the nearest year named before)."""
    at = p.hit.chunk.text.find(p.sentence)
    before = _YEAR.findall(p.hit.chunk.text[:at]) if at > 0 else []
    return [int(before[-1])] if before else []


_FIGURE = re.compile(r"\d")


def _figured(picked: Sequence[Picked], asked: Asked) -> Sequence[Picked]:
    """The quoted sentences that can answer for a year: when a value is asked, those with a figure (a
    sentence without one, "每万人口发明专利拥有量等有较大增长", does not make 2020's 8.0 a 2018 target)."""
    if not asked.value:
        return picked
    return [p for p in picked if _FIGURE.search(p.sentence)] or picked


def check_period(asked: Asked, picked: Sequence[Picked], periods: Mapping[str, tuple[int, int] | None],
                 years: Mapping[str, int] | None = None) -> Failure | None:
    """The years asked for are the years the quoted sentences speak of, or, when they name none, within
    the period of their document (a 2023 work plan does not answer for 2024). A relative year (明年) is
    each policy's own year moved by it (``years``: ``own_years``); against a law it asks nothing."""
    if not picked:
        return None
    if asked.years:
        first, last = asked.years
        if any(_speaks_for(p, first, last, periods.get(p.hit.chunk.doc_id)) for p in _figured(picked, asked)):
            return None
        return Failure("period", (f"{first}年" if first == last else f"{first}—{last}年",))
    if not asked.relative or not years:
        return None
    shift = RELATIVE_YEARS[asked.relative]
    evidence = _figured(picked, asked)
    meant = [(p, years[p.hit.chunk.doc_id] + shift) for p in evidence if p.hit.chunk.doc_id in years]
    if len(meant) < len(evidence) or any(_speaks_for(p, y, y, periods.get(p.hit.chunk.doc_id)) for p, y in meant):
        return None
    return Failure("period", (f"{asked.relative}（{meant[0][1]}年）",))


def resolve_relative(asked: Asked, doc_ids: Sequence[str], years: Mapping[str, int]) -> Asked:
    """The record with a relative year (明年) made the year it means in the first of ``doc_ids`` that is a
    policy, for checking a generated answer's years; unchanged when none is."""
    doc = next((d for d in doc_ids if d in years), None)
    if not asked.relative or asked.years or doc is None:
        return asked
    year = years[doc] + RELATIVE_YEARS[asked.relative]
    return replace(asked, years=(year, year))


def relative_note(u: Understanding, doc_ids: Sequence[str], years: Mapping[str, int]) -> str:
    """How a relative year was read, for an answer citing a policy (``doc_ids``, in citation order):
    "（“今年”按文件的年份理解，即2023年。）"."""
    said = relative_year(u)
    doc = next((d for d in doc_ids if d in years), None)
    if not said or doc is None:
        return ""
    return f"（“{said}”按文件的年份理解，即{years[doc] + RELATIVE_YEARS[said]}年。）"


def check_relevance(u: Understanding, hits: Sequence[Hit], picked: Sequence[Picked], known: Container[str], *,
                    min_dense: float, scope: ScopeModel | None, vectors: ScopeVectors | None = None) -> Failure | None:
    """The question speaks of something the documents know of (``unknown_topic``), what was found fits
    it as the knowledge base's own questions are fitted (``assistant.scope``), and the best clause is
    not far."""
    unknown = unknown_topic(u, known)
    if unknown:
        return Failure("relevance", unknown)
    if (scope is not None and vectors is not None and judged(u)
            and scope.refuses(scope_features(u, hits, picked, known, *vectors(clause_hits(hits)[:1])))):
        return Failure("relevance", ())
    if max((h.scores.get("dense", 0.0) for h in hits[:3]), default=0.0) < min_dense:
        return Failure("relevance", ())
    return None


def unknown_topic(u: Understanding, known: Container[str]) -> tuple[str, ...]:
    """The question's content words when the indexed documents use none of them and no colloquial phrase
    of it has a document word (今天天气怎么样, 红烧肉怎么做): no clause can be about it. Empty when one
    word is known (别人抄袭我的作品: 作品), a place or an article is named, or the question has no content
    words of its own (a follow-up's are in ``u.query``)."""
    words = content_tokens(u)
    if not words or u.places or u.articles or any(w in known for w in words) or colloquial_matches(u.query):
        return ()
    longest = [w for w in sorted(words, key=len, reverse=True) if not any(k.asks.match(w) for k in answer_kinds())]
    return tuple(sorted((w for i, w in enumerate(longest) if not any(w in v for v in longest[:i])),
                        key=u.query.find))


def verify(u: Understanding, hits: Sequence[Hit], picked: Sequence[Picked], *, known: Container[str],
           periods: Mapping[str, tuple[int, int] | None], min_dense: float, scope: ScopeModel | None = None,
           article_score: float, years: Mapping[str, int] | None = None,
           vectors: ScopeVectors | None = None, is_section: Callable[[str], bool] | None = None) -> Failure | None:
    """The first check the answer fails (None: it answers the question); ``vectors`` gives the scope model
    the question's and the best clause's embeddings (asked only when it judges); ``is_section`` tells
    whether a thing listed is a kind of policy section (check_listed)."""
    failed = check_place(u, picked)
    if failed:
        return failed
    if not hits or not picked:
        return Failure("no_hits", ())
    asked = read_asked(u, known)
    # A clause asked for by number is the answer, in the version indexed: "2008年专利法第四十二条" is not.
    if u.articles and hits[0].score >= article_score:
        return check_period(asked, picked, periods, years)
    return (check_period(asked, picked, periods, years) or check_subject(asked, picked, u)
            or check_listed(asked, picked, u, is_section)
            or _checked_figure(asked, picked, u, (clause_hits(hits) or [None])[0])
            or check_relevance(u, hits, picked, known, min_dense=min_dense, scope=scope, vectors=vectors)
            or check_support(u, picked))


def _checked_figure(asked: Asked, picked: Sequence[Picked], u: Understanding, best: Hit | None) -> Failure | None:
    failed = check_figure(asked, picked, u)
    return figure_or_subject(failed, u, picked, best) if failed else None


_SENTENCE_END = re.compile(r"(?<=[。；;！!？?\n])")


def check_reply(asked: Asked, reply: str, heads: str, u: Understanding, rules: bool = True) -> Failure | None:
    """The same checks for a generated (LLM) answer: its sentences that state a value hold the subject,
    a value of the kind asked is stated, and the years it names are the years asked. ``heads`` are the
    cited clauses' titles and headings; ``rules``: a cited clause is a statute's (its rule on 专利 holds
    for each kind of patent; a policy's figure does not)."""
    said = [s.strip() for s in _SENTENCE_END.split(reply) if s.strip()]
    kind = next((k for k in answer_kinds() if k.name == asked.kind), None) if asked.kind in VALUE_KINDS else None
    valued = [s for s in said if states_value(kind, s, asked.unit)]
    if kind and _ASKS_VALUE.search(u.query) and not valued:
        return Failure("figure", (value_name(kind.name, asked.unit),))
    lacking = min((_lacking(asked, heads.lower(), s.lower(), u, rules) for s in valued), key=len) if valued else \
        _lacking(asked, heads.lower(), reply.lower(), u, rules or not asked.value)
    if lacking:
        return Failure("subject", tuple(lacking))
    years = [int(y) for y in _YEAR.findall(reply)]
    if asked.years and years and not any(asked.years[0] <= y <= asked.years[1] for y in years):
        return Failure("period", (f"{asked.years[0]}年",))
    return None


# --- saying why ------------------------------------------------------------------------------

def not_found_text(failure: Failure, u: Understanding, nearest: Hit | None, nearest_quote: str,
                   periods: Mapping[str, tuple[int, int] | None], searched: str, mentioned: Container[str] = ()) -> str:
    """The not-found answer: what is missing, precisely, then the nearest clause as 可能相关. ``mentioned``:
    the missing words that the documents in scope do use somewhere (see ``subject_text``)."""
    scoped = nearest is not None and bool(u.region_docs or u.doc_ids)
    scope = f"《{nearest.title}》" if scoped else "收录的文件"
    missing = "、".join(f"「{m}」" for m in failure.missing)
    if failure.reason == "place" and u.unknown_place:
        return f"抱歉，没有找到答案：收录的文件中没有关于「{u.unknown_place}」的文件。已检索：{searched}。"
    head = {
        "place": f"收录的文件中没有{missing}本级的文件，只有其下辖地区的文件，不能拿来回答{missing}的问题。",
        "subject": subject_text(scope, failure.missing, mentioned, question_kind(u.query)),
        "figure": figure_text(scope, missing.strip("「」") if missing else "数值", scoped, failure.of),
        "period": f"{scope}没有写{failure.missing[0] if failure.missing else '所问时期'}的内容"
                  + (_period_note(nearest, nearest_quote, periods) if nearest else "") + "。",
        "relevance": f"收录的文件都没有讲到{missing}，这个问题不在知识库的范围内。" if missing
                     else "收录的文件中没有讲这个问题的条款，它可能不在知识库的范围内。",
        "no_hits": "没有检索到相关条款。",
    }[failure.reason]
    text = f"抱歉，没有找到答案：{head}"
    if nearest is not None and nearest_quote and failure.reason != "no_hits" and not (
            failure.reason == "relevance" and failure.missing):
        text += f"最接近的条款（{nearest.citation}）写的是：“{nearest_quote}”——仅供参考，并不是所问问题的答案。"
    return text + f"已检索：{searched}。"


def figure_text(scope: str, value: str, scoped: bool, of: str = "") -> str:
    """Why the figure check failed, said only as far as it was checked: of one document in scope, that it
    does not state the value; over the whole collection, that the closest clauses do not (the best clause
    and those read on behind it were checked, not every clause of every law: 专利法实施细则第九十三条 states
    the 奖金 that a policy's "给予奖励" does not). ``of``: the thing the text names without its value."""
    what = f"「{of}」的{value}" if of else f"具体{value}"
    return f"{scope}没有写明{what}。" if scoped else f"{scope}中与问题最接近的条款没有写明{what}。"


def subject_text(scope: str, missing: Sequence[str], mentioned: Container[str], kind: str | None) -> str:
    """Why the subject check failed, said only as far as it is true. A word no document in scope uses:
    "收录的文件没有写到「驰名商标有效期」". A word the documents do use, though not in the clauses that answer:
    the value asked of it is what they do not state ("《乌海…》没有写明「专利申请」的数量", for 专利申请 is in
    the plan, just not with a target), or, no value asked, the closest clauses do not say it ("外观设计要实质
    审查吗": 实质审查 is in 专利法, not in a clause on 外观设计)."""
    if not missing:
        return f"{scope}中没有与问题关键内容相符的条款。"
    unused = [m for m in missing if m not in mentioned]
    if unused:
        return f"{scope}没有写到{_quoted(unused)}。"
    if kind in VALUE_KINDS:
        return f"{scope}没有写明{_quoted(missing)}的{VALUE_KINDS[kind]}。"
    return f"{scope}中与问题最接近的条款没有写到{_quoted(missing)}。"


def _quoted(words: Sequence[str]) -> str:
    return "、".join(f"「{w}」" for w in words)


def _period_note(hit: Hit, quote: str, periods: Mapping[str, tuple[int, int] | None]) -> str:
    """What period the nearest clause does speak of: the years it names, else its document's period."""
    said = sorted({int(y) for y in _YEAR.findall(quote)})
    if said:
        return "（最接近的条款写的是" + "、".join(f"{y}年" for y in said) + "）"
    span = periods.get(hit.chunk.doc_id)
    if not span:
        return ""
    if span[1] == 9999:
        return f"（收录的是{span[0]}年的版本）"
    return f"（该文件针对{span[0]}年）" if span[0] == span[1] else f"（该文件针对{span[0]}—{span[1]}年）"

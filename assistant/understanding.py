"""Question understanding: places, documents, clause references, years, intent, follow-ups.

Everything here is rules over the question text and the index's own metadata
(document titles, regions and their aliases): fast, offline and explainable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assistant.abbreviations import Abbreviations, Expansion
from assistant.asks import asked_kind
from assistant.script import characters, simplified
from corpus.metadata import LAW_KINDS
from corpus.numerals import CN_NUMERAL_CHARS, cn_to_int, normalize_number
from corpus.regions import country_in, gazetteer, short_name
from index.catalog import DocInfo
from index.text import law_domains, tag

INTENTS = ("goal", "subsidy", "procedure", "definition", "amount", "fact")
_FIVE_YEAR = {"十一五": (2006, 2010), "十二五": (2011, 2015), "十三五": (2016, 2020), "十四五": (2021, 2025),
              "十五五": (2026, 2030)}
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")
_ARTICLE = re.compile(rf"第\s*([{CN_NUMERAL_CHARS}\d]+)\s*条(?:之([{CN_NUMERAL_CHARS}\d]+))?")
_LAW_NAME = re.compile(r"《?([\u4e00-\u9fa5]{2,30}?(?:法|条例|细则|解释|规定|办法|规划|方案|要点))》?")
_MULTI = re.compile(r"哪些地方|哪几个地方|哪些地区|各地|(?<!准备)(?<!提交)(?<!交)(?<!带)哪些文件|哪几份|哪些城市|哪些市|分别|各是|各自|各定|各有|各为|对比|比较一下|一样吗|有什么不同|有何不同|区别")
_QUOTED = re.compile(r"[“\"「『]([^”\"」』]{2,20})[”\"」』]")
_ORDINAL = re.compile(rf"第([{CN_NUMERAL_CHARS}\d]{{1,3}})(?:个|项|大)?(阶段|工程|任务|措施|方面|部分|步|行动|重点|目标|计划)")
# "由谁牵头": who leads, which a clause says with "牵头".
ASKS_LEAD = re.compile(r"谁牵头|哪个部门牵头|哪个单位牵头|牵头部门|牵头单位|由谁负责|哪个部门负责|谁来负责|谁负责")
_FOLLOWUP_MARK = re.compile(r"^(?:那|那么|那要是|那如果|还有|另外|再问|它|其|这个|该|此)|呢[？?。!！]*$|呢[？?，,]")
_PRONOUN = re.compile(r"它|这个文件|该文件|这份文件|这个规划|这个方案")
_QUESTION_TAIL = re.compile(
    r"(?:要|能|会|可以|应当|得|还|都)?(?:分|让|做到|达到|突破|有|是|为|交|拿|给|设|建)?"
    r"(?:多少|几|哪|什么|怎么|怎样|如何|谁|是否|有没有|有无|多久|多长|多大|吗|呢).*$")
# What a subsidy question asks about, and what a clause that answers it names: money or help given.
SUPPORT = re.compile(r"奖励|补贴|补助|资助|贴息|扶持|资金|经费|风险补偿|奖金|报酬|优惠|支持|鼓励|奖补")
_INTENT_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("definition", re.compile(r"什么是|是指|指什么|是什么意思|定义|含义|啥是|是啥")),
    ("amount", re.compile(r"多少钱|多少元|多少万元|金额|补贴标准|资助标准|奖励标准|奖励多少|补多少|资助多少|"
                          r"比例是多少|费用是多少|官费|收费|规模有多大|规模多大|多大规模")),
    ("subsidy", re.compile(r"奖励|补贴|补助|资助|贴息|扶持|资金|经费|给钱|风险补偿|兜底|奖金|报酬|优惠|支持吗")),
    ("procedure", re.compile(r"怎么|如何|流程|程序|步骤|阶段|申请|办理|谁牵头|哪个部门|牵头|期限内|多久内|"
                             r"什么时候|何时|哪天|投诉|举报|提交|材料")),
    ("goal", re.compile(r"目标|多少|几家|几个|达到|突破|要做到|增长|比例|占比|覆盖|百分之|%")),
]
# Entities a follow-up can swap for one of the same kind ("那外观设计呢？" after a question on 发明专利).
_ENTITY_KINDS = [
    ("发明专利", "实用新型专利", "外观设计专利", "实用新型", "外观设计", "专利", "商标", "注册商标", "著作权", "版权",
     "计算机软件", "软件", "集成电路布图设计", "布图设计", "植物新品种", "地理标志", "商业秘密", "PCT", "驰名商标"),
    ("侵犯商业秘密", "虚假宣传", "商业诋毁", "商业贿赂", "混淆行为", "有奖销售", "假冒专利", "假冒注册商标",
     "侵犯著作权", "侵犯专利权", "侵犯商标专用权", "盗版"),
    ("奖金", "报酬", "奖励", "补贴", "资助", "贴息"),
    ("复审", "无效宣告", "异议", "续展", "备案", "登记", "撤销"),
    ("授权量", "申请量", "拥有量", "注册量"),
]
# A patent type named alone in a follow-up means that kind of patent.
_PATENT_KINDS = {"实用新型": "实用新型专利", "外观设计": "外观设计专利"}


@dataclass(frozen=True)
class ArticleRef:
    number: str  # normalised, e.g. "第42条"
    law: str | None  # the law named with it ("专利法"), if any


@dataclass(frozen=True)
class Understanding:
    """What a question asks, in terms the retriever and composer use."""

    question: str  # as typed
    query: str  # standalone question used for retrieval (rewritten for follow-ups)
    rewritten: bool
    places: tuple[str, ...] = ()  # place names mentioned, as typed (荆门, 掇刀区 …)
    region_docs: tuple[str, ...] = ()  # documents of those places (empty: no place named)
    exact_region_docs: tuple[str, ...] = ()  # documents whose own region is the place named
    unknown_place: str | None = None  # a place named that no document covers (深圳 …)
    doc_ids: tuple[str, ...] = ()  # documents named by title ("专利法", "乌海规划")
    articles: tuple[ArticleRef, ...] = ()
    years: tuple[int, int] | None = None
    intent: str = "fact"
    multi: bool = False
    # Legal domains the question names (专利, 商标 …) and, per domain, the laws in it.
    domains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # "第二阶段重点干什么": the n-th item of a list and what it is (2, "阶段").
    ordinal: tuple[int, str] | None = None
    quoted: tuple[str, ...] = ()  # terms the user put in quotes (“蓝天”): an answer must contain them
    expanded: tuple[Expansion, ...] = ()  # abbreviations read as the documents' compound (软著 → 软件著作权)
    traditional: bool = False  # typed in traditional characters, read in simplified ones (專利 → 专利)
    notes: tuple[str, ...] = field(default=())


def _clean(text: str) -> str:
    return re.sub(r"\s+", "", text or "")


class QuestionReader:
    """Reads questions against the documents of one index."""

    def __init__(self, documents: Sequence[DocInfo], abbreviations: Abbreviations | None = None,
                 vocabulary: Callable[[], set[str]] | None = None):
        self.documents = list(documents)
        self.abbreviations = abbreviations
        self._vocabulary = vocabulary  # the index's words, whose characters are never simplified
        self._characters: tuple[set[str] | None, frozenset[str]] = (None, frozenset())
        self._place_names: dict[str, set[str]] = {}  # name -> doc ids whose region chain/aliases hold it
        self._exact_names: dict[str, set[str]] = {}  # name -> doc ids whose leaf region is it
        for d in self.documents:
            if d.region == ("全国",):
                continue
            leaf_names = {d.region[-1], short_name(d.region[-1]), *d.region_aliases} if d.region else set()
            for name in set(d.region) | {short_name(r) for r in d.region} | set(d.region_aliases):
                if len(name) >= 2:
                    self._place_names.setdefault(name, set()).add(d.doc_id)
            for name in leaf_names:
                if len(name) >= 2:
                    self._exact_names.setdefault(name, set()).add(d.doc_id)
        self._place_re = re.compile("|".join(sorted(map(re.escape, self._place_names), key=len, reverse=True))) \
            if self._place_names else None
        self._titles = {d.doc_id: d.title for d in self.documents}
        self._domains = [(key, words, tuple(d.doc_id for d in self.documents if d.kind in LAW_KINDS and key in d.title))
                         for key, words in law_domains()]

    @classmethod
    def for_index(cls, index) -> "QuestionReader":
        """A reader of questions over ``index``: its documents, and abbreviations read off its words."""
        return cls(index.documents(), Abbreviations(index), index.vocabulary)

    def _index_characters(self) -> frozenset[str]:
        """The characters of the index's words (read again when its vocabulary changes)."""
        if self._vocabulary is None:
            return frozenset()
        words = self._vocabulary()
        if words is not self._characters[0]:
            self._characters = (words, characters(words))
        return self._characters[1]

    # --- single pieces ---

    def places(self, text: str) -> list[str]:
        return self._place_re.findall(text) if self._place_re else []

    def foreign_place(self, text: str) -> str | None:
        """A place named in ``text`` that no document is about (深圳, 美国, 越南 …)."""
        abroad = country_in(text, lambda t: {w for w, _ in tag(t)})
        if abroad and not any(abroad in d.title for d in self.documents):
            return abroad
        g = gazetteer()
        covered = set(self._place_names)
        for i in range(len(text)):
            for length in (6, 5, 4, 3, 2):
                word = text[i:i + length]
                if len(word) < 2 or word in covered:
                    continue
                hits = g.by_name.get(word) or (g.by_short.get(word) if length >= 2 else None)
                if hits and not any(n in covered for n in (word, short_name(word))):
                    # Guard against common words that are also place names.
                    if word in ("中国", "全国", "国家", "中华", "人民", "江山", "和平", "新区", "城区", "郊区"):
                        continue
                    return word
        return None

    def named_docs(self, text: str) -> list[str]:
        """Documents named by (a distinctive part of) their title."""
        found = []
        for m in _LAW_NAME.finditer(text):
            name = m.group(1)
            for prefix in ("中华人民共和国",):
                name = name.removeprefix(prefix)
            best = [d for d, t in self._titles.items() if t.removeprefix("中华人民共和国") == name]
            if not best:
                best = [d for d, t in self._titles.items() if name in t and len(name) >= 3]
            found.extend(d for d in best if d not in found)
        return found

    def articles(self, text: str) -> list[ArticleRef]:
        refs = []
        for m in _ARTICLE.finditer(text):
            number = normalize_number(m.group(0))
            if not number:
                continue
            before = text[:m.start()]
            law = None
            names = list(_LAW_NAME.finditer(before))
            if names:
                law = names[-1].group(1).removeprefix("中华人民共和国")
            refs.append(ArticleRef(number, law))
        return refs

    def domains(self, text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The legal domains ``text`` names that some law of the index is in, in order of mention."""
        found = []
        for key, words, docs in self._domains:
            positions = [text.find(w) for w in words if w in text]
            if docs and positions:
                found.append((min(positions), key, docs))
        return tuple((key, docs) for _, key, docs in sorted(found))

    @staticmethod
    def years(text: str) -> tuple[int, int] | None:
        for name, span in _FIVE_YEAR.items():
            if name in text:
                return span
        found = [int(y) for y in _YEAR.findall(text)]
        return (min(found), max(found)) if found else None

    @staticmethod
    def intent(text: str) -> str:
        for name, pattern in _INTENT_RULES:
            if pattern.search(text):
                # "保护多少年", "什么时候": 多少 asks for a period or a date, not for a target to reach.
                if name == "goal" and getattr(asked_kind(text), "name", None) in ("duration", "date", "score"):
                    return "fact"
                return name
        return "fact"

    # --- follow-ups ---

    def is_followup(self, text: str, history: Sequence[dict]) -> bool:
        if not any(t.get("role") == "user" and t.get("content") for t in history):
            return False
        if _FOLLOWUP_MARK.search(text) or _PRONOUN.search(text):
            return True
        # A short question that names a place, a document or a kind of IP stands on its own.
        has_subject = bool(self.places(text) or self.named_docs(text) or any(e in text for e in _ENTITY_KINDS[0]))
        return len(text) <= 16 and not has_subject

    def standalone_history(self, history: Sequence[dict]) -> list[dict]:
        """``history`` with each user follow-up replaced by its standalone form, turn by turn, so a
        third turn ("那沧州呢？" after "具体有哪些措施？" after a 荆门 question) keeps the subject."""
        out: list[dict] = []
        for turn in history:
            content = turn.get("content") if isinstance(turn, dict) else None
            if turn.get("role") == "user" and content and self.is_followup(_clean(content), out):
                turn = {**turn, "content": self.rewrite(_clean(content), out)}
            out.append(turn)
        return out

    def rewrite(self, text: str, history: Sequence[dict]) -> str:
        """A standalone question from a follow-up and the last user turn."""
        prev = next((t["content"] for t in reversed(history) if t.get("role") == "user" and t.get("content")), "")
        prev = _clean(prev)
        cur = _clean(text)
        body = re.sub(r"^(?:那么|那要是|那如果|那|还有|另外|再问一下|再问)", "", cur)
        core = re.sub(r"呢[？?。!！]*$", "", body)
        new_places = self.places(core)
        old_places = self.places(prev)
        # "沧州呢？" after a question about 湖北: the same question for another place.
        if new_places and re.fullmatch("|".join(map(re.escape, new_places)) + r"[的]?", core):
            swapped = prev
            for old in sorted(set(old_places), key=len, reverse=True):
                swapped = swapped.replace(old, "\0")
            swapped = re.sub(r"\0+", new_places[0], swapped) if "\0" in swapped else new_places[0] + swapped
            # Years and five-year periods belonged to the other place's document.
            swapped = re.sub(r"(?:(?:19|20)\d{2}年(?:底|前)?|十[一二三四五]五(?:期间|时期)?)", "", swapped)
            return swapped
        # "那外观设计呢？" after a question on 发明专利: swap one entity for another of its kind.
        bare = re.sub(r"^(?:搞|是|要是|如果是|换成|对于)", "", core).removesuffix("的")
        for kind in _ENTITY_KINDS:
            new = next((e for e in sorted(kind, key=len, reverse=True) if bare == e), None)
            old = next((e for e in sorted(kind, key=len, reverse=True) if e in prev), None)
            if new and old and new != old:
                if old.endswith("专利") and new in _PATENT_KINDS:
                    new = _PATENT_KINDS[new]
                return prev.replace(old, new, 1)
        # Otherwise: the previous question's subject, then this question.
        context = _QUESTION_TAIL.sub("", prev).rstrip("，,的了要")
        # "报酬呢？没约定的话怎么给？" after a question on 奖金: the subject with the entity swapped,
        # then the new question.
        lead = re.match(r"^(?:搞|是|要是|如果是|换成|对于)?(.{2,8}?)呢[？?，,]+(.+)$", body)
        if lead:
            for kind in _ENTITY_KINDS:
                new = lead.group(1) if lead.group(1) in kind else None
                old = next((e for e in sorted(kind, key=len, reverse=True) if e in context), None)
                if new and old and new != old:
                    subject = re.sub(r"(?:要|需要|应当|应该|得|能|可以)?(?:在|去|到|向)?$", "", context)
                    return f"{subject.replace(old, new, 1)}，{lead.group(2)}"
        pronoun_target = next((e for kind in _ENTITY_KINDS for e in sorted(kind, key=len, reverse=True) if e in prev),
                              None) or context
        body = _PRONOUN.sub(pronoun_target, body)
        if core != body and body.endswith(("呢？", "呢?", "呢")):
            body = core + "？"
        return f"{context}，{body}" if context and context not in body else body

    # --- all together ---

    def read(self, question: str, history: Sequence[dict] = ()) -> Understanding:
        typed = _clean(question)
        keep = self._index_characters()
        text = simplified(typed, keep)
        history = [{**turn, "content": simplified(turn.get("content") or "", keep)} if isinstance(turn, dict)
                   else turn for turn in history]
        rewritten = False
        query = text
        if self.is_followup(text, history):
            query = self.rewrite(text, self.standalone_history(history))
            rewritten = query != text
        expanded: tuple[Expansion, ...] = ()
        if self.abbreviations is not None:
            query, expanded = self.abbreviations.expand(query, keep=tuple(self.places(query)))
        places = self.places(query)
        region_docs: set[str] = set()
        exact: set[str] = set()
        for p in places:
            region_docs |= self._place_names.get(p, set())
            exact |= self._exact_names.get(p, set())
        # A place no document covers, also beside one that is (长沙雨花区: only 芙蓉区 of 长沙 is covered).
        unknown = self.foreign_place(re.sub("|".join(map(re.escape, places)), "，", query) if places else query)
        articles = self.articles(query)
        domains = self.domains(query)
        # "湖北和荆门高新区对…怎么要求的": two places named for themselves are both answered.
        named_together = len(exact) >= 2 and bool(places) and bool(re.search(
            "(?:{0})(?:和|与|跟|及|、|同)(?:{0})".format("|".join(map(re.escape, places))), query))
        multi = bool(_MULTI.search(query)) or named_together
        quoted = tuple(dict.fromkeys(q for q in _QUOTED.findall(query) if len(q) >= 2))
        ordinal = None
        if (m := _ORDINAL.search(query)) is not None:
            n = int(m.group(1)) if m.group(1).isdigit() else cn_to_int(m.group(1))
            ordinal = (n, m.group(2)) if n > 0 else None
        return Understanding(
            question=question, query=query, rewritten=rewritten, places=tuple(dict.fromkeys(places)),
            region_docs=tuple(sorted(region_docs)), exact_region_docs=tuple(sorted(exact)),
            unknown_place=unknown, doc_ids=tuple(self.named_docs(query)), articles=tuple(articles),
            years=self.years(query), intent=self.intent(query), multi=multi, domains=domains,
            quoted=quoted, ordinal=ordinal, expanded=expanded, traditional=text != typed)

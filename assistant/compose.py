"""Extractive answers: the best sentences of the best clauses, quoted exactly, with [n] markers.

No model writes anything here: every sentence of an answer is a sentence of a
clause, so figures, dates and amounts are exactly the document's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.asks import MONEY, asked_kind, asked_unit, content_query, states_asked, states_asked_value, states_value
from assistant.references import cited_numbers, paragraph_spans, referred
from assistant.understanding import ASKS_LEAD, Understanding
from corpus.metadata import LAW_KINDS
from corpus.numerals import cn_to_int, int_to_cn
from corpus.types import Citation, Hit
from index.text import colloquial_matches, tokenize

_SENTENCE = re.compile(r"[^。；;！!？?\n]+[。；;！!？?]?")
# In a law's article a "；" joins the parts of one rule (a fine and its alternative,
# a right and its exception): only full stops end a sentence there.
_LEGAL_SENTENCE = re.compile(r"[^。！!？?\n]+[。！!？?]?")
_FIGURE = re.compile(r"\d|[一二三四五六七八九十百千万两]+(?:年|日|个月|倍|件|家|项|名|元|万元|亿元|%)")
_INTENT_WORDS = {
    "subsidy": re.compile(r"奖励|资金|补贴|补助|资助|贴息|补偿|扶持|专项|经费|报酬|奖金"),
    "procedure": re.compile(r"\d{4}年\d{1,2}月|阶段|申请|提交|应当|期限|日内|之日起|程序|办理|负责|牵头"),
    "definition": re.compile(r"是指|指的是|所称|包括"),
    "goal": _FIGURE,
    "amount": MONEY,
}
# Words of a question that say what kind of answer is wanted, not what it is about.
_GENERIC = {"目标", "多少", "要求", "规定", "标准", "具体", "情况", "内容", "方面", "问题", "有关", "相关", "这边", "一下",
            "到底", "主要", "一共", "总共", "每年", "今年", "明年", "哪些", "什么", "可以", "能够", "需要", "应该",
            "知识", "产权", "知识产权", "企业", "公司", "我们", "你们", "政府", "年"}


@dataclass(frozen=True)
class Picked:
    clause_rank: int
    position: int
    sentence: str
    hit: Hit
    cited: tuple[Hit, ...] = ()  # the articles of its own law the sentence cites by number (assistant/references.py)


SPREAD_SHARE = 0.5  # … whose score is at least this share of the best one's (scores are 0..1 per question)
SPREAD_DEPTH = 8  # a policy question without a place: the documents among this many best clauses answer
_EVERY_PLACE = re.compile(r"各地|哪些地方|哪几个地方|哪些地区|哪些城市|哪些市")
# A question over several documents: up to this many sentences of each one's clause (the one best sentence
# of a plan's item often says what is done, its next one the figure: "每年选择3家重点企业实施企业专利导航").
PER_SOURCE = 2
WHOLE_ARTICLE_CHARS = 400  # a law's article up to this length is quoted whole (one chunk at most)
_ITEM_LINE = re.compile(r"^(?:[(（][一二三四五六七八九十\d]+[)）]|\d+[.、．]|[①-⑳])")


def sentences(text: str, *, legal: bool = False) -> list[tuple[int, str]]:
    """(offset, sentence) pairs of a clause. Table rows are sentences of their own; a sentence
    that announces a list ("有下列情形之一的：") keeps its items, or it would say nothing.
    ``legal``: the clause is a law's article, whose sentences end only at full stops."""
    pattern = _LEGAL_SENTENCE if legal else _SENTENCE
    raw = [(m.start(), m.group(0).strip()) for m in pattern.finditer(text) if m.group(0).strip()]
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(raw):
        off, sent = raw[i]
        if sent.endswith(("：", ":")):
            items = []
            j = i + 1
            while j < len(raw) and len(items) < 8:
                line_start = text.rfind("\n", 0, raw[j][0]) + 1
                piece = text[line_start:raw[j][0]].strip()
                if not (_ITEM_LINE.match(raw[j][1]) or (piece and _ITEM_LINE.match(piece))):
                    break
                items.append(raw[j][1])
                j += 1
            if items:
                out.append((off, sent + "".join(items)))
                i = j
                continue
        out.append((off, sent))
        i += 1
    return out


def content_tokens(u: Understanding) -> set[str]:
    """Tokens that say what the question is about (not places, years, question words, nor the 没有 of
    有没有: "有没有技术调查官" is no less about a clause on 技术调查官 for asking so)."""
    places = set(u.places)
    tokens = set(tokenize(content_query(u.query)))
    drop = {t for t in tokens if t in _GENERIC or any(t in p or p in t for p in places) or t.isdigit()
            or len(t) < 2 or re.fullmatch(r"\d+年?", t)}
    return tokens - drop


# Questions about the document itself, and what the answering line looks like.
_ASKS_ABOUT_DOCUMENT = [
    (re.compile(r"文号"), re.compile(r"〔\d{4}〕|\[\d{4}\]|［\d{4}］")),
    (re.compile(r"哪天|什么时候印发|印发日期|发布日期|哪天发|何时印发|何时发布"), re.compile(r"^\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日$|^\d{4}-\d{2}-\d{2}$")),
    (re.compile(r"哪个部门|哪个单位|谁发的|发文机关|哪个机关"), re.compile(r"(?:办公室|局|政府|委员会|厅)$")),
]
# Of those, the ones only the document's notice (its 文号 and date lines) can answer.
_NOTICE_FACTS = _ASKS_ABOUT_DOCUMENT[:2]


_DEFINED_TERM = re.compile(r"([^，,。；：:“”]{2,20})[”]?[，,]?(?:是指|指的是)")
_ASKS_QUANTITY = re.compile(r"多少|几|多久|多长|上限|最高|最多|最少|至少|比例|倍")
_QUANTITY = re.compile(r"\d[\d.]*\s*(?:%|件|家|个|项|名|亿|万|元|次|倍|年|月|日|天)|"
                       r"[一二三四五六七八九十百千万两]+(?:倍|年|个月|日|元|万元|亿元|件|家)")


def _sentence_score(sentence: str, wanted: set[str], intent: str, query: str = "") -> float:
    present = {t for t in wanted if t in sentence.lower()}
    score = sum(len(t) for t in present)
    pattern = _INTENT_WORDS.get(intent)
    if pattern and pattern.search(sentence):
        score += 2.0
    # "证明商标是什么意思": the sentence that defines that very term ("本法所称证明商标，是指…").
    if intent == "definition":
        defined = _DEFINED_TERM.search(sentence)
        if defined and any(t in defined.group(1) for t in wanted if len(t) >= 2):
            score += 10.0
    if "牵头" in sentence and ASKS_LEAD.search(query):
        score += 5.0
    for asks, answers in _ASKS_ABOUT_DOCUMENT:
        if asks.search(query) and answers.search(sentence):
            score += 50.0  # the line that answers a question about the document itself comes first
    # A question after a quantity ("至少发多少奖金", "保护多久") wants the sentence that states one.
    if _ASKS_QUANTITY.search(query) and _QUANTITY.search(sentence):
        score += 3.0
    return score


def clause_hits(hits: Sequence[Hit]) -> list[Hit]:
    """The best hit of each clause, in rank order."""
    seen, out = set(), []
    for h in hits:
        if h.chunk.clause_id not in seen:
            seen.add(h.chunk.clause_id)
            out.append(h)
    return out


def pick_sentences(u: Understanding, hits: Sequence[Hit], *, max_sentences: int = 4) -> list[Picked]:
    """Sentences that answer: up to three from the best clause, or for a question over several documents
    up to ``PER_SOURCE`` from each document's best clause."""
    wanted = content_tokens(u)
    clauses = _notice_first(u, clause_hits(hits))
    if not clauses:
        return []
    if u.articles and clauses[0].chunk.clause_id and not wanted - set(tokenize(" ".join(a.law or "" for a in u.articles))):
        # "商标法第63条讲什么": the article itself, from its beginning.
        h = clauses[0]
        return [Picked(0, off, s, h) for off, s in sentences(h.chunk.text, legal=_legal(h))[:3]]
    spread = _policies_without_place(u, clauses)
    sources = _several_sources(u, clauses, spread, max_sentences) if u.multi or spread else clauses[:1]
    per_clause = PER_SOURCE if len(sources) > 1 else 3  # only one document answers after all: answer as for one
    if len(sources) == 1 and _legal(sources[0]) and len(sources[0].chunk.text) <= WHOLE_ARTICLE_CHARS:
        return _whole_article(u, sources[0], hits, clauses, wanted, max_sentences)
    chosen: list[Picked] = []
    valued: list[tuple] = []  # the best clause's sentences that state a value of the kind asked
    for rank, h in enumerate(sources):
        mine, body = _clause_sentences(u, rank, h, hits, wanted, per_clause)
        chosen += mine
        valued += [x for x in body if rank == 0 and states_asked_value(u.query, x[2])]
    chosen.sort(key=lambda p: (p.clause_rank, p.position))
    if len(sources) == 1 and _legal(sources[0]):
        kept = _with_value(chosen[:max_sentences - 1], valued)
        kept += _implementing_detail(u, sources[0], clauses, wanted) + _statute_behind(u, sources[0], clauses, wanted)
        return _value_elsewhere(u, sources[0], clauses, kept) + kept
    return chosen[:max(max_sentences, per_clause * len(sources)) if len(sources) > 1 else max_sentences]


def _several_sources(u: Understanding, clauses: Sequence[Hit], spread: Sequence[str], max_sentences: int) -> list[Hit]:
    """The clauses a question over several documents is answered from: one per place named (or per
    policy answering a question without a place), per legal domain named, or the strong ones."""
    sources, docs = [], set()
    named = set(u.exact_region_docs) if len(set(u.exact_region_docs)) >= 2 else set(spread)
    # "各地…" asks about every place: as many strong sources as an answer holds.
    limit = min(max_sentences, len(named)) if named else (max_sentences if _EVERY_PLACE.search(u.query) else 3)
    # "专利和商标…分别": every legal domain named gets one source, from its own laws.
    domains = [set(d) for _, d in u.domains] if not named and len(u.domains) >= 2 else []
    if domains:
        limit = min(max_sentences, len(domains))
    # A term the user quoted ("“蓝天”整治哪些文件里有提") must be in every source, if any has it.
    quoted = [q for q in u.quoted if any(q in h.chunk.text for h in clauses)]
    for h in clauses:
        if quoted and not all(q in h.chunk.text for q in quoted):
            continue
        # Every place the question names gets its own source; otherwise only strong ones.
        strong = not sources or h.score >= 0.75 * sources[0].score
        if domains:
            wanted_here = [i for i, d in enumerate(domains) if h.chunk.doc_id in d]
            if not wanted_here:
                continue
            domains[wanted_here[0]] = set()
            sources.append(h)
        elif h.chunk.doc_id not in docs and ((h.chunk.doc_id in named) if named else strong):
            docs.add(h.chunk.doc_id)
            sources.append(h)
        if len(sources) == limit:
            break
    return sources


def _clause_sentences(u: Understanding, rank: int, h: Hit, hits: Sequence[Hit], wanted: set[str],
                      per_clause: int) -> tuple[list[Picked], list[tuple]]:
    """(the best sentences of one source clause, every body sentence of it as (score, position,
    sentence, hit)). A long clause is split into chunks; its other retrieved chunks are part of it too
    (a target table's rows come in several chunks of one clause)."""
    pieces = [h] + [x for x in hits if x.chunk.clause_id == h.chunk.clause_id and x is not h]
    scored = [(_sentence_score(s, wanted, u.intent, u.query), x.chunk.start + off, s, x)
              for x in pieces for off, s in sentences(x.chunk.text, legal=_legal(x))
              if not _is_caption(x.chunk.text, off, s)]
    body = [x for x in scored if not _is_heading_line(x[2], x[3])] or scored
    best = sorted(body, key=lambda x: (-x[0], x[1]))[:per_clause]
    top = best[0][0] if best else 0
    mine = [Picked(rank, off, s, x) for score, off, s, x in best if score > 0 and score >= 0.5 * top]
    if not mine and best:
        mine.append(Picked(rank, best[0][1], best[0][2], best[0][3]))
    if per_clause > 1 and mine and all(_is_first_line(p) for p in mine):
        # A clause's heading line ("(二)重点推进阶段(2018年1月—2019年7月)") says when, not what:
        # its best body sentence goes with it.
        rest = sorted((x for x in body if x[1] not in {p.position for p in mine}), key=lambda x: (-x[0], x[1]))
        if rest:
            mine.append(Picked(rank, rest[0][1], rest[0][2], rest[0][3]))
    return mine, body


def _whole_article(u: Understanding, h: Hit, hits: Sequence[Hit], clauses: Sequence[Hit], wanted: set[str],
                   max_sentences: int) -> list[Picked]:
    """A short article is quoted whole: its 款 qualify each other (a rule and its exception, a minimum
    and the case it applies to), and a lawyer reads them together."""
    detail = _implementing_detail(u, h, clauses, wanted) + _statute_behind(u, h, clauses, wanted)
    whole = [Picked(0, off, s, h) for off, s in sentences(h.chunk.text, legal=True)]
    kept = whole[:max_sentences + 1 - len(detail)]
    # A value asked for is quoted even when it stands in a later sentence (the figure check reads only
    # what is quoted): "…判决给予权利人五百万元以下的赔偿" is 反不正当竞争法第十七条's sixth. Or in the
    # article's next chunk, when it was retrieved too: 计算机软件保护条例第二十四条's fine.
    rest = whole[len(kept):] + [Picked(0, x.chunk.start - h.chunk.start + off, s, x)
                                for x in hits if x.chunk.clause_id == h.chunk.clause_id and x.chunk.start > h.chunk.start
                                for off, s in sentences(x.chunk.text, legal=True)]
    kept += [p for p in rest if states_asked_value(u.query, p.sentence)][:1]
    return _value_elsewhere(u, h, clauses, kept + detail) + kept + detail


def _with_value(kept: list[Picked], valued: Sequence[tuple]) -> list[Picked]:
    """A long article's sentence stating the value asked for is quoted even when its words score lower
    (the figure check reads only what is quoted): 计算机软件保护条例第二十四条 lists the infringing acts,
    and its fine, "可以并处每件100元…的罚款", is its last paragraph."""
    if not valued or any(p.position == x[1] for p in kept for x in valued):
        return kept
    _, off, sentence, hit = max(valued, key=lambda x: (x[0], -x[1]))
    return sorted(kept + [Picked(0, off, sentence, hit)], key=lambda p: p.position)


def _value_elsewhere(u: Understanding, article: Hit, clauses: Sequence[Hit], kept: Sequence[Picked]) -> list[Picked]:
    """"泄露商业秘密罚多少": one article of a law says what the act is (反不正当竞争法第九条), another
    states its fine and cites it by number ("违反本法第九条规定侵犯商业秘密的，…处十万元以上一百万元以下的
    罚款"). When the question asks a value that no quoted sentence states, the first sentence that states
    one and cites this article, of a retrieved article of the same law (the clause tree, not a word list);
    it answers what was asked, so it is quoted first. The same for a sanction asked of the act
    ("侵犯商业秘密怎么处罚": asks.states_asked)."""
    if any(states_asked(u.query, p.sentence) is not False for p in kept):  # None: it asks for neither
        return []
    for h in clauses[1:10]:
        if h.chunk.doc_id == article.chunk.doc_id and h.chunk.clause_id != article.chunk.clause_id:
            found = value_citing(u.query, h.chunk.text, article.chunk.clause_id)
            if found:
                return [Picked(1, h.chunk.start + found[0], found[1], h)]
    return []


def value_citing(query: str, text: str, clause_id: str) -> tuple[int, str] | None:
    """(offset, sentence): the first sentence of a law's article ``text`` that cites the article
    ``clause_id`` of the same law by number and states what ``query`` asks for: a value of its kind, or
    a sanction (asks.states_asked)."""
    number = clause_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1] if clause_id else ""
    for off, sentence in sentences(text, legal=True):
        if number and number in cited_numbers(sentence) and states_asked(query, sentence):
            return off, sentence
    return None


def _implementing_detail(u: Understanding, statute: Hit, clauses: Sequence[Hit], wanted: set[str]) -> list[Picked]:
    """"要交什么材料", "什么时候提": the law says what, its implementing rule says how and when.
    The best sentence of a retrieved regulation article that cites ``statute`` (or nothing)."""
    if not _DETAIL.search(u.query):
        return []
    rules = implementing_rules(statute, clauses)
    # "审查拖太久了，期限补偿" is about 第四十二条's second paragraph: an article implementing
    # only its third (新药) is not the detail asked for.
    paragraph = _asked_paragraph(statute.chunk.text, wanted)
    if paragraph:
        cited = _cited_article(statute)
        rules = [r for r in rules if paragraph in (_cited_paragraphs(r.chunk.text, cited) or {paragraph})]
    # The citing article whose best sentence fits the question best (rank order breaks ties).
    scored = [(_sentence_score(s, wanted, u.intent, u.query) + (10.0 if _states_needed(u, s) else 0.0),
               -rank, off, s, rule)
              for rank, rule in enumerate(rules)
              for off, s in sentences(rule.chunk.text, legal=True)]
    if not scored:
        return []
    _, _, off, sentence, rule = max(scored, key=lambda x: (x[0], x[1], -x[2]))
    return [Picked(1, rule.chunk.start + off, sentence, rule)]


def _statute_behind(u: Understanding, rule: Hit, clauses: Sequence[Hit], wanted: set[str]) -> list[Picked]:
    """A regulation's article answers first and cites the law's article it implements ("有商标法第四十九条
    规定的…情形的"): when that article was retrieved too and says something the question asks that the
    rule does not (a word of the question the rule lacks), its best such sentence is quoted after the rule."""
    if rule.kind == "法律" or not _legal(rule) or states_asked_value(u.query, rule.chunk.text):
        return []
    laws = [h for h in clauses[1:DEPTH_BEHIND] if h.kind == "法律" and _cited_article(h)
            and _cited_article(h) in rule.chunk.text]
    if not laws:
        return []
    law, missing = laws[0], {t for t in wanted if t not in rule.chunk.text}
    paragraphs = _cited_paragraphs(rule.chunk.text, _cited_article(law))
    scored = [(_sentence_score(s, wanted, u.intent, u.query), -off, off, s)
              for n, paragraph in enumerate(paragraph_spans(law.chunk.text), 1) if not paragraphs or n in paragraphs
              for off, s in sentences(law.chunk.text, legal=True) if paragraph[0] <= off < paragraph[1]
              and any(t in s for t in missing)]
    if not scored:
        return []
    _, _, off, sentence = max(scored)
    return [Picked(1, law.chunk.start + off, sentence, law)]


DEPTH_BEHIND = 10

# Questions after the practical details an implementing regulation gives (papers, deadlines, who decides).
_DETAIL = re.compile(r"材料|文件|什么时候|何时|多长时间|几天|几日|多少天|期限内|怎么提|怎么办|如何办理|具体怎么|算不算|是否属于")


def implementing_rules(statute: Hit, clauses: Sequence[Hit]) -> list[Hit]:
    """Among the first ten retrieved clauses, the regulations' articles that implement ``statute``
    by citing it ("依照专利法第四十五条的规定…", "专利法第六条所称…"), in rank order."""
    cited = _cited_article(statute)
    if not cited:
        return []
    return [h for h in clauses[:10] if h.kind != "法律" and _legal(h) and h.chunk.doc_id != statute.chunk.doc_id
            and cited in h.chunk.text]


def _cited_article(statute: Hit) -> str:
    """How a regulation cites ``statute``'s article ("专利法第四十五条"); "" for no law article."""
    m = re.search(r"第(\d+)条$", statute.chunk.clause_id or "")
    if statute.kind != "法律" or not m:
        return ""
    return f"{statute.title.removeprefix('中华人民共和国')}第{int_to_cn(int(m.group(1)))}条"


def _cited_paragraphs(text: str, cited: str) -> set[int]:
    """The paragraphs (款) of ``cited`` that ``text`` names: "专利法第四十二条第二款、第三款" → {2, 3}."""
    out: set[int] = set()
    for m in re.finditer(re.escape(cited) + r"((?:(?:第[一二三四五六七八九十]+款)[、和及或]?)+)", text):
        out.update(cn_to_int(n) for n in re.findall(r"第([一二三四五六七八九十]+)款", m.group(1)))
    return out


def _asked_paragraph(text: str, wanted: set[str]) -> int:
    """The paragraph (款, 1-based) of a law article that holds clearly more of the question's
    words than any other; 0 for a one-paragraph article or no clear winner."""
    paragraphs = [text[a:b] for a, b in paragraph_spans(text)]
    if len(paragraphs) < 2:
        return 0
    found = [sum(len(t) for t in wanted if t in p) for p in paragraphs]
    ranked = sorted(found, reverse=True)
    return found.index(ranked[0]) + 1 if ranked[0] > ranked[1] else 0


def _legal(hit: Hit) -> bool:
    return hit.kind in LAW_KINDS


def _notice_first(u: Understanding, clauses: list[Hit], depth: int = 5) -> list[Hit]:
    """A question about the document itself ("…的文号是多少", "哪天印发的") is answered from the
    document's notice when the notice is among the first document's top clauses and holds the line
    asked for: another clause that only shares the title's words does not answer it."""
    if not clauses:
        return clauses
    doc = clauses[0].chunk.doc_id
    for asks, answers in _NOTICE_FACTS:
        if not asks.search(u.query):
            continue
        for i, h in enumerate(clauses[:depth]):
            if (h.chunk.doc_id == doc and h.chunk.clause_id.endswith(":通知")
                    and any(answers.search(s) for _, s in sentences(h.chunk.text))):
                return [h] + clauses[:i] + clauses[i + 1:]
    return clauses


def _policies_without_place(u: Understanding, clauses: Sequence[Hit], depth: int = SPREAD_DEPTH) -> list[str]:
    """A policy question that names no place ("企业申请专利有没有资助") is answered by every policy
    among the best clauses, each under its place's name: the user did not say which place."""
    if u.places or u.doc_ids or u.articles or u.multi or not clauses or _legal(clauses[0]):
        return []
    top = clauses[0].score
    docs = list(dict.fromkeys(h.chunk.doc_id for h in clauses[:depth]
                              if not _legal(h) and h.score >= SPREAD_SHARE * top))
    return docs if len(docs) >= 2 else []


def own_place_first(u: Understanding, hits: Sequence[Hit]) -> list[Hit]:
    """A question naming a place that has documents of its own (湖北 → the province's work plan) is
    answered from them first; the documents of places inside it (荆门高新区) come after. The search
    keeps them all (a user may mean either); the answer must not quote a neighbouring place's figure."""
    own = set(u.exact_region_docs)
    if u.multi or not own or not set(u.region_docs) - own or not any(h.chunk.doc_id in own for h in hits):
        return list(hits)
    return [h for h in hits if h.chunk.doc_id in own] + [h for h in hits if h.chunk.doc_id not in own]


def best_sentence_score(text: str, wanted: set[str], u: Understanding) -> float:
    """Score of a chunk's best sentence for a question (see ``_sentence_score``)."""
    return max((_sentence_score(s, wanted, u.intent, u.query) for _, s in sentences(text)), default=0.0)


def _is_first_line(p: Picked) -> bool:
    """The picked sentence is the heading line a clause starts with (and not all of it)."""
    text = p.hit.chunk.text
    first = text.split("\n", 1)[0].strip()
    return p.position == p.hit.chunk.start and p.sentence == first and len(text) > len(first) + 5 \
        and p.hit.chunk.clause_id.rsplit(":", 1)[-1] not in ("前言", "通知")


def _is_heading_line(sentence: str, hit: Hit) -> bool:
    """A bare heading ("9. 深化知识产权金融服务"): no answer on its own. Headings that carry
    dates or figures ("(一)基础搭建阶段(2017年6月—2018年12月)") are kept."""
    heading = hit.path[-1] if hit.path else ""
    return (bool(heading) and sentence.rstrip("。") == heading.rstrip("。") and len(hit.chunk.text) > len(sentence) + 5
            and not re.search(r"\d{4}\s*年|\d+\s*(?:月|日|件|家|%|元)", sentence))


_PUNCTUATION = re.compile(r"[，,。；;：:！!？?、]")


def _is_caption(text: str, offset: int, sentence: str) -> bool:
    """A table's caption ("“十三五”期间专利事业发展主要指标一"): a line of its own, without
    punctuation, followed by a table row. It names the table; the rows say what it holds."""
    if _PUNCTUATION.search(sentence) or (offset and text[offset - 1] != "\n"):
        return False
    end = text.find("\n", offset)
    following = text[end + 1:].split("\n", 1)[0] if end >= 0 else ""
    return " | " in following


_CELL = re.compile(r"^(?P<head>[^:：|]{1,24})[:：]\s*(?P<value>.+)$")


def table_row_text(line: str) -> str:
    """A table row as the cleaner flattened it ("每万人口发明专利拥有量(件/万人) | 2015年: 0.64 |
    2020年: 8.0以上 | 预期性") as people read it: "每万人口发明专利拥有量(件/万人)：2015年 0.64，2020年
    8.0以上（预期性）". Every value stays as the source writes it; other lines are returned unchanged."""
    cells = [c.strip() for c in line.split(" | ")]
    if len(cells) < 2 or not all(cells):
        return line
    pairs, notes = [], []
    for cell in cells[1:]:
        m = _CELL.match(cell)
        (pairs.append(f"{m['head'].strip()} {m['value'].strip()}") if m else notes.append(cell))
    text = cells[0] + ("：" + "，".join(pairs) if pairs else "")
    return text + (f"（{'，'.join(notes)}）" if notes else "")


def compose(u: Understanding, picked: Sequence[Picked]) -> tuple[str, list[Citation]]:
    """Answer text with [n] markers, and the citations behind it."""
    citations: list[Citation] = []
    numbers: dict[str, int] = {}
    quotes: dict[str, list[str]] = {}
    for p in picked:
        cid = p.hit.chunk.clause_id
        if cid not in numbers:
            numbers[cid] = len(numbers) + 1
        quotes.setdefault(cid, []).append(table_row_text(p.sentence))
    chunks: dict[str, dict[int, Hit]] = {}
    for p in picked:
        chunks.setdefault(p.hit.chunk.clause_id, {})[p.hit.chunk.start] = p.hit
    for cid, n in numbers.items():
        parts_of = [chunks[cid][start] for start in sorted(chunks[cid])]
        h = parts_of[0]
        citations.append(Citation(
            n=n, clause_id=cid, doc_id=h.chunk.doc_id, title=h.title, doc_number=h.doc_number, path=h.path,
            citation=h.citation, quote="……".join(quotes[cid]), text="\n".join(x.chunk.text for x in parts_of),
            refers=referred([p for p in picked if p.hit.chunk.clause_id == cid], n, set(numbers))))
    parts = []
    last_doc = None
    several_docs = len({p.hit.chunk.doc_id for p in picked}) > 1
    # "荆门…" answered from 荆门高新区's document: the answer says whose figures they are.
    elsewhere = bool(u.places) and not u.exact_region_docs and not several_docs
    for p in picked:
        n = numbers[p.hit.chunk.clause_id]
        said = table_row_text(p.sentence)
        sentence = said if re.search(r"[。；;！!？?]$", said) else said + "。"
        # Over several documents each part names its source (the place for a policy).
        lead = f"{_source_name(p.hit)}：" if (several_docs or elsewhere) and p.hit.chunk.doc_id != last_doc else ""
        parts.append(f"{lead}{sentence[:-1]}[{n}]{sentence[-1]}")
        last_doc = p.hit.chunk.doc_id
    return ("\n" if several_docs else "").join(parts), citations


def _source_name(hit: Hit) -> str:
    if hit.region and hit.region != ("全国",):
        return hit.region[-1]
    return f"《{hit.title}》"


def related(hits: Sequence[Hit], limit: int = 3) -> list[Citation]:
    """Nearest clauses, shown as 可能相关 when the assistant does not answer."""
    out = []
    for i, h in enumerate(clause_hits(hits)[:limit], start=1):
        first = [s for _, s in sentences(h.chunk.text)]
        if len(first) > 1 and _is_heading_line(first[0], h):
            first = first[1:]
        out.append(Citation(n=i, clause_id=h.chunk.clause_id, doc_id=h.chunk.doc_id, title=h.title,
                            doc_number=h.doc_number, path=h.path, citation=h.citation,
                            quote=first[0] if first else h.chunk.text[:80], text=h.chunk.text))
    return out


def _states_needed(u: Understanding, sentence: str) -> bool:
    """``sentence`` states the kind of value the question asks for (a period for "什么时候提" …; the
    kinds are assistant/data/answer_types.tsv)."""
    return states_value(asked_kind(u.query), sentence, asked_unit(u.query))


def has_figure(text: str) -> bool:
    return bool(re.search(r"\d", text) or _FIGURE.search(text))

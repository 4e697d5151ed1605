"""Extractive answers: the best sentences of the best clauses, quoted exactly, with [n] markers.

No model writes anything here: every sentence of an answer is a sentence of a
clause, so figures, dates and amounts are exactly the document's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.understanding import Understanding
from corpus.types import Citation, Hit
from index.text import tokenize

_SENTENCE = re.compile(r"[^。；;！!？?\n]+[。；;！!？?]?")
_FIGURE = re.compile(r"\d|[一二三四五六七八九十百千万两]+(?:年|日|个月|倍|件|家|项|名|元|万元|亿元|%)")
_MONEY = re.compile(r"\d[\d.,]*\s*(?:万|亿)?元|[一二三四五六七八九十百千万两]+(?:万|亿)?元")
_INTENT_WORDS = {
    "subsidy": re.compile(r"奖励|资金|补贴|补助|资助|贴息|补偿|扶持|专项|经费|报酬|奖金"),
    "procedure": re.compile(r"\d{4}年\d{1,2}月|阶段|申请|提交|应当|期限|日内|之日起|程序|办理|负责|牵头"),
    "definition": re.compile(r"是指|指的是|所称|包括"),
    "goal": _FIGURE,
    "amount": _MONEY,
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


def sentences(text: str) -> list[tuple[int, str]]:
    """(offset, sentence) pairs of a clause; table rows and list lines are sentences of their own."""
    return [(m.start(), m.group(0).strip()) for m in _SENTENCE.finditer(text) if m.group(0).strip()]


def content_tokens(u: Understanding) -> set[str]:
    """Tokens that say what the question is about (not places, years or question words)."""
    places = set(u.places)
    tokens = set(tokenize(u.query))
    drop = {t for t in tokens if t in _GENERIC or any(t in p or p in t for p in places) or t.isdigit()
            or len(t) < 2 or re.fullmatch(r"\d+年?", t)}
    return tokens - drop


def _sentence_score(sentence: str, wanted: set[str], intent: str) -> float:
    present = {t for t in wanted if t in sentence.lower()}
    score = sum(len(t) for t in present)
    pattern = _INTENT_WORDS.get(intent)
    if pattern and pattern.search(sentence):
        score += 2.0
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
    """Sentences that answer: up to three from the best clause, and for questions over
    several documents the best sentence of each other document's best clause."""
    wanted = content_tokens(u)
    clauses = clause_hits(hits)
    if not clauses:
        return []
    chosen: list[Picked] = []
    if u.multi:
        sources, docs = [], set()
        for h in clauses:
            if h.chunk.doc_id not in docs and (not sources or h.score >= 0.6 * sources[0].score):
                docs.add(h.chunk.doc_id)
                sources.append(h)
            if len(sources) == max_sentences:
                break
        per_clause = 1
    else:
        sources, per_clause = clauses[:1], 3
    for rank, h in enumerate(sources):
        scored = [(_sentence_score(s, wanted, u.intent), off, s) for off, s in sentences(h.chunk.text)]
        body = [x for x in scored if not _is_heading_line(x[2], h)] or scored
        best = sorted(body, key=lambda x: (-x[0], x[1]))[:per_clause]
        top = best[0][0] if best else 0
        for score, off, s in best:
            if score > 0 and score >= 0.5 * top:
                chosen.append(Picked(rank, off, s, h))
        if not any(p.clause_rank == rank for p in chosen) and best:
            chosen.append(Picked(rank, best[0][1], best[0][2], h))
    chosen.sort(key=lambda p: (p.clause_rank, p.position))
    return chosen[:max_sentences]


def _is_heading_line(sentence: str, hit: Hit) -> bool:
    heading = hit.path[-1] if hit.path else ""
    return bool(heading) and sentence.rstrip("。") == heading.rstrip("。") and len(hit.chunk.text) > len(sentence) + 5


def coverage(u: Understanding, text: str) -> float:
    """Share of the question's content tokens (weighted by length) found in ``text``."""
    wanted = content_tokens(u)
    if not wanted:
        return 1.0
    found = sum(len(t) for t in wanted if t in text.lower())
    return found / sum(len(t) for t in wanted)


def compose(u: Understanding, picked: Sequence[Picked]) -> tuple[str, list[Citation]]:
    """Answer text with [n] markers, and the citations behind it."""
    citations: list[Citation] = []
    numbers: dict[str, int] = {}
    quotes: dict[str, list[str]] = {}
    for p in picked:
        cid = p.hit.chunk.clause_id
        if cid not in numbers:
            numbers[cid] = len(numbers) + 1
        quotes.setdefault(cid, []).append(p.sentence)
    by_clause = {p.hit.chunk.clause_id: p.hit for p in picked}
    for cid, n in numbers.items():
        h = by_clause[cid]
        citations.append(Citation(
            n=n, clause_id=cid, doc_id=h.chunk.doc_id, title=h.title, doc_number=h.doc_number, path=h.path,
            citation=h.citation, quote="……".join(quotes[cid]), text=h.chunk.text))
    parts = []
    last_doc = None
    several_docs = len({p.hit.chunk.doc_id for p in picked}) > 1
    for p in picked:
        n = numbers[p.hit.chunk.clause_id]
        sentence = p.sentence if re.search(r"[。；;！!？?]$", p.sentence) else p.sentence + "。"
        # Over several documents each part names its source (the place for a policy).
        lead = f"{_source_name(p.hit)}：" if several_docs and p.hit.chunk.doc_id != last_doc else ""
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
        first = sentences(h.chunk.text)
        out.append(Citation(n=i, clause_id=h.chunk.clause_id, doc_id=h.chunk.doc_id, title=h.title,
                            doc_number=h.doc_number, path=h.path, citation=h.citation,
                            quote=first[0][1] if first else h.chunk.text[:80], text=h.chunk.text))
    return out


def has_money(text: str) -> bool:
    return bool(_MONEY.search(text))


def has_figure(text: str) -> bool:
    return bool(re.search(r"\d", text) or _FIGURE.search(text))

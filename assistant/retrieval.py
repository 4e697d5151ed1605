"""Retrieval as the assistant does it: the one path that the chat, the CLI and the eval share.

Steps: scope the search to the documents of the places or titles the question
names; look up clause references (专利法第四十二条) directly; take dense and
BM25 candidates, fuse their normalised scores; add small boosts for the
question's intent; spread the results over documents for "哪些地方" questions.
The settings below were tuned on eval/ (see docs/retrieval.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from assistant.understanding import ASKS_LEAD, QuestionReader, Understanding
from corpus.metadata import LAW_KINDS
from corpus.numerals import CN_NUMERAL_CHARS, cn_to_int
from corpus.types import Hit
from index.core import Filters, KnowledgeIndex
from index.text import expand_colloquial, tokenize

# A figure with its unit: what target questions want (a heading's "9." is no figure).
_FIGURE = re.compile(r"\d[\d.]*\s*(?:%|％|件|家|个|项|名|亿|万|元|次|倍|人|场|所|部|篇|以上|以下)")


@dataclass(frozen=True)
class RetrievalSettings:
    depth: int = 100  # candidates taken from each retriever
    dense_weight: float = 0.3  # share of the normalised dense score in the fused score (policies)
    exact_region_boost: float = 0.15  # the document whose own region is the place named
    figure_boost: float = 0.1  # questions after a target or amount: clauses that state figures
    subsidy_boost: float = 0.3  # questions after money or support: a policy's clauses that grant it (给予…奖励)
    heading_boost: float = 0.2  # the question names a clause by its heading ("那个工作推进期" → "2.工作推进(…)")
    route_boost: float = 0.2  # "怎么提异议": the clause saying who "可以…向…提出/申请" it
    lead_boost: float = 0.2  # "由谁牵头": the clause that names who leads (…牵头…)
    notice_boost: float = 0.3  # questions about 文号/印发: the notice clause
    notice_penalty: float = 0.2  # other questions: the notice clause goes down
    definition_boost: float = 0.15  # "什么是…": clauses that define ("…是指…", "本法所称…")
    expand_dense: bool = False  # also give the colloquial expansion to the vector search
    rerank_depth: int = 3  # rerank this many top chunks by their best-matching sentence (0: off)
    rerank_weight: float = 0.3
    statute_boost: float = 0.1  # a law (法律) before the regulations that implement it
    deadline_boost: float = 0.15  # "多长时间内申请扣留": the clause whose period binds that act ("3个工作日内…提出申请")
    kinds_boost: float = 0.3  # "需要满足哪些特性": the clause listing kinds of it ("新颖性、特异性、一致性和稳定性")
    owner_penalty: float = 0.15  # "想用别人的专利": clauses on what the right holder does (专利权人…声明) go down
    term_boost: float = 0.15  # "能保护多少年": the clause that states the term ("…的期限为二十年")
    ordinal_boost: float = 0.5  # "第二阶段": the clause numbered (二) whose heading names a 阶段
    domain_penalty: float = 0.15  # laws outside the legal domains the question names go down (外观设计 → 专利法 …)
    law_dense_weight: float | None = 0.7  # dense share for chunks of laws and regulations (None: dense_weight)
    article_score: float = 10.0  # a clause named by number ranks first
    scope_by_place: bool = True
    mode: str = "hybrid"  # dense | bm25 | hybrid


DEFAULT_SETTINGS = RetrievalSettings()
# A question after how long a right lasts, and the sentence that says it.
_ASKS_TERM = re.compile(r"(?:保护|有效|能用|管)[^，,。？?]{0,3}(?:多少年|多久|几年|多长|到什么时候|到哪年)|保护期|有效期")
_STATES_TERM = re.compile(r"(?:期限|有效期|保护期)为")
# "我们要在多长时间内申请扣留": the act a period is asked for, and a period followed by that act.
_ASKS_DEADLINE = re.compile(r"(?:多长时间|多久|几天|多少天|几个月|多少个?工作日)(?:之内|以内|内)?(?:要|得|必须|应当|能|可以)?"
                            r"([\u4e00-\u9fff]{2})")
_PERIOD = r"(?:\d+|[一二三四五六七八九十百两]+)\s*个?(?:工作日|日|天|月|年)(?:之内|以内|内)"
# "哪些特性": a list is asked for; its items name kinds of 特性, and in Chinese a kind of a thing
# ends with the thing's head character (新颖性, 稳定性 are 特性).
_ASKS_KINDS = re.compile(r"哪些([\u4e00-\u9fff]{2})")
# The asker uses someone else's right ("想用别人开放许可的专利"), and a clause about what the
# holder of a right does ("专利权人自愿…声明").
_OTHERS_RIGHT = re.compile(r"(?:用|使用|实施|许可)(?:别人|他人)|(?:别人|他人)的[^，,。？?]{0,8}(?:专利|商标|作品|品种)")
_HOLDER_ACTS = re.compile(rf"^(?:第[{CN_NUMERAL_CHARS}\d]+条\s*)?(?:专利权人|商标注册人|著作权人|品种权人|知识产权权利人|权利人)")
_GRANTS = re.compile(r"给予[^，,。；]{0,12}(?:奖励|资助|补贴|补助|贴息|支持|扶持)|(?:奖励|资助|补贴|补助)[^，,。；]{0,6}元|奖补")
# "怎么申请复审": the way in, which a law writes as "…可以…向…申请/提出/请求".
_HOW = re.compile(r"(?:怎么|怎样|如何)(?:在[^，,。？?]{0,8})?(申请|提出|提|办理|办|备案|登记|操作|请求|交|做)([^，,。？?！!]{0,6})")
_ROUTE = re.compile(r"可以[^。；]{0,40}向[^。；]{0,30}(?:申请|提出|请求)[^。；，,]{0,12}")
_DEFINES = re.compile(r"是指|所称|指的是|称为")
_DOCUMENT_QUESTION = re.compile(r"文号|印发|发文|哪个部门发|哪天发|什么时候发|发布日期|成文日期")


def _scope(ix: KnowledgeIndex, u: Understanding, settings: RetrievalSettings) -> list[str] | None:
    """Documents the question is about (None: all)."""
    scope: set[str] | None = None
    if settings.scope_by_place and u.region_docs:
        scope = set(u.region_docs)
    if u.doc_ids:
        named = set(u.doc_ids)
        scope = (scope & named or scope | named) if scope is not None else named
    return sorted(scope) if scope is not None else None


def _normalise(values: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return values
    top = float(values.max())
    bottom = float(values.min())
    return (values - bottom) / (top - bottom) if top > bottom else np.ones_like(values)


def retrieve_understood(ix: KnowledgeIndex, u: Understanding, *, k: int = 10,
                        settings: RetrievalSettings = DEFAULT_SETTINGS, filters: Filters | None = None) -> list[Hit]:
    """Top ``k`` chunks for an understood question."""
    scope = _scope(ix, u, settings)
    allowed = ix.allowed_ids(filters)
    if scope is not None:
        scoped = ix.doc_chunk_ids(scope)
        allowed = scoped if allowed is None else np.intersect1d(allowed, scoped)
    query = u.query
    expanded = expand_colloquial(query)
    dense_query = expanded if settings.expand_dense else query

    scores: dict[int, list[float]] = {}  # id -> [dense, bm25]
    if settings.mode in ("dense", "hybrid"):
        vector = ix.query_vector(dense_query)
        for cid, s in ix.vectors.search(vector, settings.depth, allowed):
            scores.setdefault(cid, [0.0, 0.0])[0] = s
    tokens = tokenize(expanded)
    if settings.mode in ("bm25", "hybrid"):
        ids, bm25 = ix.keywords.scores(tokens)
        if allowed is not None:
            mask = np.isin(ids, allowed)
            ids, bm25 = ids[mask], bm25[mask]
        if len(ids):
            top = np.argsort(-bm25, kind="stable")[: settings.depth]
            for i in top:
                if bm25[i] > 0:
                    scores.setdefault(int(ids[i]), [0.0, 0.0])[1] = float(bm25[i])
        if settings.mode == "hybrid" and scores:
            # Candidates found by one retriever get their exact score from the other.
            missing_dense = np.asarray([c for c, v in scores.items() if v[0] == 0.0], dtype=np.int64)
            if len(missing_dense):
                for c, s in zip(missing_dense, ix.dense_scores(ix.query_vector(dense_query), missing_dense)):
                    scores[int(c)][0] = float(s)
            lookup = dict(zip(ids.tolist(), bm25.tolist())) if len(ids) else {}
            for c, v in scores.items():
                if v[1] == 0.0:
                    v[1] = lookup.get(c, 0.0)

    ids = np.asarray(list(scores), dtype=np.int64)
    if settings.mode == "dense":
        fused = np.asarray([scores[c][0] for c in ids.tolist()], dtype=np.float64)
    elif settings.mode == "bm25":
        fused = np.asarray([scores[c][1] for c in ids.tolist()], dtype=np.float64)
    else:
        dense = _normalise(np.asarray([scores[c][0] for c in ids.tolist()], dtype=np.float64))
        sparse = np.asarray([scores[c][1] for c in ids.tolist()], dtype=np.float64)
        sparse = sparse / sparse.max() if len(sparse) and sparse.max() > 0 else sparse
        chunks = ix.catalog.chunks(ids.tolist()) if len(ids) else {}
        weights = np.full(len(ids), settings.dense_weight)
        if settings.law_dense_weight is not None:
            for i, cid in enumerate(ids.tolist()):
                if ix.doc_info(chunks[cid].doc_id).kind in LAW_KINDS:
                    weights[i] = settings.law_dense_weight
        fused = weights * dense + (1 - weights) * sparse

    chunks = ix.catalog.chunks(ids.tolist()) if len(ids) else {}
    document_question = bool(_DOCUMENT_QUESTION.search(query))
    term_question = bool(_ASKS_TERM.search(query))
    others_right = bool(_OTHERS_RIGHT.search(query))
    kinds = _ASKS_KINDS.search(query)
    kinds_list = _kinds_list(kinds.group(1)[-1]) if kinds else None
    deadline = _ASKS_DEADLINE.search(query)
    deadline_act = re.compile(_PERIOD + r"[^。；;]{0,30}?" + deadline.group(1)) if deadline else None
    lead_question = bool(ASKS_LEAD.search(query))
    how = _HOW.search(query)
    # What is to be done: the verb's object ("提异议" → 异议), or the verb itself ("备案").
    route_object = ((how.group(2).removesuffix("呢").removesuffix("吗") or how.group(1)) if how else "")
    exact = set(u.exact_region_docs)
    in_domain = {d for _, docs in u.domains for d in docs}
    if settings.mode == "hybrid":
        for i, cid in enumerate(ids.tolist()):
            chunk = chunks[cid]
            if chunk.doc_id in exact and len(exact) < len(set(u.region_docs)):
                fused[i] += settings.exact_region_boost
            if (u.intent in ("goal", "amount") or u.years) and _FIGURE.search(chunk.text):
                fused[i] += settings.figure_boost
            if route_object and _states_route(chunk.text, route_object):
                fused[i] += settings.route_boost
            if lead_question and "牵头" in chunk.text:
                fused[i] += settings.lead_boost
            if settings.heading_boost and _named_heading(chunk.text, query):
                fused[i] += settings.heading_boost
            if u.intent == "subsidy" and _GRANTS.search(chunk.text) and ix.doc_info(chunk.doc_id).kind not in LAW_KINDS:
                fused[i] += settings.subsidy_boost
            if chunk.clause_id.endswith(":通知"):
                # The notice that issues a plan answers questions about the document, not its content.
                fused[i] += settings.notice_boost if document_question else -settings.notice_penalty
            if u.intent == "definition" and _DEFINES.search(chunk.text):
                fused[i] += settings.definition_boost
            if settings.statute_boost and ix.doc_info(chunk.doc_id).kind == "法律":
                fused[i] += settings.statute_boost
            if u.ordinal and _is_nth(chunk, *u.ordinal):
                fused[i] += settings.ordinal_boost
            if deadline_act and deadline_act.search(chunk.text):
                fused[i] += settings.deadline_boost
            if kinds_list and kinds_list.search(chunk.text):
                fused[i] += settings.kinds_boost
            if others_right and _HOLDER_ACTS.search(chunk.text):
                fused[i] -= settings.owner_penalty
            if term_question and _STATES_TERM.search(chunk.text):
                fused[i] += settings.term_boost
            if in_domain and chunk.doc_id not in in_domain and ix.doc_info(chunk.doc_id).kind in LAW_KINDS:
                fused[i] -= settings.domain_penalty

    ranked = sorted(zip(ids.tolist(), fused.tolist()), key=lambda x: (-x[1], x[0]))
    if settings.rerank_depth and settings.mode == "hybrid" and ranked:
        ranked = _rerank_by_sentence(u, ranked, chunks, settings)
    ranked = _with_articles(ix, u, ranked, scope, settings)
    if u.multi:
        ranked = _spread_over_documents(ranked, chunks)
    ranked = ranked[:k]
    per = {"dense": {c: v[0] for c, v in scores.items()}, "bm25": {c: v[1] for c, v in scores.items()}}
    return ix.hits(ranked, per)


_LABEL_NUMBER = re.compile(rf"^[(（]?([{CN_NUMERAL_CHARS}\d]+)[)）]?[、.．]?$")
_HEADING_NUMBER = re.compile(rf"^(?:[(（][{CN_NUMERAL_CHARS}\d]+[)）]|[{CN_NUMERAL_CHARS}\d]+[、.．])\s*")


def _states_route(text: str, thing: str) -> bool:
    """A sentence of ``text`` says who "可以…向…申请/提出/请求" ``thing``."""
    return any(thing in m.group(0) for m in _ROUTE.finditer(text))


def _kinds_list(head: str) -> re.Pattern:
    """Three or more items ending with ``head``, joined by 、/和/及/或者 ("新颖性、特异性、一致性和稳定性")."""
    item = rf"[\u4e00-\u9fff]{{1,6}}{re.escape(head)}"
    return re.compile(rf"{item}(?:、{item}){{1,}}(?:、|和|及|以及|或者|或){item}")


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


def _rerank_by_sentence(u: Understanding, ranked: list[tuple[int, float]], chunks: dict,
                        settings: RetrievalSettings) -> list[tuple[int, float]]:
    """Reorder the top chunks by how well their best sentence matches the question."""
    from assistant.compose import best_sentence_score, content_tokens

    head, tail = ranked[: settings.rerank_depth], ranked[settings.rerank_depth:]
    wanted = content_tokens(u)
    sentence_scores = [best_sentence_score(chunks[c].text, wanted, u) for c, _ in head]
    peak = max(sentence_scores) or 1.0
    top = head[0][1] or 1.0
    rescored = [(c, (1 - settings.rerank_weight) * s / top + settings.rerank_weight * b / peak)
                for (c, s), b in zip(head, sentence_scores)]
    rescored.sort(key=lambda x: (-x[1], x[0]))
    # Keep the head above the tail: scale back into the original score range.
    floor = tail[0][1] if tail else 0.0
    return [(c, max(s * top, floor + 1e-6 * (len(rescored) - i))) for i, (c, s) in enumerate(rescored)] + tail


def _with_articles(ix: KnowledgeIndex, u: Understanding, ranked: list[tuple[int, float]], scope: list[str] | None,
                   settings: RetrievalSettings) -> list[tuple[int, float]]:
    """Put clauses named by number (专利法第四十二条) first."""
    if not u.articles:
        return ranked
    docs = list(u.doc_ids) or scope or [d.doc_id for d in ix.documents()]
    wanted: list[int] = []
    for ref in u.articles:
        for doc_id in docs:
            rows = ix.catalog.db.execute(
                "SELECT ch.id FROM chunks ch JOIN clauses cl ON cl.clause_id = ch.clause_id "
                "WHERE cl.doc_id = ? AND cl.number = ? ORDER BY ch.id", (doc_id, ref.number)).fetchall()
            wanted.extend(r[0] for r in rows if r[0] not in wanted)
    if not wanted:
        return ranked
    # Among several laws with that article number, keep the retrieval order.
    position = {cid: i for i, (cid, _) in enumerate(ranked)}
    wanted.sort(key=lambda c: position.get(c, len(position)))
    head = [(c, settings.article_score) for c in wanted]
    return head + [(c, s) for c, s in ranked if c not in set(wanted)]


def _spread_over_documents(ranked: list[tuple[int, float]], chunks: dict) -> list[tuple[int, float]]:
    """Best chunk of each document first (in score order), then the rest."""
    firsts, rest, seen = [], [], set()
    for cid, score in ranked:
        doc = chunks[cid].doc_id if cid in chunks else None
        if doc not in seen:
            seen.add(doc)
            firsts.append((cid, score))
        else:
            rest.append((cid, score))
    return firsts + rest


def retrieve(ix: KnowledgeIndex, question: str, *, history: Sequence[dict] = (), k: int = 10, mode: str = "hybrid",
             filters: Filters | None = None, reader: QuestionReader | None = None,
             settings: RetrievalSettings = DEFAULT_SETTINGS) -> list[Hit]:
    """The top ``k`` chunks for a question in a conversation."""
    reader = reader or QuestionReader(ix.documents())
    u = reader.read(question, history)
    return retrieve_understood(ix, u, k=k, settings=replace(settings, mode=mode), filters=filters)

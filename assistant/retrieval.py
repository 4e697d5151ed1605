"""Retrieval as the assistant does it: the one path that the chat, the CLI and the eval share.

A short pipeline of named stages (``assistant.ranking``):

1. **scope** — the documents the question is about: those of the places or titles it names, within
   the filters given. A question about 荆门 is never answered from 沧州.
2. **candidates** — dense over chunk vectors, dense over sentence vectors, BM25, and BM25 with
   pseudo-relevance feedback; every candidate scored by all four.
3. **features** — general properties of each (question, candidate) pair.
4. **rank** — a ``Reranker`` chosen by name (default: the learned LambdaMART model).

Then two structural steps: clauses the question names by number (专利法第四十二条) come first, and a
question over several places gets each document's best clause before the second of any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from assistant import rules
from assistant.asks import states_asked
from assistant.compose import value_citing
from assistant.memory import AskedQuestions, asked_questions
from assistant.rules import RULES, RuleWeights
from assistant.ranking import Candidates, candidates, features
from assistant.rerank import get_reranker
from assistant.understanding import QuestionReader, Understanding
from corpus.metadata import LAW_KINDS
from corpus.types import Chunk, Hit
from index.core import Filters, KnowledgeIndex


@dataclass(frozen=True)
class RetrievalSettings:
    depth: int = 60  # candidates taken from each of the four searches
    reranker: str = "learned"  # assistant.rerank.RERANKERS: learned | fusion | sentence
    rules: bool = True  # the hand rules kept because they helped a test split (assistant.rules)
    rule_weights: RuleWeights = RULES  # each rule's weight (eval.ablate sets one to 0)
    colloquial: bool = True  # index/data/colloquial.txt adds the documents' words to the BM25 query
    memory: bool = True  # the clauses of the closest earlier questions are candidates (assistant.memory)
    memory_dir: str = ""  # where the memory is ("": the bundled one, assistant/data; eval.train writes elsewhere)
    article_score: float = 10.0  # a clause named by number ranks first
    scope_by_place: bool = True
    mode: str = "hybrid"  # dense | bm25 | hybrid


DEFAULT_SETTINGS = RetrievalSettings()


def scope_docs(u: Understanding, settings: RetrievalSettings, ix: KnowledgeIndex | None = None) -> list[str] | None:
    """Documents the question is about (None: all): those of the places it names, and the policies it
    names by title. A law named loosely ("劳动法上的三期" is 劳动合同法's) is not a fence: the ranker
    weighs it (feature ``doc_named``)."""
    scope: set[str] | None = None
    if settings.scope_by_place and u.region_docs:
        scope = set(u.region_docs)
    named = {d for d in u.doc_ids if ix is None or ix.doc_info(d).kind not in LAW_KINDS}
    if named:
        scope = (scope & named or scope | named) if scope is not None else named
    return sorted(scope) if scope is not None else None


def allowed_chunks(ix: KnowledgeIndex, docs: list[str] | None, filters: Filters | None) -> np.ndarray | None:
    """Chunk ids the search may return (None: all)."""
    allowed = ix.allowed_ids(filters)
    if docs is not None:
        scoped = ix.doc_chunk_ids(docs)
        allowed = scoped if allowed is None else np.intersect1d(allowed, scoped)
    return allowed


def _single(ix: KnowledgeIndex, u: Understanding, allowed: np.ndarray | None, mode: str,
            depth: int) -> tuple[list[tuple[int, float]], dict]:
    """One retriever alone (the eval's dense and bm25 pipelines)."""
    if mode == "dense":
        ranked = ix.dense_search(ix.query_vector(u.query), depth, allowed)
        return ranked, {"dense": dict(ranked)}
    ranked = ix.keyword(u.query, depth, allowed)
    return ranked, {"bm25": dict(ranked)}


def memory_for(ix: KnowledgeIndex, settings: RetrievalSettings) -> AskedQuestions | None:
    """The earlier questions the ranker may use (none when switched off), their vectors by the index's embedder."""
    if not settings.memory:
        return None
    ix.load_embedder()  # a model missing here is the index's error (with its fix), before the memory needs it
    return asked_questions(ix.embedder, Path(settings.memory_dir) if settings.memory_dir else None)


def find_candidates(ix: KnowledgeIndex, u: Understanding, allowed: np.ndarray | None,
                    settings: RetrievalSettings) -> Candidates:
    return candidates(ix, u, allowed, settings.depth, colloquial=settings.colloquial, memory=memory_for(ix, settings))


def _scores(c: Candidates) -> dict[str, dict[int, float]]:
    ids = c.ids.tolist()
    return {"dense": dict(zip(ids, c.dense.tolist())), "sentence": dict(zip(ids, c.sentence.tolist())),
            "bm25": dict(zip(ids, c.bm25.tolist()))}


def retrieve_understood(ix: KnowledgeIndex, u: Understanding, *, k: int = 10,
                        settings: RetrievalSettings = DEFAULT_SETTINGS, filters: Filters | None = None) -> list[Hit]:
    """Top ``k`` chunks for an understood question."""
    docs = scope_docs(u, settings, ix)
    allowed = allowed_chunks(ix, docs, filters)
    if settings.mode in ("dense", "bm25"):
        ranked, per = _single(ix, u, allowed, settings.mode, max(k, settings.depth))
        chunks = ix.chunks([cid for cid, _ in ranked])
    else:
        found = find_candidates(ix, u, allowed, settings)
        ranked = get_reranker(settings.reranker).rank(u, found, features(ix, u, found))
        if settings.rules:
            ranked = rules.apply(u, ranked, found.chunks, lambda doc_id: ix.doc_info(doc_id).kind,
                                 settings.rule_weights)
        per, chunks = _scores(found), found.chunks
        ranked = _value_article_first(ix, u, ranked, chunks)
    ranked = _with_articles(ix, u, ranked, docs, settings)
    if u.multi:
        ranked = _spread_over_documents(ranked, chunks)
    return ix.hits(ranked[:k], per)


def _with_articles(ix: KnowledgeIndex, u: Understanding, ranked: list[tuple[int, float]], scope: list[str] | None,
                   settings: RetrievalSettings) -> list[tuple[int, float]]:
    """Put clauses named by number (专利法第四十二条) first."""
    if not u.articles:
        return ranked
    docs = list(u.doc_ids) or scope or [d.doc_id for d in ix.documents()]
    wanted = list(dict.fromkeys(c for ref in u.articles for c in ix.article_chunk_ids(docs, ref.number)))
    if not wanted:
        return ranked
    # Among several laws with that article number, keep the retrieval order.
    position = {cid: i for i, (cid, _) in enumerate(ranked)}
    wanted.sort(key=lambda c: position.get(c, len(position)))
    head, named = [(c, settings.article_score) for c in wanted], set(wanted)
    return head + [(c, s) for c, s in ranked if c not in named]


def _value_article_first(ix: KnowledgeIndex, u: Understanding, ranked: list[tuple[int, float]],
                         chunks: dict) -> list[tuple[int, float]]:
    """A value asked of an act the best article defines but states no value for: the article of the same
    law among the ten best clauses that cites it by number and states one comes first ("泄露商业秘密罚多少":
    反不正当竞争法第二十一条, "违反本法第九条规定…处十万元以上…的罚款", before 第九条). The clause tree, as
    the answer reads it (assistant.compose.value_citing). A sanction asked of an act likewise
    ("侵犯商业秘密怎么处罚"; assistant.asks.states_asked)."""
    top = chunks.get(ranked[0][0]) if ranked else None
    if top is None or ix.doc_info(top.doc_id).kind not in LAW_KINDS:
        return ranked
    # None: the question asks neither a value nor a sanction ("侵犯商业秘密怎么处罚": 第二十一条 before 第九条)
    if states_asked(u.query, "\n".join(c.text for c in chunks.values() if c.clause_id == top.clause_id)) is not False:
        return ranked
    clauses: set[str] = set()
    for i, (cid, _) in enumerate(ranked[1:], start=1):
        chunk = chunks.get(cid)
        if chunk is None or chunk.clause_id == top.clause_id:
            continue
        clauses.add(chunk.clause_id)
        if len(clauses) > 9:  # the ten best clauses, the best one included
            break
        if chunk.doc_id == top.doc_id and value_citing(u.query, chunk.text, top.clause_id):
            return [(cid, ranked[0][1])] + ranked[:i] + ranked[i + 1:]
    return ranked


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
    reader = reader or QuestionReader.for_index(ix)
    u = reader.read(question, history)
    return retrieve_understood(ix, u, k=k, settings=replace(settings, mode=mode), filters=filters)


MIN_KEYWORD_MATCHES = 3  # a hybrid clause search with fewer matching results keeps the semantic ones


def clause_results(ix: KnowledgeIndex, hits: list[Hit], k: int) -> list[Hit]:
    """What a clause search shows: one result per clause in rank order, a long clause's pieces
    merged into the whole clause; in hybrid mode, results that share no word with the query are left
    out once at least ``MIN_KEYWORD_MATCHES`` do (they only padded the list)."""
    first: dict[str, Hit] = {}
    for h in hits:
        first.setdefault(h.chunk.clause_id, h)
    kept = list(first.values())
    if kept and {"dense", "bm25"} <= kept[0].scores.keys():
        matched = [h for h in kept if h.scores.get("bm25", 0.0) > 0]
        if len(matched) >= MIN_KEYWORD_MATCHES:
            kept = matched
    docs: dict[str, object] = {}
    out = []
    for rank, h in enumerate(kept[:k], start=1):
        chunk = h.chunk
        if chunk.parts > 1:
            doc = docs.get(chunk.doc_id) or docs.setdefault(chunk.doc_id, ix.document(chunk.doc_id))
            if doc is not None:
                chunk = _whole_clause(doc, chunk)
        out.append(replace(h, chunk=chunk, rank=rank))
    return out


def _whole_clause(doc, chunk: Chunk) -> Chunk:
    clause = doc.clause(chunk.clause_id)
    text = clause.text.strip()
    start = clause.start + len(clause.text) - len(clause.text.lstrip())
    return replace(chunk, text=text, start=start, end=start + len(text), part=0, parts=1)

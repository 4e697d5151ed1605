"""Retrieval as named stages: candidates → features → rank.

- ``candidates``: the chunks that any of four searches puts near the top — dense over chunk
  vectors, dense over sentence vectors (a chunk scored by its best sentence), BM25 over the
  question's words, and BM25 with pseudo-relevance feedback (the distinctive words of the best dense
  hits added to the question's, which closes part of the gap between a layperson's words and a
  statute's: 抄袭 → 复制、剽窃). Every candidate gets every score, not only the ones that found it.
  The clauses that answered the closest earlier questions (``assistant.memory``) are candidates too.
- ``features``: general properties of each (question, candidate) pair, named in ``FEATURES``; no
  feature names a question's wording.
- ``Reranker.rank``: orders the candidates. ``LearnedRanker`` (the default) is a LambdaMART model
  trained by ``python -m eval.train`` on STARD's train split and the eval sets' dev splits;
  ``FusionRanker`` is a fixed weighting of the same scores, kept as the untrained reference.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.asks import asked_kind, asked_unit, content_query, holds_kind, holds_unit
from assistant.memory import AskedQuestions, Neighbour
from assistant.understanding import Understanding
from corpus.metadata import LAW_KINDS
from index.core import KnowledgeIndex
from index.sentences import sentence_units
from index.text import colloquial_matches, expand_colloquial, is_stopword, tokenize

DEPTH = 60  # candidates taken from each search
PRF_DOCS = 5  # dense hits whose words feed the BM25 expansion
PRF_TERMS = 10  # expansion terms added
PRF_WEIGHT = 0.4  # an expansion term's weight, relative to the question's own words (the best one)
# A figure with its unit (a heading's "9." is no figure), and a clause that grants support.
FIGURE = re.compile(r"\d[\d.]*\s*(?:%|％|件|家|个|项|名|亿|万|元|次|倍|人|场|所|部|篇|以上|以下)")
_DEFINES = re.compile(r"是指|所称|指的是")
GRANTS = re.compile(r"给予[^，,。；]{0,12}(?:奖励|资助|补贴|补助|贴息|支持|扶持)|(?:奖励|资助|补贴|补助)[^，,。；]{0,6}元|奖补")
_SENTENCE_END = re.compile(r"(?<=[。！？；;!?])|\n")
_QUESTION_WORDS = re.compile(r"什么|怎么|怎样|如何|多少|哪些|哪个|是否|有没有|吗|呢|能不能|可不可以|可以吗")
KIND_GROUPS = {"法律": "law", "行政法规": "regulation", "司法解释": "judicial"}


@dataclass
class Candidates:
    """The candidate chunks of one question, each with every search's score."""

    ids: np.ndarray
    dense: np.ndarray  # cosine of the chunk vector
    sentence: np.ndarray  # cosine of the chunk's best sentence
    bm25: np.ndarray
    prf: np.ndarray  # BM25 of the question with its feedback terms
    best_sentence: np.ndarray  # which sentence of each chunk is closest (index.sentences.sentence_units)
    expansion: dict[str, float] = field(default_factory=dict)  # feedback term -> weight
    chunks: dict = field(default_factory=dict)  # id -> Chunk
    neighbours: list[Neighbour] = field(default_factory=list)  # the closest earlier questions (assistant.memory)

    def __len__(self) -> int:
        return len(self.ids)


# --- candidates -------------------------------------------------------------------------------


def feedback_terms(ix: KnowledgeIndex, texts: Sequence[str], question_tokens: set[str]) -> dict[str, float]:
    """Pseudo-relevance feedback: the words that the top hits share and the rest of the index rarely
    has (tf × idf summed over the hits), best first, weighted relative to the best."""
    counts: Counter[str] = Counter()
    for text in texts:
        words = [t for t in tokenize(text) if len(t) >= 2 and not t.isdigit() and not is_stopword(t)]
        total = max(1, len(words))
        for word, n in Counter(words).items():
            counts[word] += n / total
    df, n_chunks = ix.term_stats(list(counts))
    scored = {w: c * math.log(1 + n_chunks / (1 + df.get(w, 0))) for w, c in counts.items()
              if w not in question_tokens and df.get(w, 0) > 0}
    best: list[tuple[str, float]] = []
    for word, score in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0])):
        # jieba's search mode also gives the pieces of a word (生产者 → 生产, 产者): keep the word.
        if not any(word in kept or kept in word for kept, _ in best):
            best.append((word, score))
        if len(best) == PRF_TERMS:
            break
    if not best:
        return {}
    top = best[0][1]
    return {w: PRF_WEIGHT * s / top for w, s in best}


def _feedback_texts(ix: KnowledgeIndex, vector: np.ndarray, near: np.ndarray) -> list[str]:
    """The sentences closest to the question among the dense candidates: their words feed the BM25
    expansion (whole chunks would bring the words of their other topics too)."""
    if not len(near):
        return []
    scores, positions = ix.best_sentences(vector, near)
    top = np.argsort(-scores, kind="stable")[:PRF_DOCS]
    chunks = ix.chunks(near[top].tolist())
    texts = []
    for i in top.tolist():
        units = sentence_units(chunks[int(near[i])].text)
        texts.append(units[positions[i]] if positions[i] < len(units) else chunks[int(near[i])].text)
    return texts


def _asked(ix: KnowledgeIndex, u: Understanding, vector: np.ndarray, allowed: np.ndarray | None,
           memory: AskedQuestions | None) -> tuple[list[Neighbour], set[int]]:
    """The earlier questions closest to this one, and the chunks of their clauses that may be returned."""
    if memory is None:
        return [], set()
    near = memory.neighbours(vector, u.question)
    found = ix.clause_chunk_ids({c for n in near for c in n.clauses})
    ids = {cid for chunk_ids in found.values() for cid in chunk_ids}
    if allowed is not None:
        ids &= set(allowed.tolist())
    return near, ids


def candidates(ix: KnowledgeIndex, u: Understanding, allowed: np.ndarray | None, depth: int = DEPTH, *,
               colloquial: bool = True, memory: AskedQuestions | None = None) -> Candidates:
    """Union of the top ``depth`` of each search, every candidate scored by all four, and the clauses of
    the closest earlier questions in ``memory``. With ``colloquial`` the BM25 query also has the
    documents' words for the question's colloquial phrases (colloquial.txt)."""
    vector = ix.query_vector(u.query)
    asked = content_query(u.query)
    tokens = tokenize(expand_colloquial(asked) if colloquial else asked)
    dense = {cid for cid, _ in ix.dense_search(vector, depth, allowed)}
    dense |= {cid for cid, _ in ix.sentence_search(vector, depth, allowed)}
    near = np.asarray(sorted(dense), dtype=np.int64)
    expansion = feedback_terms(ix, _feedback_texts(ix, vector, near), set(tokens))
    weights = Counter({t: 1.0 for t in tokens})
    weights.update(expansion)
    neighbours, asked_ids = _asked(ix, u, vector, allowed, memory)
    # BM25 with and without the feedback terms: each one's top ``depth``, and the scores of the rest
    union, keyword = ix.keyword_candidates(tokens, dict(weights), depth, allowed, sorted(dense | asked_ids))
    if len(union) == 0:
        empty = np.zeros(0, dtype=np.float32)
        return Candidates(union, empty, empty, empty, empty, np.zeros(0, dtype=np.int64), expansion, {})
    sentence, position = ix.best_sentences(vector, union)
    return Candidates(
        ids=union, dense=ix.dense_scores(vector, union), sentence=sentence, bm25=keyword[:, 0], prf=keyword[:, 1],
        best_sentence=position, expansion=expansion, chunks=ix.chunks(union.tolist()), neighbours=neighbours)


# --- features ---------------------------------------------------------------------------------

BASE_FEATURES = (
    # how the four searches scored the candidate (relative to the best candidate, and as ranks)
    "dense", "dense_gap", "sentence", "sentence_gap", "bm25", "prf", "rank_dense", "rank_sentence", "rank_bm25",
    "rank_prf",
    # the question's words in the candidate
    "coverage", "coverage_idf", "title_coverage", "sentence_coverage", "heading_in_question", "colloquial_match",
    # what the question names: a document, a place, an article, a legal domain
    "doc_named", "place", "exact_place", "article", "domain_match",
    # the candidate itself
    "kind_law", "kind_regulation", "kind_judicial", "kind_policy", "length", "part", "figure", "defines",
    "grants_support", "notice", "preamble",
    # its document among the candidates, and its collection against the other
    "doc_share", "doc_best", "collection_margin",
    # what the question asks, met by the candidate (products: a per-question value alone cannot change
    # the order of one question's candidates)
    "kind_in_best_sentence", "kind_in_clause", "figure_asked", "subsidy_policy", "subsidy_grants", "goal_policy",
    "procedure_statute", "definition_defines", "policy_no_place", "unit_in_clause", "rarest_word",
)
# Earlier questions answered by the candidate's clause (assistant.memory), a law's and a policy's apart:
# the closest such question's cosine, how far it stands above the last of the neighbours (a question
# among many alike ones says less), and the share of the neighbours that name the clause. The learned
# ranker scores them in a second stage added to the first, so a question no earlier one resembles is
# ranked exactly as without the memory.
MEMORY_FEATURES = ("asked_law", "asked_law_lift", "asked_law_votes",
                   "asked_policy", "asked_policy_lift", "asked_policy_votes",
                   # the same for the candidate's document: earlier questions answered from another
                   # article of the same law point to the law
                   "asked_doc", "asked_doc_votes")
FEATURES = BASE_FEATURES + MEMORY_FEATURES


def _ranks(values: np.ndarray) -> np.ndarray:
    """log2(1 + rank) of each value among the candidates (rank 1: the highest)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[order] = np.arange(1, len(values) + 1)
    return np.log2(1 + ranks)


def _norm(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


@dataclass(frozen=True)
class QuestionTerms:
    """The question's content words with their rarity in the index (idf)."""

    words: tuple[str, ...]
    idf: tuple[float, ...]

    @classmethod
    def of(cls, ix: KnowledgeIndex, u: Understanding) -> "QuestionTerms":
        words = [t for t in dict.fromkeys(tokenize(content_query(u.query))) if len(t) >= 2 and not t.isdigit()
                 and not is_stopword(t) and not _QUESTION_WORDS.fullmatch(t) and t not in u.places]
        df, n = ix.term_stats(words)
        return cls(tuple(words), tuple(math.log(1 + n / (1 + df.get(w, 0))) if n else 1.0 for w in words))

    def best_sentence(self, text: str) -> tuple[float, str]:
        """(idf share of the question's words, sentence) for the text's sentence that holds most of them."""
        return max(((self.coverage(s)[1], s) for s in _SENTENCE_END.split(text) if len(s) >= 4),
                   key=lambda cs: cs[0], default=(0.0, ""))

    def has_rarest(self, text: str) -> bool:
        """Whether ``text`` holds the question's rarest word (资助 in 企业申请专利有没有资助)."""
        return bool(self.words) and self.words[int(np.argmax(self.idf))] in text

    def coverage(self, text: str) -> tuple[float, float]:
        """(share of the words, share of their idf) found in ``text``."""
        if not self.words:
            return 1.0, 1.0
        present = [w in text for w in self.words]
        return sum(present) / len(present), sum(i for i, p in zip(self.idf, present) if p) / (sum(self.idf) or 1.0)


def _collection_margin(dense: np.ndarray, is_policy: np.ndarray) -> np.ndarray:
    """How much closer the best chunk of a candidate's own collection (policies or laws) is than the
    best of the other: where a question goes, from what answers it, not from a word list."""
    best_policy = float(dense[is_policy].max()) if is_policy.any() else 0.0
    best_law = float(dense[~is_policy].max()) if (~is_policy).any() else 0.0
    return np.where(is_policy, best_policy - best_law, best_law - best_policy).astype(np.float32)


@dataclass
class _Question:
    """What every candidate of one question is compared with."""

    u: Understanding
    terms: QuestionTerms
    kind: object  # assistant.asks.AnswerKind or None
    articles: set[str]
    in_domain: set[str]
    colloquial: list[tuple[str, ...]]
    asks_figure: bool
    unit: str | None  # "多少年" → 年


def _candidate(q: _Question, ch, doc, path: tuple[str, ...], policy: bool) -> dict[str, float]:
    """The features of one candidate that need only the question and the candidate itself."""
    u = q.u
    heading = path[-1] if path else ""
    group = KIND_GROUPS.get(doc.kind, "policy" if policy else "regulation")
    cover, cover_idf = q.terms.coverage(ch.indexed_text)
    sentence_cover, sentence = q.terms.best_sentence(ch.text)
    figure, defines, grants = bool(FIGURE.search(ch.text)), bool(_DEFINES.search(ch.text)), bool(GRANTS.search(ch.text))
    return {
        "coverage": cover, "coverage_idf": cover_idf, "title_coverage": q.terms.coverage(doc.title + " ".join(path))[0],
        "sentence_coverage": sentence_cover, "heading_in_question": len(heading) >= 3 and _heading_words(heading) in u.query,
        "colloquial_match": any(any(t in ch.indexed_text for t in terms) for terms in q.colloquial),
        "doc_named": ch.doc_id in u.doc_ids, "place": ch.doc_id in u.region_docs,
        "exact_place": ch.doc_id in u.exact_region_docs, "article": ch.clause_id.rsplit("/", 1)[-1] in q.articles,
        "domain_match": float(ch.doc_id in q.in_domain) - float(bool(q.in_domain) and not policy
                                                              and ch.doc_id not in q.in_domain),
        "kind_law": group == "law", "kind_regulation": group == "regulation", "kind_judicial": group == "judicial",
        "kind_policy": policy, "length": math.log(1 + len(ch.text)), "part": ch.part > 0, "figure": figure,
        "defines": defines, "grants_support": grants, "notice": ch.clause_id.endswith(":通知"),
        "preamble": ch.clause_id.endswith((":前言", ":题注")),
        "kind_in_best_sentence": holds_kind(q.kind, sentence), "kind_in_clause": holds_kind(q.kind, ch.text),
        "figure_asked": figure and q.asks_figure, "subsidy_policy": u.intent == "subsidy" and policy,
        "subsidy_grants": u.intent == "subsidy" and grants, "goal_policy": u.intent == "goal" and policy,
        "procedure_statute": u.intent == "procedure" and group in ("law", "regulation"),
        "definition_defines": u.intent == "definition" and defines,
        "policy_no_place": policy and not u.region_docs, "unit_in_clause": holds_unit(q.unit, ch.text),
        "rarest_word": q.terms.has_rarest(ch.indexed_text),
    }


def _searches(c: Candidates) -> dict[str, np.ndarray]:
    best = np.maximum(c.dense, c.sentence)
    return {"dense": c.dense, "dense_gap": c.dense - c.dense.max(), "sentence": c.sentence,
            "sentence_gap": c.sentence - c.sentence.max(), "bm25": _norm(c.bm25), "prf": _norm(c.prf),
            "rank_dense": _ranks(c.dense), "rank_sentence": _ranks(c.sentence), "rank_bm25": _ranks(c.bm25),
            "rank_prf": _ranks(c.prf), "best": best}


def _asked_features(c: Candidates, chunks: list, is_policy: np.ndarray) -> dict[str, np.ndarray]:
    n = len(chunks)
    asked, votes = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    doc, doc_votes = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    for neighbour in c.neighbours:
        hit = np.asarray([ch.clause_id in neighbour.clauses for ch in chunks], dtype=bool)
        asked[hit] = np.maximum(asked[hit], neighbour.similarity)
        votes[hit] += 1 / len(c.neighbours)
        docs = {clause.split(":", 1)[0] for clause in neighbour.clauses}
        same = np.asarray([ch.doc_id in docs for ch in chunks], dtype=bool)
        doc[same] = np.maximum(doc[same], neighbour.similarity)
        doc_votes[same] += 1 / len(c.neighbours)
    lift = np.where(asked > 0, asked - (c.neighbours[-1].similarity if c.neighbours else 0.0), -1.0)
    out = {"asked_doc": doc, "asked_doc_votes": doc_votes}
    for name, mine in (("law", ~is_policy), ("policy", is_policy)):
        out.update({f"asked_{name}": np.where(mine, asked, 0.0), f"asked_{name}_lift": np.where(mine, lift, -1.0),
                    f"asked_{name}_votes": np.where(mine, votes, 0.0)})
    return out


def features(ix: KnowledgeIndex, u: Understanding, c: Candidates) -> np.ndarray:
    """One row of ``FEATURES`` per candidate."""
    n = len(c)
    chunks = [c.chunks[i] for i in c.ids.tolist()]
    docs = [ix.doc_info(ch.doc_id) for ch in chunks]
    paths = ix.clause_paths([ch.clause_id for ch in chunks])
    is_policy = np.asarray([d.kind not in LAW_KINDS for d in docs], dtype=bool)
    q = _Question(u, QuestionTerms.of(ix, u), asked_kind(u.query), {a.number for a in u.articles},
                  {d for _, docs_ in u.domains for d in docs_}, [terms for _, terms in colloquial_matches(u.query)],
                  u.intent in ("goal", "amount") or bool(u.years), asked_unit(u.query))
    searched = {**_searches(c), **_asked_features(c, chunks, is_policy)} if n else {}
    best = searched.get("best", np.zeros(0))
    share = Counter(chunks[i].doc_id for i in np.argsort(-best, kind="stable")[:10])
    doc_best: dict[str, float] = {}
    for ch, b in zip(chunks, best.tolist()):
        doc_best[ch.doc_id] = max(doc_best.get(ch.doc_id, -1.0), b)
    margin = _collection_margin(best, is_policy) if n else best
    rows = np.zeros((n, len(FEATURES)), dtype=np.float32)
    for i, (ch, doc) in enumerate(zip(chunks, docs)):
        values = _candidate(q, ch, doc, paths.get(ch.clause_id, ()), bool(is_policy[i]))
        values.update({name: float(v[i]) for name, v in searched.items() if name != "best"})
        values.update(doc_share=share.get(ch.doc_id, 0) / 10, doc_best=doc_best[ch.doc_id] - float(best.max()),
                      collection_margin=float(margin[i]))
        rows[i] = [float(values[name]) for name in FEATURES]
    return rows


_LEAD_NUMBER = re.compile(r"^(?:第[^章节条]{1,6}[章节条]|[(（]?[一二三四五六七八九十\d]{1,3}[)）、.．]?)\s*")


def _heading_words(heading: str) -> str:
    """A heading without its number and trailing parenthesis ("2.工作推进(2018年)" → "工作推进")."""
    return re.split(r"[(（。,，:：]", _LEAD_NUMBER.sub("", heading), maxsplit=1)[0].strip() or "\0"

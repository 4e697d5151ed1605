"""The assistant: understand → retrieve → answer (extractive, or LLM checked in code) → Answer."""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from assistant import compose, polarity
from assistant.asks import asks_sanction
from assistant.params import check_filters, check_k, check_mode
from assistant.llm import Generator, LLMError, LLMSettings, build_messages, check_answer
from assistant.retrieval import DEFAULT_SETTINGS, RetrievalSettings, clause_results, retrieve_understood
from assistant.listing import list_items, list_text, names_a_section
from assistant.references import sanction_of, with_cited
from assistant.understanding import QuestionReader, Understanding
from assistant.scope import ScopeVectors, judged, scope_features, scope_for
from assistant.verify import (Failure, check_reply, document_spans, not_found_text, own_years, read_asked, relative_note,
                             resolve_relative, states_of_event, supported, verify)
from corpus.errors import InvalidQuestion
from corpus.metadata import LAW_KINDS
from corpus.types import Answer, Citation, Hit
from index.core import Filters, KnowledgeIndex

log = logging.getLogger(__name__)
MAX_QUESTION_CHARS = 500

# Terminal escape sequences (colours, cursor moves) go whole, not just their ESC byte.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Control characters, bidi overrides/isolates, zero-width characters and BOMs: invisible,
# they only confuse tokenization or hide text; tabs and newlines become spaces.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f"
                        "\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")
# Full-width letters and digits (ＰＣＴ２０２５) are the ASCII ones typed with a Chinese IME.
_FULL_WIDTH_ALNUM = {c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A))
                     for c in range(r[0], r[1] + 1)}


def clean_question(text: str | None) -> str:
    """A question as typed, without control/invisible characters and with ASCII letters and digits."""
    text = _ANSI.sub("", str(text or ""))
    text = _INVISIBLE.sub("", text).replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return text.translate(_FULL_WIDTH_ALNUM).strip()


def check_question(question: str | None) -> str:
    """The cleaned question, or ``InvalidQuestion`` with a Chinese reason. Cheap: call it before
    opening an index so a bad question never waits for one."""
    raw = str(question or "")
    if len(raw) > 20 * MAX_QUESTION_CHARS:  # do not even clean a pasted document
        raise InvalidQuestion(f"问题太长（{len(raw)} 字），请控制在 {MAX_QUESTION_CHARS} 字以内")
    cleaned = clean_question(raw)
    if not cleaned:
        if raw.strip():
            raise InvalidQuestion("问题中只有控制字符或不可见字符，请输入要咨询的文字内容")
        raise InvalidQuestion("问题为空，请输入要咨询的内容")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in cleaned):
        raise InvalidQuestion("问题中没有可以检索的文字（只有表情符号、标点或符号），请用文字描述您的问题")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"问题太长（{len(cleaned)} 字），请控制在 {MAX_QUESTION_CHARS} 字以内")
    return cleaned


@dataclass(frozen=True)
class AbstainSettings:
    """When the assistant says the documents do not answer. Calibrated on eval/ (docs/retrieval.md)."""

    min_dense: float = 0.80  # cosine of the best clause to the question (e5 rarely goes below)
    scope: bool = True  # refuse questions the knowledge base does not cover (assistant/scope.py)


DEFAULT_ABSTAIN = AbstainSettings()


def reading_notes(u: Understanding) -> tuple[str, ...]:
    """How the question was read where it was not taken as typed, so a wrong reading is seen."""
    notes = ["问题中的繁体字已按简体字理解"] if u.traditional else []
    if u.expanded:
        notes.append("问题中的" + "，".join(f"「{e.short}」按「{e.full}」理解" for e in u.expanded))
    return tuple(notes)


READ_ON_DEPTH = 4  # a figure (or support) not in the best clause: the next clauses read (assistant.service._read_on)
READ_ON_SHARE = 0.9  # … those whose score is at least this share of the best one's
READ_ON_SAME_DOC = 0.75  # … or this share, for a clause of the best clause's own document (a plan's targets)


class Assistant:
    """Answers questions from one index. ``open`` loads the index; the model loads on first use."""

    def __init__(self, index: KnowledgeIndex, *, retrieval: RetrievalSettings = DEFAULT_SETTINGS,
                 abstain: AbstainSettings = DEFAULT_ABSTAIN, llm: LLMSettings | None = None):
        self.index = index
        self.reader = QuestionReader.for_index(index)
        self.retrieval = retrieval
        self.abstain_settings = abstain
        self.llm = Generator(llm) if llm else None

    @classmethod
    def open(cls, index_dir: str | Path | None = None, *, llm: LLMSettings | None = None, **kwargs) -> "Assistant":
        from assistant.indexing import open_index

        return cls(open_index(index_dir), llm=llm if llm is not None else LLMSettings.from_env(), **kwargs)

    def close(self) -> None:
        self.index.close()

    def warm_up(self) -> None:
        """Load the model and the tokenisers, and run one query, so the first user does not wait
        (jieba's plain dictionary, which splits compounds for the subject check, takes a second)."""
        from index.text import parts

        self.index.load_embedder()
        if self.index.shared:  # a large database's graphs, read while the app starts serving
            threading.Thread(target=self.index.prewarm, name="ipqa-prewarm", daemon=True).start()
        parts("高价值发明专利")
        self.ask("专利权的期限")

    # --- pieces ---

    def understand(self, question: str, history: Sequence[dict] = ()) -> Understanding:
        question = check_question(question)
        history = [{**turn, "content": clean_question(turn.get("content"))} for turn in history
                   if isinstance(turn, dict)]
        return self.reader.read(question, history)

    def search(self, question: str, *, history: Sequence[dict] = (), k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None) -> list[Hit]:
        """Clauses for a question or keywords, one result per clause (a long clause's pieces merged);
        ``k`` from 1 to 100, ``mode`` hybrid | dense | bm25 (or the page's labels); a filter nothing
        passes is refused (``InvalidParameter``), not answered empty."""
        k, mode = check_k(k), check_mode(mode)
        with self.index.snapshot():
            check_filters(filters, self.index.documents())
            u = self.understand(question, history)
            hits = retrieve_understood(self.index, u, k=2 * k, settings=replace(self.retrieval, mode=mode),
                                       filters=filters)
            return clause_results(self.index, hits, k)

    def match_terms(self, query: str) -> list[str]:
        """The words of ``query`` a result is matched on, for highlighting (no single characters)."""
        from index.text import tokenize

        return [t for t in dict.fromkeys(tokenize(query)) if len(t) > 1 or t.isdigit()]

    def _scope_text(self, u: Understanding) -> str:
        docs = self.index.documents()
        if u.region_docs:
            titles = [d.title for d in docs if d.doc_id in u.region_docs]
            return "、".join(f"《{t}》" for t in titles)
        return f"全部 {len(docs)} 份文件"

    def _verified(self, u: Understanding, hits: Sequence[Hit], picked: Sequence[compose.Picked],
                  listed: bool = False) -> Failure | None:
        """Why the picked sentences do not answer the question (assistant/verify.py), or None. ``listed``: they
        are a section's items, found by the thing listed (no need to look for it again)."""
        settings = self.abstain_settings
        is_section = None if listed else (lambda thing: names_a_section(self.index, thing))
        return verify(u, hits, picked, known=self.index.vocabulary(), periods=self._periods(u),
                      min_dense=settings.min_dense,
                      scope=scope_for(self.index.embedder.name) if settings.scope else None,
                      article_score=self.retrieval.article_score, years=own_years(self.index.documents()),
                      vectors=self._scope_vectors(u), is_section=is_section)

    def _mentioned(self, words: Sequence[str], nearest: Hit | None, u: Understanding) -> set[str]:
        """Of ``words``, those a clause of the documents the not-found speaks of says: the nearest clause's
        document when the question is scoped to a place or document, else any (a keyword search each)."""
        scoped = nearest is not None and bool(u.region_docs or u.doc_ids)
        filters = Filters(doc_ids=(nearest.chunk.doc_id,)) if scoped else None
        return {w for w in words if any(w in h.chunk.text for h in self.index.search(w, 20, mode="bm25", filters=filters))}

    def _relative_note(self, u: Understanding, doc_ids: Sequence[str]) -> str:
        return relative_note(u, doc_ids, own_years(self.index.documents()))

    def _periods(self, u: Understanding) -> dict[str, tuple[int, int] | None]:
        return document_spans(self.index.documents(), u.query)

    def _not_found(self, question: str, u: Understanding, hits: Sequence[Hit], picked: Sequence[compose.Picked],
                   failure: Failure, rewritten: str | None) -> Answer:
        """The precise not-found answer; the nearest clauses are 可能相关, never the answer."""
        related = compose.related(hits)
        nearest, quote = (picked[0].hit, picked[0].sentence) if picked else (
            (next(iter(compose.clause_hits(hits)), None), related[0].quote) if related else (None, ""))
        mentioned = self._mentioned(failure.missing, nearest, u) if failure.reason == "subject" else set()
        text = not_found_text(failure, u, nearest, quote, self._periods(u), self._scope_text(u), mentioned)
        if failure.reason == "relevance" and failure.missing:  # 红烧肉: no clause is even possibly related
            related = []
        return Answer(question=question, text=text, citations=(), abstained=True, rewritten_query=rewritten,
                      hits=tuple(hits), related=tuple(related), intent=u.intent,
                      reason=failure.reason, missing=failure.missing)

    # --- answering ---

    def ask(self, question: str, history: Sequence[dict] = (), *, filters: Filters | None = None,
            k: int = 10, use_llm: bool | None = None) -> Answer:
        """Answer one question; ``history`` is the earlier turns [{"role", "content"}]."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        question = check_question(question)
        with self.index.snapshot():  # one version of a shared knowledge base for the whole answer
            answer, u = self._extractive(question, history, filters, k, timings)
        if self.llm and use_llm is not False and not answer.abstained:
            t = time.perf_counter()
            answer = self._with_llm(u, answer)
            timings["compose_ms"] += (time.perf_counter() - t) * 1000
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        return replace(answer, timings={k_: round(v, 2) for k_, v in timings.items()})

    def _extractive(self, question: str, history: Sequence[dict], filters: Filters | None, k: int,
                    timings: dict[str, float]) -> tuple[Answer, Understanding]:
        """The answer quoted from the clauses (or the precise not-found), and what was asked."""
        t = time.perf_counter()
        check_filters(filters, self.index.documents())
        u = self.understand(question, history)
        timings["understand_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        hits = retrieve_understood(self.index, u, k=k, settings=self.retrieval, filters=filters)
        timings["retrieve_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        listed, picked = self._picked(u, hits)
        failure = self._verified(u, hits, picked, bool(listed))
        if failure and failure.reads_on:
            listed, picked, failure = self._read_on(u, hits) or (listed, picked, failure)
        rewritten = u.query if u.rewritten else None
        if failure:
            answer = self._not_found(question, u, hits, picked, failure, rewritten)
        else:
            text, citations = compose.compose(u, picked)
            if listed:  # the section's items, from the clause tree, each cited
                text = list_text(listed[0], picked, {c.clause_id: c.n for c in citations})
            said = polarity.verdict(u.query, [p.sentence for p in picked],
                                    policy=all(p.hit.kind not in LAW_KINDS for p in picked))
            text = polarity.with_verdict(text, said) + self._relative_note(u, [c.doc_id for c in citations])
            answer = Answer(question=question, text=text, citations=tuple(citations), abstained=False,
                            rewritten_query=rewritten, hits=tuple(hits), intent=u.intent,
                            verdict=said.label if said else None)
        answer = replace(answer, notes=answer.notes + reading_notes(u))
        timings["compose_ms"] = (time.perf_counter() - t) * 1000
        return answer, u

    def _read_on(self, u: Understanding, hits: Sequence[Hit]) -> tuple | None:
        """When the best clause states no value of the kind asked, the next clauses close behind it are read
        in turn, as a reader reads the top passages: (listed, picked, None) of the first that passes every
        check and states the value of the very event asked (verify.states_of_event); None if none does. The
        best clause's own document is read further down: a plan states an item's work in one clause and its
        figure in its list of targets ("专利转让许可次数增长20%以上" in 15., "…达27000次" in the preface)."""
        clauses = compose.clause_hits(hits)
        asked = read_asked(u, self.index.vocabulary())
        for other in clauses[1:READ_ON_DEPTH]:
            same = other.chunk.doc_id == clauses[0].chunk.doc_id
            if other.score < (READ_ON_SAME_DOC if same else READ_ON_SHARE) * clauses[0].score:
                continue
            promoted = [h for h in hits if h.chunk.clause_id == other.chunk.clause_id]
            promoted += [h for h in hits if h.chunk.clause_id != other.chunk.clause_id]
            listed, picked = self._picked(u, promoted)
            if self._verified(u, promoted, picked, bool(listed)) is None and states_of_event(asked, u, picked):
                return listed, picked, None
        return None

    def _picked(self, u: Understanding, hits: Sequence[Hit]) -> tuple[tuple | None, list[compose.Picked]]:
        """(the listed section and its items, or None; the sentences an answer would quote)."""
        ours = compose.own_place_first(u, hits)
        listed = list_items(self.index, u, ours)
        picked = with_cited(self.index, listed[1] if listed else compose.pick_sentences(u, ours))
        picked += self._sanction(u, picked) if not listed else []
        return listed, supported(read_asked(u, self.index.vocabulary()), picked, u)

    def _sanction(self, u: Understanding, picked: Sequence[compose.Picked]) -> list[compose.Picked]:
        """The sentence of its law that says what befalls whoever breaks the rule quoted (references.sanction_of),
        when the answer quotes one law article only and the question asks whether something may be done
        ("能印…吗") or what befalls whoever does it ("会怎么罚")."""
        if not (polarity.asks_permission(u.query) or asks_sanction(u.query)):
            return []
        if not picked or len({p.hit.chunk.clause_id for p in picked}) != 1:
            return []
        found = sanction_of(self.index, picked[0].hit, [p.sentence for p in picked])
        if not found:
            return []
        hit, off, sentence = found
        return [compose.Picked(1, hit.chunk.start + off, sentence, hit)]

    def scope_features(self, question: str, history: Sequence[dict] = (), k: int = 10):
        """(the features ``assistant.scope`` judges a question's fit to this knowledge base by, whether
        it judges the question at all), for training it: ``python -m eval.train_scope``."""
        with self.index.snapshot():
            u = self.understand(question, history)
            hits = retrieve_understood(self.index, u, k=k, settings=self.retrieval)
            return scope_features(u, hits, self._picked(u, hits)[1], self.index.vocabulary(),
                                  *self._scope_vectors(u)(compose.clause_hits(hits)[:1])), judged(u)

    def _scope_vectors(self, u: Understanding) -> ScopeVectors:
        """The question's embedding and the best clause's, for the scope model (assistant/scope.py)."""
        def vectors(best: Sequence[Hit]):
            clause = self.index.clause_vector(best[0].chunk.clause_id) if best else None
            return self.index.query_vector(u.query), clause
        return vectors

    def _sources(self, answer: Answer, limit: int = 5) -> list[Citation]:
        """Numbered clauses for the LLM: the extractive answer's citations first, then the next best."""
        sources = list(answer.citations)
        have = {c.clause_id for c in sources}
        for h in compose.clause_hits(answer.hits):
            if len(sources) >= limit:
                break
            if h.chunk.clause_id not in have:
                have.add(h.chunk.clause_id)
                sources.append(Citation(n=len(sources) + 1, clause_id=h.chunk.clause_id, doc_id=h.chunk.doc_id,
                                        title=h.title, doc_number=h.doc_number, path=h.path, citation=h.citation,
                                        quote="", text=h.chunk.text))
        return sources

    def _with_llm(self, u: Understanding, extractive: Answer) -> Answer:
        sources = self._sources(extractive)
        try:
            reply = self.llm.complete(build_messages(u.query, sources))
        except LLMError as exc:
            log.warning("LLM failed, keeping the extractive answer: %s", exc)
            return replace(extractive, notes=extractive.notes + ("大模型服务不可用，已给出摘录式回答",))
        return self._checked(reply, sources, extractive, u)

    def _checked(self, reply: str, sources: Sequence[Citation], extractive: Answer, u: Understanding) -> Answer:
        """The LLM's answer if its figures are in the clauses it cites and it answers what was asked
        (assistant/verify.py, the checks the extractive answer passed); else the extractive answer."""
        text, used, problems = check_answer(reply, sources)
        heads = " ".join(f"{s.title} {' '.join(s.path)}" for s in sources if s.n in used)
        asked = resolve_relative(read_asked(u, self.index.vocabulary()), [s.doc_id for s in sources if s.n in used],
                                 own_years(self.index.documents()))
        kinds = {h.chunk.doc_id: h.kind for h in extractive.hits}
        rules = any(kinds.get(s.doc_id) in LAW_KINDS for s in sources if s.n in used)
        failed = check_reply(asked, text, heads, u, rules) if text else None
        if failed:
            problems.append(f"answers another question ({failed.reason}: {', '.join(failed.missing)})")
        if problems or not text:
            log.warning("LLM answer rejected (%s); using the extractive answer", "; ".join(problems) or "empty")
            return replace(extractive, notes=extractive.notes + ("大模型回答未通过核对，已改用摘录式回答",))
        kept = [s for s in sources if s.n in used]
        renumber = {s.n: i for i, s in enumerate(kept, start=1)}
        text = re.sub(r"\[(\d+)\]", lambda m: f"[{renumber[int(m.group(1))]}]", text)
        citations = tuple(replace(s, n=renumber[s.n], quote=s.quote or s.text.strip()) for s in kept)
        text += self._relative_note(u, [c.doc_id for c in citations])
        # the verdict read the quoted sentences; the generated text says its own yes or no
        return replace(extractive, text=text, citations=citations, mode="llm", verdict=None)

    def ask_stream(self, question: str, history: Sequence[dict] = (), *,
                   filters: Filters | None = None) -> Iterator[tuple[str, Answer | None]]:
        """Yield (text so far, None) while an LLM streams, then (final text, Answer).

        Without an LLM the extractive answer arrives in one piece. A streamed
        answer that fails the checks is replaced by the extractive one at the end.
        """
        extractive = self.ask(question, history, filters=filters, use_llm=False)
        if not self.llm or extractive.abstained:
            yield extractive.text, extractive
            return
        u = self.understand(question, history)
        sources = self._sources(extractive)
        text = ""
        try:
            for delta in self.llm.stream(build_messages(u.query, sources)):
                text += delta
                yield text, None
        except LLMError as exc:
            log.warning("LLM stream failed: %s", exc)
            final = replace(extractive, notes=extractive.notes + ("大模型服务不可用，已给出摘录式回答",))
            yield final.text, final
            return
        final = self._checked(text, sources, extractive, u)
        yield final.text, final

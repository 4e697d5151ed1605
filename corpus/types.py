"""Typed records passed between the stages of ipqa (frozen dataclasses).

Offsets (``start``/``end``) are character offsets into ``Document.text``, the
cleaned text; ``Document.text[c.start:c.end] == c.text`` for every clause.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Clause:
    """One node of a document's clause tree.

    Clauses partition the cleaned text: each owns the span from its heading to
    the next heading of any level, so a chapter heading owns only its heading
    line and an article owns all of its paragraphs (款).
    """

    clause_id: str  # stable: doc_id + ":" + "/".join(labels of the path)
    doc_id: str
    path: tuple[str, ...]  # heading chain as shown, e.g. ("第六章 专利权的保护", "第七十一条")
    label: str  # own marker as cited: "第七十一条", "四、", "(二)", "9.", "前言"
    number: str | None  # normalised marker: "第71条", "4、", "(2)", "9." ; None for 前言/通知
    level: str  # heading kind: 编 章 节 条 一、 (一) 1. (1) ① 通知 前言 题注 附件
    heading: str  # heading text of this clause (may be a run-in heading)
    text: str  # exact slice of Document.text, heading included
    start: int
    end: int
    parent_id: str | None = None
    paragraph_starts: tuple[int, ...] = (0,)  # offsets of 款 (paragraphs) relative to start

    @property
    def depth(self) -> int:
        return len(self.path)

    @property
    def body(self) -> str:
        """Clause text without surrounding whitespace."""
        return self.text.strip()

    def paragraph_index(self, offset: int) -> int:
        """1-based paragraph (款) that holds ``offset`` (absolute, into Document.text)."""
        rel = offset - self.start
        index = 0
        for i, p in enumerate(self.paragraph_starts):
            if p <= rel:
                index = i
        return index + 1


@dataclass(frozen=True)
class Revision:
    """One line of a law's revision history: when and what happened."""

    date: dt.date
    note: str


def period_label(period: tuple[int, int] | None) -> str:
    """2021–2025, or 2023 for a single year ("" without a period)."""
    if not period:
        return ""
    a, b = period
    return str(a) if a == b else f"{a}–{b}"


@dataclass(frozen=True)
class Document:
    """A loaded, cleaned and structured document."""

    doc_id: str
    title: str
    text: str  # cleaned text that clause offsets point into
    clauses: tuple[Clause, ...]
    kind: str  # 实施方案 规划 工作要点 法律 行政法规 司法解释 地方性法规 部门规章 ...
    issuer: str | None = None
    doc_number: str | None = None  # 文号, e.g. 芙政办发〔2017〕33号
    issued: dt.date | None = None
    region: tuple[str, ...] = ()  # from province down, e.g. ("湖南省", "长沙市", "芙蓉区"); ("全国",)
    region_aliases: tuple[str, ...] = ()  # every name the region goes by, for matching questions
    period: tuple[int, int] | None = None  # years the policy covers, inclusive
    revisions: tuple[Revision, ...] = ()
    collection: str = ""
    source_path: str = ""
    source_format: str = ""  # txt md html pdf docx
    content_hash: str = ""  # sha256 of the file's bytes
    notes: tuple[str, ...] = field(default=())  # what cleaning did, in Chinese, for previews

    @cached_property
    def _by_id(self) -> dict[str, Clause]:
        return {c.clause_id: c for c in self.clauses}

    def clause(self, clause_id: str) -> Clause:
        return self._by_id[clause_id]

    def children(self, clause_id: str | None) -> list[Clause]:
        """Direct children of a clause (``None``: the top level)."""
        return [c for c in self.clauses if c.parent_id == clause_id]

    def find_number(self, number: str) -> list[Clause]:
        """Clauses whose normalised number equals ``number`` (e.g. "第71条")."""
        return [c for c in self.clauses if c.number == number]

    def ancestors(self, clause: Clause) -> list[Clause]:
        """The clause's chain from the top level down, itself included."""
        by_id = self._by_id
        chain = [clause]
        while chain[0].parent_id:
            chain.insert(0, by_id[chain[0].parent_id])
        return chain

    def citation(self, clause: Clause) -> str:
        """Copy-ready citation: 《标题》（文号）四、(二)9., 《标题》二、发展目标 (a top-level part) or
        《中华人民共和国专利法》第七十一条."""
        if clause.level == "条":
            where = clause.label
        elif clause.number is None:
            where = clause.label
        else:
            chain = self.ancestors(clause)
            where = "".join(c.label for c in chain)
            if len(chain) == 1 and clause.heading.startswith(clause.label):
                where = clause.heading  # a top-level part by its words: 二、发展目标, not a bare 二、
        number = f"（{self.doc_number}）" if self.doc_number else ""
        return f"《{self.title}》{number}{where}"

    @property
    def region_name(self) -> str:
        return self.region[-1] if self.region else ""

    @property
    def period_label(self) -> str:
        return period_label(self.period)


@dataclass(frozen=True)
class Chunk:
    """What is embedded and keyword-indexed: one clause, or one piece of a long clause.

    ``text`` is shown and cited (the clause's own words); ``context`` (title,
    region, heading path) is prepended only for embedding and BM25.
    """

    chunk_id: str  # clause_id + "#" + piece number
    clause_id: str
    doc_id: str
    text: str
    context: str
    start: int  # offsets into Document.text
    end: int
    part: int = 0
    parts: int = 1

    @property
    def indexed_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk, where it sits, and how each retriever scored it."""

    chunk: Chunk
    rank: int  # 1-based
    score: float  # the fused (or single-mode) score used for ranking
    scores: dict[str, float]  # per retriever: {"dense": cosine, "bm25": bm25 score}
    title: str
    path: tuple[str, ...]
    doc_number: str | None = None
    region: tuple[str, ...] = ()
    kind: str = ""
    issued: dt.date | None = None
    citation: str = ""


@dataclass(frozen=True)
class Citation:
    """One [n] of an answer: the clause behind it and the words quoted from it."""

    n: int
    clause_id: str
    doc_id: str
    title: str
    doc_number: str | None
    path: tuple[str, ...]
    citation: str  # copy-ready: 《标题》（文号）四、(二)9.
    quote: str  # the exact words the answer used (sentences joined by "……")
    text: str  # the whole clause
    # The articles of its own law that the quoted sentences cite by number ("违反本法第九条规定…" → 第九条),
    # shown beside the clause so the answer reads whole (assistant/references.py); each with quote "".
    refers: tuple["Citation", ...] = ()


@dataclass(frozen=True)
class Answer:
    """The assistant's reply to one question."""

    question: str
    text: str  # with [n] markers; for abstentions, the "not found" message
    citations: tuple[Citation, ...]
    abstained: bool
    rewritten_query: str | None  # the standalone question used, when it differs from the question
    hits: tuple[Hit, ...]
    related: tuple[Citation, ...] = ()  # nearest clauses shown as 可能相关 when abstaining
    intent: str = "fact"
    mode: str = "extractive"  # extractive | llm
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    notes: tuple[str, ...] = ()  # why it abstained, what fell back, …
    # When it abstains: which check failed (assistant/verify.py REASONS: place, subject, figure, period,
    # relevance, no_hits) and the parts of the question the documents lack (高价值发明专利, 2024年).
    reason: str | None = None
    missing: tuple[str, ...] = ()
    # A yes/no question answered plainly (assistant/polarity.py): "yes" or "no"; None when the quoted
    # sentences give no plain yes or no, or the question asks none.
    verdict: str | None = None

"""Clause-aware chunks: one clause per chunk when it fits, split at sentence ends when not."""

from __future__ import annotations

from dataclasses import dataclass

from corpus.clean import compact
from corpus.types import Chunk, Clause, Document

# Sentence ends first, then semicolons, then commas; "" only for a run-on
# sentence longer than the limit (no punctuation to split at).
SEPARATORS = ["\n", "[。！？!?]", "[；;]", "[，,]", ""]


@dataclass(frozen=True)
class ChunkerSettings:
    max_chars: int = 400  # multilingual-e5 reads 512 tokens; Chinese is about one token a character
    sentences: bool = True  # also embed each sentence of a chunk (index.sentences)
    # A chunk's own vector: "embed" its text, or the "mean" of its sentence vectors (no second
    # pass over the same words: about the cost of embedding the chunks alone).
    chunk_vector: str = "embed"

    def as_dict(self) -> dict:
        return {"max_chars": self.max_chars, "separators": SEPARATORS, "sentences": self.sentences,
                "chunk_vector": self.chunk_vector, "version": 2}


def clause_context(doc: Document, clause: Clause) -> str:
    """Title, region and heading path of a clause, as one line for embedding and BM25."""
    parts = [f"《{doc.title}》"]
    if doc.region and doc.region != ("全国",):
        parts.append(doc.region[-1])
    if doc.period:
        parts.append(doc.period_label)
    ancestors = doc.ancestors(clause)[:-1]
    parts.extend(c.heading for c in ancestors if c.number is not None)
    return " ".join(parts)


def _is_heading_only(clause: Clause) -> bool:
    """A clause that is just its heading ("第一章 总 则", "三、主要任务")."""
    return compact(clause.text) == compact(clause.heading)


def _split(text: str, max_chars: int) -> list[tuple[int, str]]:
    """Pieces of ``text`` no longer than ``max_chars``, cut at sentence ends; (offset, piece)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=max_chars, chunk_overlap=0, separators=SEPARATORS, is_separator_regex=True,
        keep_separator="end", strip_whitespace=False)
    pieces, cursor = [], 0
    for piece in splitter.split_text(text):
        at = text.find(piece, cursor)
        if at < 0:  # the splitter returns substrings; this guards against future changes
            raise ValueError("splitter returned text that is not in the clause")
        cursor = at + len(piece)
        if piece.strip():
            pieces.append((at, piece))
    return pieces


def chunk_document(doc: Document, settings: ChunkerSettings = ChunkerSettings()) -> list[Chunk]:
    """Chunks of a document in order. Heading-only clauses (a chapter title) give none."""
    chunks: list[Chunk] = []
    for clause in doc.clauses:
        if _is_heading_only(clause):
            continue
        context = clause_context(doc, clause)
        text = clause.text.rstrip()
        if len(text) <= settings.max_chars:
            pieces = [(0, text)]
        else:
            pieces = _split(text, settings.max_chars)
        for i, (offset, piece) in enumerate(pieces):
            stripped = piece.strip()
            lead = len(piece) - len(piece.lstrip())
            start = clause.start + offset + lead
            chunks.append(Chunk(
                chunk_id=f"{clause.clause_id}#{i}", clause_id=clause.clause_id, doc_id=doc.doc_id,
                text=stripped, context=context, start=start, end=start + len(stripped),
                part=i, parts=len(pieces)))
    return chunks

"""The naive pipeline people build with LangChain defaults, for comparison in every eval run.

RecursiveCharacterTextSplitter with 500 characters and 50 overlap over each
document's (cleaned) text, the same embedder as ipqa, exact FAISS inner
product, dense only. Its chunks ignore clause boundaries, so to be judged at
clause level each retrieved chunk stands for the clauses it overlaps, the
largest overlap first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corpus.types import Document

log = logging.getLogger(__name__)

CHUNK_SIZE = 500
CHUNK_OVERLAP = 50


@dataclass(frozen=True)
class NaiveChunk:
    doc_id: str
    start: int
    end: int
    text: str
    clauses: tuple[str, ...]  # overlapped clause ids, largest overlap first


def naive_chunks(doc: Document) -> list[NaiveChunk]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP,
                                              add_start_index=True)
    out = []
    for piece in splitter.create_documents([doc.text]):
        start = piece.metadata["start_index"]
        end = start + len(piece.page_content)
        overlaps = [(min(end, c.end) - max(start, c.start), c.clause_id) for c in doc.clauses
                    if c.start < end and c.end > start]
        overlaps.sort(key=lambda x: -x[0])
        out.append(NaiveChunk(doc.doc_id, start, end, piece.page_content, tuple(cid for _, cid in overlaps)))
    return out


class NaiveLangChainPipeline:
    name = "naive-langchain"

    def __init__(self, documents: Sequence[Document], embedder):
        from index.stores import FaissStore
        from index.vector_cache import passage_vectors

        self.embedder = embedder
        self.chunks = [c for d in documents for c in naive_chunks(d)]
        started = time.perf_counter()
        # Kept in the model's vector cache like an index build's: a later eval (another --out, the
        # app's eval tab, a store on PostgreSQL) embeds only chunks of documents that changed.
        vectors = passage_vectors(embedder, [c.text for c in self.chunks])
        log.info("naive baseline: %d chunks ready in %.1fs", len(self.chunks), time.perf_counter() - started)
        self.index = FaissStore(vectors.shape[1])  # exact inner product, like LangChain's FAISS default
        self.index.add(np.arange(len(vectors), dtype=np.int64), vectors)

    def ranked_clauses(self, question: str, k: int = 10) -> list[str]:
        vector = self.embedder.encode_queries([question])[0]
        ranked: list[str] = []
        for i, _ in self.index.search(vector, k):
            ranked.extend(c for c in self.chunks[i].clauses if c not in ranked)
        return ranked

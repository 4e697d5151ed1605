"""Retrieval as the assistant does it: the one function that eval and the chat share.

For now the question goes to hybrid search as it is; question understanding
(places, clause numbers, follow-ups) comes with the assistant.
"""

from __future__ import annotations

from collections.abc import Sequence

from corpus.types import Hit
from index.core import Filters, KnowledgeIndex


def retrieve(ix: KnowledgeIndex, question: str, *, history: Sequence[dict] = (), k: int = 10,
             mode: str = "hybrid", filters: Filters | None = None) -> list[Hit]:
    """The top ``k`` chunks for a question (``history``: earlier turns, unused so far)."""
    return ix.search(question, k, mode=mode, filters=filters)

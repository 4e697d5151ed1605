"""Answers and hits as plain JSON: what ``ipqa ask --json``, ``ipqa search --json`` and the
web API return, so every interface gives the same fields."""

from __future__ import annotations

from corpus.types import Answer, Citation, Hit


def hit_json(hit: Hit) -> dict:
    return {"rank": hit.rank, "chunk_id": hit.chunk.chunk_id, "clause_id": hit.chunk.clause_id,
            "doc_id": hit.chunk.doc_id, "title": hit.title, "clause_path": list(hit.path), "text": hit.chunk.text,
            "score": round(hit.score, 6), "scores": {k: round(v, 6) for k, v in hit.scores.items()},
            "citation": hit.citation}


def citation_json(c: Citation) -> dict:
    return {"n": c.n, "doc_id": c.doc_id, "title": c.title, "doc_number": c.doc_number, "clause_id": c.clause_id,
            "clause_path": list(c.path), "citation": c.citation, "quote": c.quote, "text": c.text,
            "refers": [{"clause_id": r.clause_id, "citation": r.citation, "text": r.text} for r in c.refers]}


def answer_json(answer: Answer, hits: int = 10) -> dict:
    return {
        "answer": answer.text, "abstained": answer.abstained, "reason": answer.reason,
        "missing": list(answer.missing), "verdict": answer.verdict, "rewritten_query": answer.rewritten_query,
        "intent": answer.intent, "mode": answer.mode,
        "citations": [citation_json(c) for c in answer.citations],
        "related": [{"clause_id": c.clause_id, "citation": c.citation, "quote": c.quote} for c in answer.related],
        "hits": [hit_json(h) for h in answer.hits[:hits]],
        "timings": answer.timings,
        "notes": list(answer.notes),
    }

"""STARD's questions over any index that holds LawRefBook's laws (the whole corpus of 3,475 files, a
slice of it): ``python -m eval.stard_scale --index-dir DIR|URL [--mode bm25|dense|hybrid|pipeline]``.

The STARD dataset names its gold clauses by the ids of ``corpus/stard_laws`` (民法典-合同编:第3章/第509条).
An index built from ``../shared/data/laws`` names the same law by its file's stem (合同编); where two
folders hold a file of the same stem, the second is kept under its folder's prefix. The clause paths
are the same (one parser). ``corpus/SOURCES.json`` records each shipped file's original name, so the
gold is mapped and scored there: hit@10, recall@10 and recall@100 by clause, per split.

With an index of hash vectors (``--embedder hash-bigram-384``, the only way to embed the whole corpus
here in minutes) only ``bm25`` means anything; the e5 index takes about ten hours to build (every
chunk and its 488,000 sentences). ``--chunk-vectors DIR --embedder e5-small-int8`` embeds the index's
chunks alone (about half an hour) into DIR (resumable: one file per 5,000 chunks) and scores
``dense`` (cosine over those vectors) and ``hybrid`` (the index's own fusion of the dense and BM25
rankings, reciprocal rank) over them instead of the index's vectors.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib import resources
from pathlib import Path

import numpy as np

from corpus.documents import make_doc_id
from eval.questions import load_dataset
from index.arrays import load_array


def stard_to_corpus_ids() -> dict[str, str]:
    """{doc id in corpus/stard_laws: doc id of the same file indexed from LawRefBook's folders}."""
    sources = json.loads((Path(str(resources.files("corpus"))) / "SOURCES.json").read_text(encoding="utf-8"))
    return {make_doc_id(name): make_doc_id(info["original_name"])
            for name, info in sources["stard_laws"]["files"].items()}


def corpus_id(doc_id: str, mapped: dict[str, str], held: set[str]) -> str:
    """The id ``doc_id`` has in an index holding ``held``: mapped, or under a folder's prefix."""
    doc = mapped.get(doc_id, doc_id)
    if doc in held:
        return doc
    return next((h for h in sorted(held) if h.endswith(f"-{doc}") or h.endswith(f"-{doc}.md")), doc)


SHARD = 5000  # chunks per file of --chunk-vectors


class ChunkVectors:
    """Every chunk of an index embedded by another embedder, searched by brute-force cosine."""

    def __init__(self, ix, folder: Path, embedder_name: str, shard: int = SHARD):
        from index.embedders import get_embedder

        self.ix, self.embedder = ix, get_embedder(embedder_name)
        self.ids = np.sort(ix.doc_chunk_ids([d.doc_id for d in ix.documents()]))
        folder.mkdir(parents=True, exist_ok=True)
        shards = []
        for n, start in enumerate(range(0, len(self.ids), shard)):
            path = folder / f"{embedder_name}-{n:04d}.npy"
            if not path.exists():
                chunks = ix.chunks(self.ids[start:start + shard].tolist())
                texts = [chunks[int(i)].indexed_text for i in self.ids[start:start + shard]]
                np.save(path, self.embedder.encode_passages(texts).astype(np.float32))
                print(f"embedded {min(start + shard, len(self.ids))} of {len(self.ids)} chunks", flush=True)
            shards.append(load_array(path))
        self.vectors = np.concatenate(shards).astype(np.float32)

    def dense(self, query: str, k: int) -> list[tuple[int, float]]:
        scores = self.vectors @ self.embedder.encode_queries([query])[0]
        top = np.argpartition(-scores, k)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top]

    def search(self, query: str, k: int, mode: str) -> list[int]:
        """Chunk ids, best first: dense alone, or fused with the index's BM25 as the index fuses them."""
        from index.core import RRF_K

        if mode == "dense":
            return [i for i, _ in self.dense(query, k)]
        fused: dict[int, float] = {}
        for results in (self.dense(query, k), self.ix.keyword(query, k)):
            for rank, (cid, _) in enumerate(results, start=1):
                fused[cid] = fused.get(cid, 0.0) + 1 / (RRF_K + rank)
        return [cid for cid, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _pipeline(ix):
    """The assistant's own retrieval (question reading, four searches, the learned ranker), 300 chunks deep."""
    from assistant.retrieval import retrieve
    from assistant.understanding import QuestionReader

    reader = QuestionReader.for_index(ix)

    def ranked(question: str) -> list[str]:
        ix.clear_query_cache()
        return list(dict.fromkeys(h.chunk.clause_id for h in retrieve(ix, question, k=300, reader=reader)))
    return ranked


def _ranker(ix, vectors: ChunkVectors | None, mode: str):
    """question -> clause ids, best first, by ``mode``."""
    if mode == "pipeline":
        return _pipeline(ix)
    if vectors is None or mode == "bm25":
        return lambda q: list(dict.fromkeys(h.chunk.clause_id for h in ix.search(q, k=300, mode=mode)))

    def ranked(question: str) -> list[str]:
        ids = vectors.search(question, 300, mode)
        chunks = ix.chunks(ids)
        return list(dict.fromkeys(chunks[i].clause_id for i in ids if i in chunks))
    return ranked


def score(index_dir: Path | str, split: str, mode: str, vectors_dir: Path | None = None,
          embedder: str = "e5-small-int8") -> dict[str, float]:
    from index.core import KnowledgeIndex

    ix = KnowledgeIndex.open(index_dir)
    vectors = ChunkVectors(ix, vectors_dir, embedder) if vectors_dir else None
    rank = _ranker(ix, vectors, mode)
    held = {d.doc_id for d in ix.documents()}
    mapped = stard_to_corpus_ids()
    questions = [q for q in load_dataset("stard").questions if q.split == split and q.gold]
    hit1, hit10, recall10, recall100, absent = [], [], [], [], 0
    started = time.perf_counter()
    for q in questions:
        gold = set()
        for g in q.gold:
            doc, path = g.clause_id.split(":", 1)
            doc = corpus_id(doc, mapped, held)
            absent += doc not in held
            gold.add(f"{doc}:{path}")
        clauses = rank(q.question)
        hit1.append(float(bool(gold & set(clauses[:1]))))
        hit10.append(float(bool(gold & set(clauses[:10]))))
        recall10.append(len(gold & set(clauses[:10])) / len(gold))
        recall100.append(len(gold & set(clauses[:100])) / len(gold))
    return {"questions": len(questions), "documents": len(held), "gold_documents_absent": absent,
            "hit@1": round(statistics.fmean(hit1), 3), "hit@10": round(statistics.fmean(hit10), 3),
            "recall@10": round(statistics.fmean(recall10), 3), "recall@100": round(statistics.fmean(recall100), 3),
            "ms_per_question": round((time.perf_counter() - started) * 1000 / max(1, len(questions)), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description="STARD 问题在任意收录 LawRefBook 法律的索引上的召回（如全部 3,475 部法律）")
    parser.add_argument("--index-dir", required=True, help="索引目录，或 PostgreSQL 知识库的地址（postgresql://…）")
    parser.add_argument("--mode", default="bm25", choices=["bm25", "dense", "hybrid", "pipeline"],
                        help="检索方式（默认 bm25；pipeline 为助手自己的完整检索：问题理解、四路检索与排序模型）")
    parser.add_argument("--split", nargs="+", default=["train", "test"], help="STARD 的划分（默认 train test）")
    parser.add_argument("--chunk-vectors", metavar="DIR",
                        help="用 --embedder 另行向量化索引中的全部片段（不含句子），存入此目录（可续跑），dense 与 hybrid 用这些向量")
    parser.add_argument("--embedder", default="e5-small-int8", help="--chunk-vectors 所用的向量模型（默认 e5-small-int8）")
    args = parser.parse_args()
    from assistant.indexing import index_location

    location = index_location(args.index_dir)  # a folder, or a shared database's URL
    vectors = Path(args.chunk_vectors) if args.chunk_vectors else None
    for split in args.split:
        print(json.dumps({"index": args.index_dir, "mode": args.mode, "split": split,
                          "vectors": f"{args.embedder}, chunks only" if vectors else "the index's",
                          **score(location, split, args.mode, vectors, args.embedder)},
                         ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

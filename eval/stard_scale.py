"""STARD's questions over any index that holds LawRefBook's laws (the whole corpus of 3,475 files, a
slice of it): ``python -m eval.stard_scale --index-dir DIR [--mode bm25|dense|hybrid]``.

The STARD dataset names its gold clauses by the ids of ``corpus/stard_laws`` (民法典-合同编:第3章/第509条).
An index built from ``../shared/data/laws`` names the same law by its file's stem (合同编); where two
folders hold a file of the same stem, the second is kept under its folder's prefix. The clause paths
are the same (one parser). ``corpus/SOURCES.json`` records each shipped file's original name, so the
gold is mapped and scored there: hit@10, recall@10 and recall@100 by clause, per split.

With an index of hash vectors (``--embedder hash-bigram-384``, the only way to embed the whole corpus
here in minutes) only ``bm25`` means anything; the e5 index takes about ten hours to build.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib import resources
from pathlib import Path

from corpus.documents import make_doc_id
from eval.questions import load_dataset


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


def score(index_dir: Path, split: str, mode: str) -> dict[str, float]:
    from index.core import KnowledgeIndex

    ix = KnowledgeIndex.open(index_dir)
    held = {d.doc_id for d in ix.documents()}
    mapped = stard_to_corpus_ids()
    questions = [q for q in load_dataset("stard").questions if q.split == split and q.gold]
    hit10, recall10, recall100, absent = [], [], [], 0
    started = time.perf_counter()
    for q in questions:
        gold = set()
        for g in q.gold:
            doc, path = g.clause_id.split(":", 1)
            doc = corpus_id(doc, mapped, held)
            absent += doc not in held
            gold.add(f"{doc}:{path}")
        clauses = list(dict.fromkeys(h.chunk.clause_id for h in ix.search(q.question, k=300, mode=mode)))
        hit10.append(float(bool(gold & set(clauses[:10]))))
        recall10.append(len(gold & set(clauses[:10])) / len(gold))
        recall100.append(len(gold & set(clauses[:100])) / len(gold))
    return {"questions": len(questions), "documents": len(held), "gold_documents_absent": absent,
            "hit@10": round(statistics.fmean(hit10), 3), "recall@10": round(statistics.fmean(recall10), 3),
            "recall@100": round(statistics.fmean(recall100), 3),
            "ms_per_question": round((time.perf_counter() - started) * 1000 / max(1, len(questions)), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description="STARD 问题在任意收录 LawRefBook 法律的索引上的召回（如全部 3,475 部法律）")
    parser.add_argument("--index-dir", required=True, help="索引目录")
    parser.add_argument("--mode", default="bm25", choices=["bm25", "dense", "hybrid"], help="检索方式（默认 bm25）")
    parser.add_argument("--split", nargs="+", default=["train", "test"], help="STARD 的划分（默认 train test）")
    args = parser.parse_args()
    for split in args.split:
        print(json.dumps({"index": args.index_dir, "mode": args.mode, "split": split,
                          **score(Path(args.index_dir), split, args.mode)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

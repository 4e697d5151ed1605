"""Build the map of Chinese law the scope model compares a question with: ``python -m eval.law_map``.

A question outside the knowledge base often fits *some* clause of it well enough (e5-small puts
every question above cosine 0.86 to one), so how well the best clause fits says little alone. How
well the question fits the rest of Chinese law says more: "离婚后孩子抚养权归谁" stands far closer to
the marriage and family laws than to any IP clause; "专利保护几年" stands closest to the patent law, and
so does the clause that answers it. The map is one point per national law of LawRefBook (1,523
laws, administrative regulations, departmental rules and judicial interpretations; local regulations
and cases are left out): the unit-length mean of its chunk vectors. The scope model (``assistant/scope.py``) reads how much better the question's three closest
laws fit the question than they fit the clause the knowledge base would answer with.

Made from an index of the whole law corpus, built once (the embedding of its 155,117 chunks and
their sentences is most of it: hours with the float32 model on two cores, minutes when the vector
cache already holds them; docs/scaling.md):

    ipqa index --index-dir DIR --collection laws --corpus ../shared/data/laws
    python -m eval.law_map --index-dir DIR

It writes ``assistant/data/law_map.npy`` (float16, one row per law) and ``law_map.json`` (the
embedder, the laws in row order and the sha256 of the array; a test checks it). Retrain the scope
model after it (``python -m eval.train_scope``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from assistant.scope import LAW_MAP_FILE, LAW_MAP_INFO

DATA_DIR = Path(__file__).resolve().parent.parent / "assistant" / "data"
# Local regulations restate national law for one city or province, narrowly (宁波市企业技术秘密保护条例,
# 浙江省专利条例): with them, a trade-secret question fitted a city's regulation better than 反不正当竞争法,
# which answers it. Cases are judgements, not law. The map keeps the fields of national law.
LEFT_OUT_KINDS = ("地方性法规", "案例")


def array_hash(path) -> str:
    """sha256 of the file at ``path`` (a path or an ``importlib.resources`` file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(index_dir: str, out_dir: Path) -> dict:
    """Write the map of the laws of the index at ``index_dir`` into ``out_dir``; return its record."""
    from index.core import KnowledgeIndex

    ix = KnowledgeIndex.open(index_dir)
    doc_ids, centroids = ix.document_centroids(d.doc_id for d in ix.documents() if d.kind not in LEFT_OUT_KINDS)
    if not doc_ids:
        raise SystemExit(f"索引 {index_dir} 中没有文件，无法生成法律地图")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LAW_MAP_FILE
    np.save(path, centroids.astype(np.float16))
    info = {"embedder": ix.embedder.name, "laws": len(doc_ids), "sha256": array_hash(path),
            "source": "LawRefBook (../shared/data/laws): every document of the index but " + "、".join(LEFT_OUT_KINDS),
            "doc_ids": doc_ids}
    (out_dir / LAW_MAP_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="由整个法律语料的索引生成范围模型用的法律地图（每部法律一个向量）")
    parser.add_argument("--index-dir", required=True, help="整个法律语料的索引目录或数据库地址")
    parser.add_argument("--out", default=str(DATA_DIR), help="输出目录（默认 assistant/data）")
    args = parser.parse_args(argv)
    info = build(args.index_dir, Path(args.out))
    print(json.dumps({k: info[k] for k in ("embedder", "laws", "sha256")}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

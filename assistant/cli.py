"""The ``ipqa`` command. Help and output are in Chinese; flags are English."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Sequence

from corpus.errors import IpqaError


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` display columns (CJK counts 2) and pad it."""
    out, used = "", 0
    for ch in text:
        w = _width(ch)
        if used + w > width - (1 if _width(text) > width else 0):
            out += "…"
            used += 1
            break
        out += ch
        used += w
    return out + " " * max(0, width - used)


def print_table(rows: list[dict], columns: list[tuple[str, str, int | None]], out=sys.stdout) -> None:
    """Print ``rows`` as an aligned table: columns are (key, Chinese header, width).

    A width of None fits the column to its longest value, so ids are never cut.
    """
    columns = [(key, head, w if w is not None else max([_width(head)] + [_width(str(r.get(key, ""))) for r in rows]))
               for key, head, w in columns]
    print("  ".join(_fit(head, w) for _, head, w in columns).rstrip(), file=out)
    print("  ".join("-" * w for _, _, w in columns), file=out)
    for row in rows:
        print("  ".join(_fit(str(row.get(key, "")), w) for key, _, w in columns).rstrip(), file=out)


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", action="append", metavar="NAME",
                   help="内置文档集：policies（地方政策）或 laws（国家法律法规），可重复；默认两者都用")
    p.add_argument("--corpus", action="append", metavar="DIR", default=[],
                   help="额外的文档文件夹（.txt .md .html .pdf .docx），可重复")


def _load(args):
    from assistant import ALL_BUNDLED, load_documents

    collections = args.collection if args.collection else ([] if args.corpus else list(ALL_BUNDLED))
    return load_documents(collections, args.corpus)


def cmd_docs_list(args) -> int:
    from assistant import describe

    report = _load(args)
    rows = [describe(d) for d in report.documents]
    if args.json:
        print(json.dumps({"documents": rows, "failures": [
            {"file": f.name, "reason": f.reason} for f in report.failures]}, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        row["region"] = row["region"].split(" / ")[-1]
    columns = [("doc_id", "文档ID", None), ("title", "标题", 36), ("kind", "类型", None),
               ("issuer", "发文机关", 20), ("doc_number", "文号", None), ("issued", "日期", 10),
               ("region", "地区", None), ("period", "期限", None), ("clauses", "条款数", 6)]
    print_table(rows, columns)
    print()
    print(report.summary())
    return 0


def cmd_docs_show(args) -> int:
    from assistant import describe

    report = _load(args)
    matches = [d for d in report.documents if d.doc_id == args.doc_id]
    if not matches:
        print(f"找不到文档「{args.doc_id}」。可用 `ipqa docs list` 查看文档ID。", file=sys.stderr)
        return 2
    doc = matches[0]
    info = describe(doc)
    labels = [("title", "标题"), ("kind", "类型"), ("issuer", "发文机关"), ("doc_number", "文号"),
              ("issued", "日期"), ("region", "地区"), ("period", "期限"), ("source", "来源文件"),
              ("clauses", "条款数")]
    for key, label in labels:
        if info[key] != "":
            print(f"{label}：{info[key]}")
    if doc.region_aliases:
        print(f"地区别名：{'、'.join(doc.region_aliases)}")
    for rev in doc.revisions:
        print(f"沿革：{rev.date.isoformat()} {rev.note}")
    if doc.notes:
        print(f"清洗记录：{'；'.join(doc.notes)}")
    print()
    for clause in doc.clauses:
        indent = "  " * (clause.depth - 1)
        if args.text:
            print(f"{indent}[{clause.clause_id}]")
            for line in clause.text.rstrip("\n").split("\n"):
                print(f"{indent}  {line}")
        else:
            print(f"{indent}{clause.heading}  （{len(clause.body)} 字）")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipqa", description="知识产权政策问答助手（ipqa）：离线检索地方知识产权政策与国家法律法规，并给出条款出处。")
    sub = parser.add_subparsers(dest="command", metavar="命令")

    docs = sub.add_parser("docs", help="查看知识库中的文档")
    docs_sub = docs.add_subparsers(dest="docs_command", metavar="子命令")
    p = docs_sub.add_parser("list", help="列出文档及其元数据（标题、发文机关、文号、日期、地区、条款数）")
    _add_source_args(p)
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.set_defaults(func=cmd_docs_list)
    p = docs_sub.add_parser("show", help="显示一个文档的元数据与条款结构")
    p.add_argument("doc_id", help="文档ID（见 ipqa docs list）")
    _add_source_args(p)
    p.add_argument("--text", action="store_true", help="同时显示每个条款的全文")
    p.set_defaults(func=cmd_docs_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return args.func(args)
    except IpqaError as exc:
        print(f"错误：{exc.user_message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ipqa docs list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())

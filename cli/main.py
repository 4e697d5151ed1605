"""The ``ipqa`` command. Help and output are in Chinese; flags are English."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence

from assistant.records import answer_json, hit_json
from corpus.errors import InvalidParameter, IpqaError
from corpus.types import period_label
from ui.tables import print_table


def _max_file_mb(value: str) -> float:
    try:
        mb = float(value)
    except ValueError:
        mb = 0.0
    if not mb > 0 or mb != mb or mb == float("inf"):
        raise argparse.ArgumentTypeError(f"应为大于 0 的数字（单位 MB），而不是「{value}」")
    return mb


def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="URL",
                   help="共享的 PostgreSQL 知识库（postgresql://用户@主机:5432/库名；也可用环境变量 IPQA_DATABASE_URL），"
                        "取代 --index-dir")


def _use_store(args) -> None:
    """--store names a PostgreSQL database; it takes the place of --index-dir for every command."""
    from index.pg import is_database_url

    store = getattr(args, "store", None)
    if store is None:
        return
    if not is_database_url(store):
        raise InvalidParameter(f"--store 应为 PostgreSQL 地址（postgresql://用户@主机:5432/库名），而不是「{store}」")
    if getattr(args, "index_dir", None):
        raise InvalidParameter("--store 与 --index-dir 只能指定一个")
    args.index_dir = store


def _add_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-file-mb", type=_max_file_mb, metavar="MB",
                   help="单个文件的大小上限（MB，默认 200；也可用环境变量 IPQA_MAX_FILE_MB）")


def _apply_size_limit(args) -> None:
    """--max-file-mb wins over IPQA_MAX_FILE_MB; set in the environment so parallel loaders see it too."""
    import os

    from corpus.loaders import max_file_bytes

    if getattr(args, "max_file_mb", None):
        os.environ["IPQA_MAX_FILE_MB"] = repr(args.max_file_mb)
    max_file_bytes()  # a bad IPQA_MAX_FILE_MB stops here with a Chinese message


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", action="append", metavar="NAME",
                   help="内置文档集：policies（地方政策）或 laws（国家法律法规），可重复；默认两者都用")
    p.add_argument("--corpus", action="append", metavar="DIR", default=[],
                   help="额外的文档文件夹（.txt .md .html .pdf .docx），可重复")


def _load(args):
    from assistant import ALL_BUNDLED, load_documents

    collections = args.collection if args.collection else ([] if args.corpus else list(ALL_BUNDLED))
    return load_documents(collections, args.corpus)


def _indexed_rows(index_dir) -> list[dict]:
    from assistant import open_index

    ix = open_index(index_dir)
    try:
        return [{
            "doc_id": d.doc_id, "title": d.title, "collection": d.collection, "kind": d.kind,
            "issuer": d.issuer or "", "doc_number": d.doc_number or "",
            "issued": d.issued.isoformat() if d.issued else "", "region": " / ".join(d.region),
            "period": period_label(d.period),
            "clauses": d.clauses, "chunks": d.chunks, "source": d.source_path} for d in ix.documents()]
    finally:
        ix.close()


def cmd_docs_list(args) -> int:
    from assistant import describe
    from corpus.documents import LoadReport

    if args.index_dir:
        rows, report = _indexed_rows(args.index_dir), LoadReport()
    else:
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
    for row in rows:  # (the title repeats the id of a law: 专利法 / 专利法(2020-10-17))
        row["clauses"] = f"{row['clauses']} 条" if str(row.get("clauses", "")).isdigit() else row.get("clauses", "")
    print_table(rows, columns, max_width=shutil.get_terminal_size((160, 24)).columns)
    print()
    print(f"索引中共有 {len(rows)} 个文档" if args.index_dir else report.summary())
    return 0


def cmd_docs_add(args) -> int:
    from assistant import add_files

    _apply_size_limit(args)
    report = add_files(args.files, args.index_dir or None, progress=not args.quiet)
    print(report.summary())
    return 0 if not report.failures else 1


def cmd_docs_remove(args) -> int:
    from assistant import indexed_document_ids, remove_documents

    known = indexed_document_ids(args.index_dir or None)
    unknown = [d for d in args.doc_ids if d not in known]
    if unknown:
        print(f"索引中没有这些文档：{'、'.join(unknown)}。可用 `ipqa docs list --index-dir` 查看。", file=sys.stderr)
        return 2
    print(remove_documents(args.doc_ids, args.index_dir or None).summary())
    return 0


def cmd_index(args) -> int:
    from assistant import ALL_BUNDLED, default_index_dir, index_sources, location_label

    if args.reembed:
        return _reembed(args)
    _apply_size_limit(args)
    collections = args.collection if args.collection else ([] if args.corpus else list(ALL_BUNDLED))
    index_dir = args.index_dir or default_index_dir()
    print(f"正在建立索引：{location_label(index_dir)}（文档集：{'、'.join(collections) or '无'}；文件夹：{'、'.join(args.corpus) or '无'}）",
          file=sys.stderr)
    report = index_sources(index_dir, collections=collections, folders=args.corpus, embedder=args.embedder,
                           rebuild=args.rebuild, progress=not args.quiet)
    print(report.summary())
    return 0


def _reembed(args) -> int:
    from assistant import default_index_dir, location_label, reembed

    if args.rebuild or args.collection or args.corpus:
        print("--reembed 只更换现有索引的向量，不读取文件：不能与 --rebuild、--collection 或 --corpus 同用", file=sys.stderr)
        return 2
    index_dir = args.index_dir or default_index_dir()
    print(f"正在用向量模型「{args.embedder or '默认'}」重新向量化：{location_label(index_dir)}（可中断，再次运行时接着做）",
          file=sys.stderr)

    def shown(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\r已向量化 {done}/{total} 个文档", end="" if done < total else "\n", file=sys.stderr, flush=True)

    report = reembed(index_dir, embedder=args.embedder, on_progress=shown)
    print(f"已重新向量化 {report.counts.get('documents', 0)} 个文档、{report.chunks_embedded} 个片段（本次向量化 "
          f"{report.texts_embedded} 段文字，用时 {report.embed_seconds:.1f} 秒）；总用时 {report.total_seconds:.1f} 秒"
          f"（其中独占索引 {report.locked_seconds:.1f} 秒）。")
    return 0


def _filters(args):
    from assistant import Filters
    from assistant.params import parse_years

    return Filters(region=args.region, doc_ids=tuple(args.doc or ()), kinds=tuple(args.kind or ()),
                   years=parse_years(args.year), collections=tuple(args.collection or ()))


def _batch_lines(path: str):
    """(line number, row, error) for each non-blank line of a JSON Lines file: a good row has "id" and
    a "question" text and no error; a bad line gets a Chinese error (and its row, if it was JSON)."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise IpqaError(f"无法读取批量文件「{path}」：{exc.strerror or exc}") from exc
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield n, {}, f"第 {n} 行不是 UTF-8 编码的文本"
            continue
        except ValueError as exc:
            yield n, {}, f"第 {n} 行不是有效的 JSON（{exc.msg}，第 {exc.colno} 列）"
            continue
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("question"), str):
            yield n, row if isinstance(row, dict) else {}, f'第 {n} 行应为含 "id" 和 "question"（文字）的 JSON 对象'
            continue
        yield n, row, None


def _run_batch(path: str, answer) -> int:
    """Answer every good line of a batch file (``answer(row) -> dict``), one JSON line out per line in;
    a bad line gets {"id", "line", "error"}. Exit status 1 when any line failed."""
    failed = 0
    for n, row, error in _batch_lines(path):
        out = None
        if error is None:
            try:
                out = {"id": row["id"], **answer(row)}
            except IpqaError as exc:
                error = exc.user_message
        if error is not None:
            out = {"id": row.get("id"), "line": n, "error": error}
            failed += 1
        print(json.dumps(out, ensure_ascii=False), flush=True)
    if failed:
        print(f"{failed} 行未能处理（见输出中的 error）", file=sys.stderr)
    return 1 if failed else 0


def cmd_search(args) -> int:
    from assistant.params import check_k, check_mode
    from assistant.service import Assistant

    filters, k, mode = _filters(args), check_k(args.k), check_mode(args.mode)
    # The assistant's retrieval: places, documents and clause numbers in the query count too.
    assistant = Assistant.open(args.index_dir or None, llm=None)
    try:
        if args.batch:
            return _run_batch(args.batch, lambda row: {"hits": [hit_json(h) for h in assistant.search(
                row["question"], k=k, mode=mode, filters=filters)]})
        if not args.query:
            print("错误：请给出检索内容，或用 --batch 指定问题文件。", file=sys.stderr)
            return 2
        hits = assistant.search(args.query, k=k, mode=mode, filters=filters)
        if args.json:
            print(json.dumps({"query": args.query, "hits": [hit_json(h) for h in hits]}, ensure_ascii=False, indent=2))
            return 0
        if not hits:
            print("没有找到相关条款。")
            return 0
        for h in hits:
            detail = "  ".join(f"{k}={v:.3f}" for k, v in h.scores.items())
            print(f"[{h.rank}] {h.citation}    得分 {h.score:.4f}  ({detail})")
            text = h.chunk.text if len(h.chunk.text) <= 300 else h.chunk.text[:300] + "…"
            for line in text.split("\n"):
                print(f"    {line}")
            print()
        return 0
    finally:
        assistant.close()


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


def cmd_eval(args) -> int:
    from eval import evaluate

    modes = ["dense", "bm25", "hybrid"] if args.mode == "all" else [args.mode]
    outcome = evaluate(args.datasets, modes=modes, index_dir=args.index_dir or None, out_dir=args.out, k=args.k,
                       do_check=args.check, update_baseline=args.update_baseline, progress=not args.quiet,
                       baseline_file=args.baseline)
    print(outcome.table)
    print()
    if outcome.worst:
        print("最弱的问题类型（hit@5）：" + "；".join(f"{ds}/{t} {v:.2f}（{n} 题）" for ds, t, v, n in outcome.worst))
    print(f"报告：{outcome.paths['md']}  {outcome.paths['json']}  {outcome.paths['png']}")
    if args.update_baseline:
        print(f"已更新基线文件 {args.baseline or 'eval/baseline.json'}")
    return 0 if outcome.check_failures is None else _print_check(outcome.check_failures)


def _print_check(failures: list[str]) -> int:
    if failures:
        print("回归检查未通过：", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("回归检查通过：质量目标均已达到，所有指标不低于基线（减去容差）。")
    return 0


def cmd_check(args) -> int:
    from eval import check_report

    try:
        failures = check_report(args.report, args.baseline)
    except (FileNotFoundError, ValueError) as e:
        print(f"错误：{e}", file=sys.stderr)
        return 2
    return _print_check(failures)


def _history_from_args(turns: list[str]) -> list[dict]:
    """--history "问题" (a user turn) or --history "assistant:回答" for an assistant turn."""
    history = []
    for turn in turns or []:
        role, sep, content = turn.partition(":")
        if sep and role in ("user", "assistant"):
            history.append({"role": role, "content": content})
        else:
            history.append({"role": "user", "content": turn})
    return history


def _print_answer(answer) -> None:
    if answer.rewritten_query:
        print(f"（按上下文理解为：{answer.rewritten_query}）")
    print(answer.text)
    if answer.citations:
        print()
        print("出处：")
        for c in answer.citations:
            print(f"[{c.n}] {c.citation}")
            print(f"    “{c.quote}”")
            for r in c.refers:  # the articles the quoted sentences cite by number, whole
                print(f"    本条引用 {r.citation}：")
                print("      " + "\n      ".join(r.text.strip().split("\n")))
    if answer.related:
        print()
        print("可能相关（不是答案）：")
        for c in answer.related:
            print(f"  - {c.citation}：{c.quote[:80]}")
    for note in answer.notes:
        if not answer.abstained:
            print(f"（{note}）")


def cmd_ask(args) -> int:
    from assistant.params import check_history
    from assistant.service import Assistant, check_question

    if args.question and not args.batch:
        check_question(args.question)  # a bad question is refused before the index opens
    filters = _filters(args)
    assistant = Assistant.open(args.index_dir or None)
    try:
        if args.batch:
            return _run_batch(args.batch, lambda row: answer_json(assistant.ask(
                row["question"], check_history(row.get("history")), filters=filters)))
        if not args.question:
            print("错误：请给出问题，或用 --batch 指定问题文件。", file=sys.stderr)
            return 2
        answer = assistant.ask(args.question, _history_from_args(args.history), filters=filters)
        if args.json:
            print(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
        else:
            _print_answer(answer)
        return 0
    finally:
        assistant.close()


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", metavar="R", help="只看某地区的文件，如 荆门、沧州、湖北")
    p.add_argument("--doc", action="append", metavar="DOC_ID", help="只看某文档，可重复")
    p.add_argument("--kind", action="append", metavar="KIND", help="只看某类文件，如 规划、法律，可重复")
    p.add_argument("--year", metavar="YYYY[-YYYY]", help="只看发布于或适用于这些年份的文件")
    p.add_argument("--collection", action="append", metavar="NAME", help="只看某文档集，可重复")


EXAMPLES = {  # shown under each command's --help
    "ask": ["ipqa ask 发明专利权的期限是多少年？", "ipqa ask 专利资助有哪些 --region 沧州",
            "ipqa ask 那沧州呢？ --history 湖北省2023年知识产权质押融资目标是多少？", "ipqa ask --batch 问题.jsonl"],
    "search": ["ipqa search 质押融资 --region 沧州 -k 10", "ipqa search 专利法第四十二条 --mode bm25 --json"],
    "index": ["ipqa index", "ipqa index --rebuild", "ipqa index --store postgresql://ipqa@db.example:5432/ipqa"],
    "serve": ["ipqa serve", "ipqa serve --host 0.0.0.0 --auth staff:secret --port 8080"],
    "eval": ["ipqa eval", "ipqa eval policies_qa --check"],
    "check": ["ipqa check .ipqa/eval", "ipqa check .ipqa/eval/report.json --baseline eval/baseline.json"],
    "add": ["ipqa docs add 新政策.docx 通知.pdf", "ipqa docs add 新政策.docx --store postgresql://ipqa@db.example/ipqa"],
    "remove": ["ipqa docs remove 专利法(2020-10-17)"],
}


def _describe(sub) -> None:
    """Each command's --help starts with what it does and ends with examples."""
    for action in sub._choices_actions:
        p = sub.choices[action.dest]
        p.description = p.description or action.help
        if action.dest in EXAMPLES:
            p.epilog = "示例：\n" + "\n".join(f"  {line}" for line in EXAMPLES[action.dest])
            p.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    from cli import zh

    zh.install()

    parser = argparse.ArgumentParser(
        prog="ipqa", description="知识产权政策问答助手（ipqa）：离线检索地方知识产权政策与国家法律法规，并给出条款出处。")
    sub = parser.add_subparsers(dest="command", metavar="命令")
    docs_sub = _add_docs_commands(sub)
    _add_index_command(sub)
    _add_query_commands(sub)
    _add_eval_commands(sub)
    _add_serve_command(sub)
    _describe(sub)
    _describe(docs_sub)
    return parser


def _add_docs_commands(sub) -> argparse._SubParsersAction:
    """ipqa docs list / add / remove / show; returns the docs sub-parsers."""
    docs = sub.add_parser("docs", help="查看知识库中的文档")
    docs_sub = docs.add_subparsers(dest="docs_command", metavar="子命令")
    p = docs_sub.add_parser("list", help="列出文档及其元数据（标题、发文机关、文号、日期、地区、条款数）")
    _add_source_args(p)
    p.add_argument("--index-dir", metavar="DIR", help="列出该索引中的文档（而不是读取源文件）")
    _add_store_arg(p)
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.set_defaults(func=cmd_docs_list)
    p = docs_sub.add_parser("add", help="把文件加入索引（只处理这些文件，不重建索引）")
    p.add_argument("files", nargs="+", metavar="FILE", help=".txt .md .html .pdf .docx 文件")
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index）")
    _add_store_arg(p)
    p.add_argument("--quiet", action="store_true", help="不显示进度条")
    _add_size_arg(p)
    p.set_defaults(func=cmd_docs_add)
    p = docs_sub.add_parser("remove", help="从索引中删除文档")
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="文档ID（见 ipqa docs list --index-dir）")
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index）")
    _add_store_arg(p)
    p.set_defaults(func=cmd_docs_remove)
    p = docs_sub.add_parser("show", help="显示一个文档的元数据与条款结构")
    p.add_argument("doc_id", help="文档ID（见 ipqa docs list）")
    _add_source_args(p)
    p.add_argument("--text", action="store_true", help="同时显示每个条款的全文")
    p.set_defaults(func=cmd_docs_show)
    return docs_sub


def _add_index_command(sub) -> None:
    """ipqa index."""
    p = sub.add_parser("index", help="建立或更新检索索引（只向量化新增或修改过的文档）")
    _add_source_args(p)
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index）")
    _add_store_arg(p)
    p.add_argument("--embedder", metavar="NAME",
                   help="向量模型：e5-small-onnx（默认，离线，float32）、e5-small-int8（更快，但结果随 CPU 略有不同）、e5-small（torch）、bge-small-zh，或 sentence-transformers 模型名/本地路径")
    p.add_argument("--rebuild", action="store_true", help="丢弃现有索引，全部重建")
    p.add_argument("--reembed", action="store_true",
                   help="只把现有索引的向量换成 --embedder 的（保留全部文档，含上传的；不读取源文件；可中断续做）")
    p.add_argument("--quiet", action="store_true", help="不显示进度条")
    _add_size_arg(p)
    p.set_defaults(func=cmd_index)


def _add_query_commands(sub) -> None:
    """ipqa search and ipqa ask."""
    p = sub.add_parser("search", help="检索条款（向量、关键词或混合检索）")
    p.add_argument("query", nargs="?", help="检索内容")
    p.add_argument("-k", type=int, default=5, help="返回条数（默认 5）")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="hybrid",
                   help="dense 向量 / bm25 关键词 / hybrid 混合（默认）")
    _add_filter_args(p)
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index）")
    _add_store_arg(p)
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.add_argument("--batch", metavar="FILE.jsonl", help="批量检索：每行 {\"id\", \"question\"}，每行输出 {\"id\", \"hits\"}")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="提问：给出带条款出处的回答，文件中没有的会如实说明")
    p.add_argument("question", nargs="?", help="问题")
    p.add_argument("--history", action="append", metavar="TURN",
                   help="之前的对话，按顺序重复给出；默认为用户的提问，写成 assistant:内容 表示助手的回答")
    _add_filter_args(p)
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index）")
    _add_store_arg(p)
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.add_argument("--batch", metavar="FILE.jsonl", help="批量提问：每行 {\"id\", \"question\", \"history\"}，每行输出一个结果")
    p.set_defaults(func=cmd_ask)


def _add_eval_commands(sub) -> None:
    """ipqa eval, bench, loadtest and train-ranker."""
    from eval.bench import DEFAULT_SIZES

    p = sub.add_parser("eval", help="用样例问答评测检索效果，并与基线方法对比")
    p.add_argument("datasets", nargs="*", metavar="DATASET",
                   help="数据集名称（policies_qa、laws_qa、stard、stard_outside：STARD 的问题在内置知识库上问，都应拒答）"
                        "或 .jsonl 路径；默认 policies_qa 和 laws_qa"
                        "（stard 需要另建约 12 分钟的索引，点名时才评测）；名称后加 /test（或 /dev、/train）只评测该部分，"
                        "如 laws_qa/test")
    p.add_argument("--mode", choices=["dense", "bm25", "hybrid", "all"], default="all",
                   help="评测本项目的哪种检索方式（默认 all：三种都评）")
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index；不存在时自动建立）")
    _add_store_arg(p)
    p.add_argument("--out", metavar="DIR", default=".ipqa/eval", help="报告输出目录（默认 .ipqa/eval）")
    p.add_argument("-k", type=int, default=10, help="每题取前 k 个条款（默认 10）")
    p.add_argument("--check", action="store_true", help="检查质量目标并与已提交的基线比较；目标未达到或指标下降超过容差时以非零状态退出")
    p.add_argument("--update-baseline", action="store_true", help="把本次结果写入基线文件")
    p.add_argument("--baseline", metavar="FILE", help="基线文件（默认 eval/baseline.json）")
    p.add_argument("--quiet", action="store_true", help="不显示进度条")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("check", help="按质量目标和基线检查一份已写好的评测报告，不重跑评测（与 ipqa eval --check 相同的检查）")
    p.add_argument("report", metavar="REPORT", help="ipqa eval 写的报告（report.json 或其所在目录）")
    p.add_argument("--baseline", metavar="FILE", help="基线文件（默认 eval/baseline.json）")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compare", help="逐题比较两份评测报告：每个数据集、每项指标变好和变差的题数，附符号检验和置信区间")
    p.add_argument("old", metavar="OLD", help="改动前的报告（report.json 或其所在目录）")
    p.add_argument("new", metavar="NEW", help="改动后的报告（report.json 或其所在目录）")
    p.add_argument("--pipeline", default="ipqa-hybrid", help="比较哪条检索流水线的检索指标（默认 ipqa-hybrid）")
    p.add_argument("--list", action="store_true", help="列出变好和变差的题号（只列 dev 和 train，测试集只计数）")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="性能基准：在语料的不同规模切片上建索引、检索、问答，并与 LangChain 默认做法对比")
    p.add_argument("--corpus", required=True, metavar="DIR", help="语料文件夹（如 ../shared/data/laws）")
    p.add_argument("--docs", type=int, nargs="+", default=list(DEFAULT_SIZES), metavar="N",
                   help="切片大小（文档数），默认 50 200 800")
    p.add_argument("--out", default=".ipqa/bench", metavar="DIR", help="输出目录（默认 .ipqa/bench）")
    p.add_argument("--embedder", metavar="NAME", help="ipqa 使用的向量模型（默认 e5-small-onnx）")
    p.add_argument("--questions", default="laws_qa", metavar="DATASET", help="测延迟用的问题集（默认 laws_qa）")
    p.add_argument("--no-baseline", action="store_true", help="不跑 LangChain 默认做法的对照")
    p.add_argument("--store", metavar="URL",
                   help="同时把每个切片建到这个 PostgreSQL 数据库中，与本地索引并列比较（会重建其中的 ipqa 知识库，"
                        "请用专门的测试库）")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("loadtest", help="负载测试：多个模拟用户通过 gradio_client 同时使用正在运行的网页版（多轮追问、检索、加入/删除文件）")
    p.add_argument("--url", action="append", metavar="URL",
                   help="网页版地址（默认 http://127.0.0.1:7860）；可重复：共用一个数据库的多台服务器，用户轮流使用，"
                        "并检查从第一台加入的文件在另一台上 5 秒内能检索到")
    p.add_argument("--users", type=int, default=50, metavar="N", help="并发模拟用户数（默认 50）")
    p.add_argument("--seconds", type=float, default=60, metavar="S", help="持续秒数（默认 60）")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="登录账号与密码（服务设置了 --auth 时；也可用环境变量 IPQA_AUTH）")
    p.add_argument("--doc", metavar="FILE", help="反复加入又删除的文件（默认一个临时生成的小文件；不能是知识库中已有的文件）")
    p.add_argument("--out", metavar="FILE.json", help="把全部结果写入该 JSON 文件")
    p.set_defaults(func=cmd_loadtest)

    p = sub.add_parser("train-ranker", help="训练检索重排序模型（只用 STARD 的 train 部分和评测集的 dev 部分；写入 assistant/data）")
    p.add_argument("--index-dir", metavar="DIR", help="知识库索引目录（默认 .ipqa/index；STARD 用其旁边的索引，不存在时自动建立）")
    _add_store_arg(p)
    p.add_argument("--out", metavar="DIR", help="模型输出目录（默认 assistant/data）")
    p.set_defaults(func=cmd_train_ranker)


def _add_serve_command(sub) -> None:
    """ipqa serve."""
    p = sub.add_parser("serve", help="启动网页版问答助手（首次运行时为内置知识库建立索引）")
    p.add_argument("--host", default="127.0.0.1", help="监听地址（默认 127.0.0.1，只允许本机访问）")
    p.add_argument("--port", type=int, default=7860, help="端口（默认 7860）")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="登录账号与密码（也可用环境变量 IPQA_AUTH）")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="允许不设登录在本机以外的地址上开放（不建议：任何人都能修改知识库）")
    p.add_argument("--index-dir", metavar="DIR", help="索引目录（默认 .ipqa/index；不存在时自动建立）")
    _add_store_arg(p)
    p.add_argument("--data-dir", metavar="DIR", help="上传文件、反馈、导出和评测报告的目录（默认索引目录的上一级）")
    p.add_argument("--quiet", action="store_true", help="少输出")
    _add_size_arg(p)
    p.set_defaults(func=cmd_serve)


def cmd_compare(args) -> int:
    from eval.compare import compare, load, render

    try:
        old, new = load(args.old), load(args.new)
    except (FileNotFoundError, ValueError) as e:
        print(f"错误：{e}", file=sys.stderr)
        return 2
    print(render(compare(old, new, args.pipeline), list_ids=args.list))
    return 0


def cmd_train_ranker(args) -> int:
    from eval import train

    return train.main([*(["--index-dir", args.index_dir] if args.index_dir else []),
                       *(["--out", args.out] if args.out else [])])


def cmd_bench(args) -> int:
    from pathlib import Path

    from eval import bench

    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"错误：语料文件夹不存在：{corpus}", file=sys.stderr)
        return 2
    result = bench.run(corpus, args.docs, Path(args.out), embedder=args.embedder, baseline=not args.no_baseline,
                       questions=args.questions, store=getattr(args, "store", None))
    print()
    print(bench.table(result))
    print(f"结果已写入 {args.out}/bench.md、bench.json、bench.png")
    return 0


def cmd_loadtest(args) -> int:
    from pathlib import Path

    from ui import loadtest

    if args.users < 1 or args.seconds <= 0:
        print("错误：--users 至少为 1，--seconds 必须大于 0", file=sys.stderr)
        return 2
    doc = Path(args.doc) if args.doc else None
    if doc is not None and not doc.is_file():
        print(f"错误：文件不存在：{doc}", file=sys.stderr)
        return 2
    urls = args.url or ["http://127.0.0.1:7860"]
    print(f"负载测试 load test：{args.users} 个用户 users，{args.seconds:g} 秒 s，{'、'.join(urls)}", file=sys.stderr,
          flush=True)
    figures = loadtest.run(urls, users=args.users, seconds=args.seconds, auth=_auth(args.auth), doc=doc)
    print(loadtest.report(figures))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"结果已写入 results written to {args.out}")
    failed = figures["errors"] or figures["mixups"]
    if failed:
        print("负载测试未通过 FAILED：有失败的请求或串话", file=sys.stderr)
    return 1 if failed else 0


def _auth(value: str | None) -> tuple[str, str] | None:
    """``user:password`` from --auth or IPQA_AUTH."""
    import os

    value = value or os.environ.get("IPQA_AUTH")
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("错误：--auth（或 IPQA_AUTH）的格式应为 用户名:密码")
    return user, password


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args) -> int:
    import logging

    from ui.app import launch
    from ui.backend import Backend

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss.loader", "httpx", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    auth = _auth(args.auth)
    _apply_size_limit(args)
    if auth:
        from ui.access import LoginPolicy

        LoginPolicy.from_env()  # a bad IPQA_LOGIN_* setting stops here, not at the first login
    if args.host not in LOOPBACK and not auth:
        if not args.insecure_no_auth:
            print(f"错误：没有设置登录（--auth 用户名:密码 或环境变量 IPQA_AUTH），不能在 {args.host} 上对其他机器开放："
                  "任何能访问该地址的人都可以查看、上传和删除知识库中的文件。请设置 --auth；"
                  "确实要不设登录开放时，加 --insecure-no-auth。", file=sys.stderr)
            return 2
        print(f"警告：服务将在 {args.host} 上不设登录对其他机器开放（--insecure-no-auth），任何能访问该地址的人都可以使用和修改知识库。",
              file=sys.stderr)
    elif not auth:
        print("提示：服务只监听本机 127.0.0.1；要让其他机器访问，请加 --host 0.0.0.0 并用 --auth 用户名:密码 设置登录。")
    backend = Backend.start(args.index_dir or None, data_dir=args.data_dir, progress=not args.quiet)
    print(f"{len(backend.documents())} 个文件已就绪，打开 http://{args.host}:{args.port} 使用（Ctrl+C 退出）。", flush=True)
    launch(backend, host=args.host, port=args.port, auth=auth)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from index.embedders import ensure_offline

    ensure_offline()  # no model hub is ever asked (IPQA_ALLOW_DOWNLOADS=1 allows it)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        _use_store(args)
        return args.func(args)
    except IpqaError as exc:
        print(f"错误：{exc.user_message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ipqa docs list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())

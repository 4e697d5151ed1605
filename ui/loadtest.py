"""``ipqa loadtest``: many simulated users against a running ``ipqa serve``, through gradio_client.

Each user has its own ``Client`` (its own session) and its own conversations: a first question, then
a follow-up that only makes sense with that user's history. Every conversation carries the subject
terms its follow-up's ``rewritten_query`` must contain, and no two conversations can satisfy each
other's terms (checked when the pool is built), so an answer read against another user's history
shows as a mix-up. Meanwhile one more client adds a document through ``/add_documents`` and
removes it through ``/remove_documents``, again and again.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "eval" / "datasets"

# The follow-ups of eval/datasets/*.jsonl and the terms their standalone rewrite must keep:
# the subject of the earlier turn (a place, a document, a right) and what the follow-up asks.
EVAL_SUBJECTS: dict[str, tuple[str, ...]] = {
    "p130": ("沧州", "质押融资"), "p131": ("荆门高新区", "PCT"), "p132": ("芙蓉区", "强区建设", "第二阶段"),
    "p133": ("荆门", "贯标认证"), "p134": ("乌海", "发明专利拥有量", "高价值"), "p135": ("荆门高新区", "专利奖", "获奖"),
    "p136": ("湖北", "专利转让许可", "增长幅度"), "p137": ("芙蓉区", "领导小组", "办公室"),
    "p138": ("乌海", "知识产权规划", "文号"), "p139": ("沧州", "专利申请量", "基数"),
    "p140": ("掇刀区", "风险补偿基金", "模式"), "p141": ("湖北", "专用标志"), "p142": ("乌海", "工程技术研究中心"),
    "p143": ("芙蓉区", "授权量"), "p144": ("乌海", "知识产权服务机构"), "p145": ("沧州", "第一个工程"),
    "p146": ("湖北", "质押融资", "同比"),
    "l069": ("外观设计专利", "保护期"), "l070": ("注册商标", "续展"), "l071": ("著作权", "公司名义"),
    "l072": ("专利被驳回", "复审"), "l073": ("实用新型专利", "创造性"), "l074": ("商标", "法定赔偿"),
    "l075": ("海关", "担保", "收货人"), "l076": ("虚假宣传", "行政罚款"), "l077": ("职务发明", "报酬"),
}
# More conversations, one place and one topic each, so that 50 users need not share one.
PLACES = ("荆门高新区", "沧州", "湖北", "乌海", "芙蓉区")
TOPICS = ("知识产权质押融资", "贯标认证", "专利申请量", "知识产权服务机构", "高价值发明专利", "专利奖", "知识产权保护",
          "商标品牌", "知识产权人才", "专利导航", "地理标志", "专利转化运用")
FOLLOW_UPS = ("有哪些具体措施？", "由哪个部门负责？", "有资金奖励吗？", "具体怎么做？")


@dataclass(frozen=True)
class Conversation:
    key: str  # eval id or place/topic
    first: str
    follow_up: str
    subject: tuple[str, ...]  # every one must be in the follow-up's rewritten_query

    def text(self) -> str:
        return self.first + self.follow_up

    def kept(self, rewritten: str | None) -> bool:
        return bool(rewritten) and all(term in rewritten for term in self.subject)


def _eval_conversations() -> list[Conversation]:
    out = []
    for path in sorted(DATASETS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else None
            if not row or not row.get("history") or row["id"] not in EVAL_SUBJECTS:
                continue
            first = next(t["content"] for t in row["history"] if t["role"] == "user")
            out.append(Conversation(row["id"], first, row["question"], EVAL_SUBJECTS[row["id"]]))
    return out


def conversation_pool() -> list[Conversation]:
    """The eval follow-ups, then place × topic conversations; a candidate whose subject another's text
    holds (or whose text holds another's subject) is left out, so every follow-up is checkable."""
    candidates = _eval_conversations()
    for i, (topic, place) in enumerate((t, p) for t in TOPICS for p in PLACES):
        candidates.append(Conversation(f"{place}/{topic}", f"{place}{topic}的目标是多少？", FOLLOW_UPS[i % len(FOLLOW_UPS)],
                                       (place, topic)))
    pool: list[Conversation] = []
    for c in candidates:
        if all(not _confusable(c, kept) for kept in pool):
            pool.append(c)
    return pool


def _confusable(a: Conversation, b: Conversation) -> bool:
    return all(t in b.text() for t in a.subject) or all(t in a.text() for t in b.subject)


# --- recording ------------------------------------------------------------------------------


@dataclass
class Record:
    endpoint: str
    ms: float
    ok: bool
    error: str = ""


@dataclass
class Results:
    records: list[Record] = field(default_factory=list)
    mixups: list[dict] = field(default_factory=list)
    adds: list[float] = field(default_factory=list)
    removes: list[float] = field(default_factory=list)
    doc_errors: list[str] = field(default_factory=list)
    found_elsewhere: list[float] = field(default_factory=list)  # ms until another server found an added document
    follow_ups: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)


def _call(results: Results, client, endpoint: str, *args):
    start = time.perf_counter()
    try:
        out = client.predict(*args, api_name=endpoint)
    except Exception as exc:  # any failure is a failed request: counted, never raised
        results.add(Record(endpoint, (time.perf_counter() - start) * 1000, False, f"{type(exc).__name__}: {exc}"))
        return None
    results.add(Record(endpoint, (time.perf_counter() - start) * 1000, True))
    return out


def _client(url: str, auth: tuple[str, str] | None):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False)


def _user(n: int, conversations: Sequence[Conversation], url: str, auth, deadline: float, results: Results,
          pool: Sequence[Conversation]) -> None:
    try:
        client = _client(url, auth)
    except Exception as exc:
        results.add(Record("connect", 0.0, False, f"{type(exc).__name__}: {exc}"))
        return
    turn = 0
    while time.time() < deadline:
        conv = conversations[turn % len(conversations)]
        turn += 1
        first = _call(results, client, "/ask", conv.first, [], "", "", "")
        if first is None:
            continue
        if time.time() >= deadline:
            break
        history = [{"role": "user", "content": conv.first}, {"role": "assistant", "content": first["answer"]}]
        follow = _call(results, client, "/ask", conv.follow_up, history, "", "", "")
        if follow is not None:
            with results.lock:
                results.follow_ups += 1
        if follow is not None and not conv.kept(follow.get("rewritten_query")):
            rewritten = follow.get("rewritten_query") or ""
            others = [c.key for c in pool if c is not conv and c.kept(rewritten)]
            with results.lock:
                results.mixups.append({"user": n, "conversation": conv.key, "question": conv.follow_up,
                                       "expected": list(conv.subject), "rewritten_query": rewritten,
                                       "matches_other": others})
        if time.time() < deadline:
            _call(results, client, "/search", conv.first, "", "", "", None, None, "hybrid", 5)


FOUND_ELSEWHERE_SECONDS = 5.0  # a document added through one server must be found through another by then


def _found_elsewhere(client, doc_id: str, results: Results) -> None:
    """Search through another server (on the same database) until the added document shows."""
    start = time.perf_counter()
    while time.perf_counter() - start < FOUND_ELSEWHERE_SECONDS:
        found = _call(results, client, "/search", "负载测试", "", doc_id, "", None, None, "hybrid", 3)
        if found is not None and found.get("hits"):
            results.found_elsewhere.append((time.perf_counter() - start) * 1000)
            return
        time.sleep(0.1)
    results.doc_errors.append(f"另一台服务器 {FOUND_ELSEWHERE_SECONDS:g} 秒内检索不到 not found through the other server: "
                              f"{doc_id}")


def _documents(doc: Path, urls: Sequence[str], auth, deadline: float, results: Results, pause: float) -> None:
    from gradio_client import handle_file

    try:
        client = _client(urls[0], auth)
        other = _client(urls[1], auth) if len(urls) > 1 else None
    except Exception as exc:
        results.doc_errors.append(f"连接失败 connect failed: {type(exc).__name__}: {exc}")
        return
    while time.time() < deadline:
        start = time.perf_counter()
        try:
            added = client.predict([handle_file(str(doc))], api_name="/add_documents")
        except Exception as exc:
            results.doc_errors.append(f"加入失败 add failed: {type(exc).__name__}: {exc}")
            return
        results.adds.append((time.perf_counter() - start) * 1000)
        if added.get("updated"):
            results.doc_errors.append(f"文件已在知识库中，不会删除 already indexed, not removed: {added['updated']}")
            return
        if not added.get("ok") or not added.get("added"):
            results.doc_errors.append(f"加入失败 add failed: {added.get('message')}")
            return
        found = _call(results, client, "/search", doc.stem, "", added["added"][0], "", None, None, "hybrid", 3)
        if found is not None and not found.get("hits"):
            results.doc_errors.append(f"加入后检索不到 not found after add: {added['added'][0]}")
        if other is not None:
            _found_elsewhere(other, added["added"][0], results)
        time.sleep(pause)
        start = time.perf_counter()
        try:
            removed = client.predict(added["added"], api_name="/remove_documents")
        except Exception as exc:
            results.doc_errors.append(f"删除失败 remove failed: {type(exc).__name__}: {exc}")
            return
        results.removes.append((time.perf_counter() - start) * 1000)
        if not removed.get("ok") or sorted(removed.get("removed") or []) != sorted(added["added"]):
            results.doc_errors.append(f"删除失败 remove failed: {removed.get('message')}")
            return
        time.sleep(max(0.0, min(pause, deadline - time.time())))


SAMPLE_DOC = """# 负载测试临时文件

第一条 本文件仅用于 ipqa loadtest 测试加入与删除文件，测试结束即删除。

第二条 负载测试期间，每个模拟用户提出自己的问题和追问。

第三条 本文件自加入之日起施行。
"""


def run(url: str | Sequence[str], users: int = 50, seconds: float = 60, auth: tuple[str, str] | None = None,
        doc: Path | None = None, doc_pause: float = 3.0) -> dict:
    """Run the load test and return its figures (see ``summary``). Several URLs (app servers on one
    shared database): users take them in turn, and a document added through the first must be
    found through the second within ``FOUND_ELSEWHERE_SECONDS``."""
    urls = [url] if isinstance(url, str) else list(url)
    pool = conversation_pool()
    own = [[pool[i] for i in range(n, len(pool), users)] or [pool[n % len(pool)]] for n in range(users)]
    shared = users > len(pool)
    results = Results()
    with tempfile.TemporaryDirectory(prefix="ipqa-loadtest-") as tmp:
        if doc is None:
            doc = Path(tmp) / "负载测试临时文件.md"
            doc.write_text(SAMPLE_DOC, encoding="utf-8")
        started = time.time()
        deadline = started + seconds
        threads = [threading.Thread(target=_user, args=(n, own[n], urls[n % len(urls)], auth, deadline, results,
                                                        pool), daemon=True) for n in range(users)]
        threads.append(threading.Thread(target=_documents, args=(doc, urls, auth, deadline, results, doc_pause),
                                        daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        duration = time.time() - started
    return summary(results, url=", ".join(urls), servers=len(urls), users=users, seconds=seconds, duration=duration, pool=len(pool),
                   shared=shared)


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)  # nearest rank
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def summary(results: Results, **info) -> dict:
    endpoints = {}
    for name in sorted({r.endpoint for r in results.records}):
        rs = [r for r in results.records if r.endpoint == name]
        ok = [r.ms for r in rs if r.ok]
        endpoints[name] = {"requests": len(rs), "errors": sum(not r.ok for r in rs), "p50_ms": _pct(ok, 0.5),
                           "p95_ms": _pct(ok, 0.95), "max_ms": round(max(ok), 1) if ok else None}
    requests = len(results.records) + len(results.adds) + len(results.removes)
    errors = sum(not r.ok for r in results.records) + len(results.doc_errors)
    samples = sorted({r.error for r in results.records if not r.ok})[:10]
    return {**info, "duration": round(info["duration"], 1), "requests": requests,
            "throughput_rps": round(requests / info["duration"], 2) if info["duration"] else 0.0,
            "errors": errors, "error_samples": samples, "endpoints": endpoints,
            "documents": {"adds": len(results.adds), "removes": len(results.removes),
                          "add_ms": [round(v, 1) for v in results.adds],
                          "remove_ms": [round(v, 1) for v in results.removes],
                          "add_p50_ms": _pct(results.adds, 0.5), "add_max_ms": round(max(results.adds), 1)
                          if results.adds else None, "remove_p50_ms": _pct(results.removes, 0.5),
                          "remove_max_ms": round(max(results.removes), 1) if results.removes else None,
                          "found_elsewhere_ms": [round(v, 1) for v in results.found_elsewhere],
                          "errors": results.doc_errors},
            "mixups": results.mixups, "follow_ups_checked": results.follow_ups}


def report(figures: dict) -> str:
    """The figures as a Chinese/English table and lines."""
    import io

    from ui.tables import print_table

    def ms(v):
        return "" if v is None else f"{v:.0f}"

    rows = [{"endpoint": name, "requests": e["requests"], "errors": e["errors"], "p50": ms(e["p50_ms"]),
             "p95": ms(e["p95_ms"]), "max": ms(e["max_ms"])} for name, e in figures["endpoints"].items()]
    d = figures["documents"]
    rows.append({"endpoint": "/add_documents", "requests": d["adds"], "errors": "", "p50": ms(d["add_p50_ms"]),
                 "p95": "", "max": ms(d["add_max_ms"])})
    rows.append({"endpoint": "/remove_documents", "requests": d["removes"], "errors": "",
                 "p50": ms(d["remove_p50_ms"]), "p95": "", "max": ms(d["remove_max_ms"])})
    out = io.StringIO()
    print_table(rows, [("endpoint", "接口 endpoint", None), ("requests", "请求数 requests", None),
                       ("errors", "失败 errors", None), ("p50", "p50 ms", 8), ("p95", "p95 ms", 8),
                       ("max", "最长 max ms", None)], out=out)
    lines = [
        f"并发用户 users：{figures['users']}；时长 duration：{figures['duration']} 秒 s（设定 {figures['seconds']:g}）；"
        f"对话池 conversations：{figures['pool']}",
        f"总请求 requests：{figures['requests']}；吞吐量 throughput：{figures['throughput_rps']} 请求/秒 req/s",
        f"失败 errors：{figures['errors']}；已检查追问 follow-ups checked：{figures['follow_ups_checked']}；"
        f"串话 mix-ups：{len(figures['mixups'])}",
        f"加入文件 add（毫秒 ms）：{', '.join(ms(v) for v in d['add_ms']) or '无 none'}",
        f"删除文件 remove（毫秒 ms）：{', '.join(ms(v) for v in d['remove_ms']) or '无 none'}",
    ]
    if figures.get("servers", 1) > 1:
        lines.append(f"服务器 servers：{figures['servers']}；另一台服务器检索到新文件用时 found through the other server"
                     f"（毫秒 ms）：{', '.join(ms(v) for v in d.get('found_elsewhere_ms', [])) or '无 none'}")
    if figures.get("shared"):
        lines.append("注意 note：用户数多于对话池，部分用户共用对话，它们之间的串话查不出 users share conversations")
    for e in figures["error_samples"] + d["errors"]:
        lines.append(f"错误 error：{e}")
    for m in figures["mixups"][:10]:
        lines.append(f"串话 mix-up：用户 user {m['user']} 问「{m['question']}」，应含 {'、'.join(m['expected'])}，"
                     f"实际改写为 rewritten「{m['rewritten_query']}」")
    return out.getvalue() + "\n" + "\n".join(lines)


__all__ = ["Conversation", "conversation_pool", "report", "run", "summary"]

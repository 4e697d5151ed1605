"""The Gradio app: 智能问答, 条款检索, 文件管理, 评测.

``build_app(backend)`` makes the Blocks; ``serve`` starts it. Handlers stay thin: the work is
in ``ui.backend`` (which calls the assistant and eval APIs) and the HTML in ``ui.render``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from gradio.data_classes import FileData  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402

from assistant import Filters, IpqaError  # noqa: E402
from assistant.params import check_history, year_range  # noqa: E402
from assistant.records import answer_json, hit_json  # noqa: E402
from corpus.types import period_label  # noqa: E402
from ui import render  # noqa: E402
from ui.backend import TEMP_MAX_AGE, UPLOAD_TYPES, Backend  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLES = [
    "荆门高新区对通过贯标认证的企业有奖励吗？",
    "湖北省2023年知识产权质押融资目标是多少？",
    "乌海市“十四五”期间每万人高价值发明专利拥有量要达到多少？",
    "芙蓉区知识产权强区建设分几个阶段？",
    "发明专利权的期限是多少年？",
    "商标法第六十三条讲了什么？",
]
MODES = [("混合检索", "hybrid"), ("向量检索", "dense"), ("关键词检索", "bm25")]
ASK_CONCURRENCY = 2  # two cores: more parallel answers only queue inside torch
WRITE_CONCURRENCY = 3  # uploads prepared at once; a large one never keeps a small one waiting for its turn
TEMP_SWEEP_SECONDS = 600  # how often Gradio deletes uploads older than TEMP_MAX_AGE from the app's temp folder
EVAL_DATASETS = [("地方政策 policies_qa", "policies_qa"), ("法律法规 laws_qa", "laws_qa"), ("全部数据集", "all")]


# Toasts with Chinese headings (Gradio's own read "Info", "Warning", "Error"); a refused request is
# the user's mistake, not the server's: no traceback in the server's log for it.


def _error(message: str) -> gr.Error:
    log.info("request refused: %s", message.splitlines()[0] if message else "")
    return gr.Error(message, title="出错了", print_exception=False)


def _warning(message: str) -> None:
    gr.Warning(message, title="请注意")


def _info(message: str) -> None:
    gr.Info(message, title="提示")


def _filters(place: str | None, doc_ids: Sequence[str] | str | None, kinds: Sequence[str] | str | None,
             years: tuple[int, int] | None = None) -> Filters | None:
    doc_ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids or [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    f = Filters(region=place or None, doc_ids=tuple(d for d in doc_ids if d), kinds=tuple(k for k in kinds if k),
                years=years)
    return None if f.is_empty() else f


def _years(first, last) -> tuple[int, int] | None:
    """Year range from two optional number boxes; raises a Chinese gr.Error."""
    try:
        return year_range(first, last)
    except IpqaError as exc:
        raise _error(exc.user_message) from None


class App:
    """Handlers bound to one backend."""

    def __init__(self, backend: Backend):
        self.backend = backend

    # --- shared ---

    def doc_date(self, doc_id: str) -> str:
        info = self.backend.doc_info(doc_id)
        return info.issued.isoformat() if info and info.issued else ""

    def open_clause(self, clause_id: str) -> str:
        """The whole document of a clause, focused on it (called from the page's JavaScript)."""
        clause_id = str(clause_id or "")
        docs = [d for d in self.backend.documents() if clause_id.startswith(d.doc_id + ":")]
        if not docs:
            return '<div class="ipqa-empty">该文档已不在知识库中。<button class="ipqa-close">关闭 ✕</button></div>'
        info = max(docs, key=lambda d: len(d.doc_id))
        doc = self.backend.document(info.doc_id)
        if doc is None:
            return '<div class="ipqa-empty">该文档已不在知识库中。<button class="ipqa-close">关闭 ✕</button></div>'
        return render.document_html(doc, focus=clause_id, info=render.doc_meta_line(info))

    def doc_choices(self) -> list[tuple[str, str]]:
        return [(f"{d.title}（{d.doc_id}）", d.doc_id) for d in self.backend.documents()]

    def status_line(self) -> str:
        docs = self.backend.documents()
        clauses = sum(d.clauses for d in docs)
        return f"知识库：{len(docs)} 个文件、{clauses} 个条款"

    # --- chat ---

    def respond(self, message, chat, turns, answers, place, doc_id, kind):
        message = (message or "").strip()
        chat, turns, answers = list(chat or []), list(turns or []), dict(answers or {})
        if not message:
            _warning("请输入问题")
            yield message, chat, turns, answers, gr.skip()
            return
        chat += [{"role": "user", "content": render.esc(message)},
                 {"role": "assistant", "content": '<div class="ipqa-note">正在检索……</div>'}]
        yield "", chat, turns, answers, gr.skip()
        filters = _filters(place, doc_id, kind)
        final, problem = None, "没有得到回答，请重试。"
        try:
            for text, answer in self.backend.ask_stream(message, turns, filters):
                if answer is None:
                    chat[-1] = {"role": "assistant", "content": render.esc(text)}
                    yield "", chat, turns, answers, gr.skip()
                else:
                    final = answer
        except IpqaError as exc:
            final, problem = None, exc.user_message
        except Exception:  # never leave the user looking at "正在检索……"
            log.exception("answering %r failed", message)
            final, problem = None, "系统内部出错，这个问题暂时无法回答，请稍后再试。"
        if final is None:
            chat[-1] = {"role": "assistant", "content": f'<div class="ipqa-notfound">{render.esc(problem)}</div>'}
            yield "", chat, turns, answers, gr.skip()
            return
        sources = render.sources_html(final, self.doc_date)
        chat[-1] = {"role": "assistant", "content": render.answer_markdown(final, sources)}
        answers[str(len(chat) - 1)] = {"question": message, "history": turns, **answer_json(final, hits=0)}
        turns = turns + [{"role": "user", "content": message}, {"role": "assistant", "content": final.text}]
        yield "", chat, turns, answers, sources

    def clear(self):
        return [], [], {}, render.sources_html(None, self.doc_date), ""

    def feedback(self, answers, data: gr.LikeData):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (answers or {}).get(str(index))
        if record is None:
            return
        rating = "up" if data.liked in (True, "Like") else "down"
        self.backend.record_feedback(rating, record["question"], record, history=record.get("history", ()))
        _info("已记录您的反馈，谢谢！")

    # --- search ---

    def search(self, query, place, doc_ids, kinds, year_from, year_to, mode, k):
        query = (query or "").strip()
        if not query:
            raise _error("请输入检索内容")
        filters = _filters(place, doc_ids, kinds, _years(year_from, year_to))
        try:
            hits = self.backend.search(query, filters=filters, mode=mode or "hybrid", k=int(k or 20))
        except IpqaError as exc:
            raise _error(exc.user_message) from None
        terms = self.backend.assistant.match_terms(query)
        return render.search_html(hits, terms, query), self._csv(query, hits)

    def _csv(self, query: str, hits) -> str | None:
        if not hits:
            return None
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["排名", "得分", "向量得分", "关键词得分", "文件", "文号", "条款路径", "引用", "条款原文", "doc_id",
                    "clause_id"])
        for h in hits:
            w.writerow([h.rank, f"{h.score:.4f}", f"{h.scores['dense']:.4f}" if "dense" in h.scores else "",
                        f"{h.scores['bm25']:.4f}" if "bm25" in h.scores else "", h.title, h.doc_number or "",
                        " / ".join(h.path), h.citation, h.chunk.text.strip(), h.chunk.doc_id, h.chunk.clause_id])
        return str(self.backend.export_path("search", ".csv", buf.getvalue()))

    # --- documents ---

    def doc_rows(self) -> list[list]:
        return [[d.doc_id, d.title, d.kind, d.issuer or "", d.doc_number or "",
                 d.issued.isoformat() if d.issued else "", "/".join(d.region),
                 period_label(d.period), d.clauses,
                 {"policies": "地方政策", "laws": "法律法规", "uploads": "上传"}.get(d.collection, d.collection)]
                for d in self.backend.documents()]

    def preview(self, files):
        paths = [getattr(f, "name", f) for f in (files or [])]
        return render.preview_html(self.backend.preview(paths)) if paths else ""

    def _refreshed(self, message: str, ok: bool):
        docs = self.doc_choices()
        places = self.backend.places()
        kinds = self.backend.kinds()
        box = "ipqa-ok" if ok else "ipqa-error"
        status = f'<div class="ipqa-preview {box}">{render.esc(message).replace(chr(10), "<br>")}</div>'
        return (status, self.doc_rows(), gr.update(choices=docs, value=None), gr.update(choices=docs, value=None),
                gr.update(choices=docs, value=[]), gr.update(choices=places), gr.update(choices=places),
                gr.update(choices=kinds), gr.update(choices=kinds), self.status_line())

    def add(self, files, progress=gr.Progress()):
        paths = [getattr(f, "name", f) for f in (files or [])]

        def embedded(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"正在向量化：{done}/{total} 个片段")

        changed = self.backend.add(paths, on_progress=embedded)
        if not changed.ok:
            _warning(changed.message.splitlines()[0] if changed.message else "导入失败")
        return (*self._refreshed(changed.message, changed.ok), None, "")

    def ask_to_remove(self, doc_ids):
        """Step one of a removal: say what will go, and show 确认删除 / 取消."""
        doc_ids = doc_ids if isinstance(doc_ids, list) else [doc_ids]
        plan = self.backend.removal_plan(doc_ids)
        if not plan:
            _warning("请先选择要删除的文件")
            return gr.update(visible=False), ""
        return gr.update(visible=True), f'<div class="ipqa-preview">{render.esc(plan).replace(chr(10), "<br>")}</div>'

    def remove(self, doc_ids):
        changed = self.backend.remove(doc_ids if isinstance(doc_ids, list) else [doc_ids])
        if not changed.ok:
            _warning(changed.message)
        return (*self._refreshed(changed.message, changed.ok), gr.update(visible=False))

    def restore(self):
        changed = self.backend.restore_bundled()
        return self._refreshed(changed.message, changed.ok)

    # --- eval ---

    def run_eval(self, dataset, baselines):
        datasets = [] if dataset in (None, "", "all") else [dataset]
        try:
            outcome = self.backend.evaluate(datasets, baselines=bool(baselines))
        except RuntimeError as exc:
            raise _error(str(exc)) from None
        except IpqaError as exc:
            raise _error(exc.user_message) from None
        from eval.report import answer_rows, summary_rows
        from eval.runner import is_test

        summary = [[r[0], r[1]] + r[2:] for r in summary_rows(outcome.run)]
        answers = answer_rows(outcome.run)
        failing = []  # the dev splits only: test failures are not shown, so nobody tunes to them
        for r in outcome.run.results:
            if r.pipeline == "ipqa-hybrid" and r.metrics.get("hit@1", 1.0) < 1.0 and not is_test(r.dataset):
                why = "检索前5未命中" if r.metrics.get("hit@5", 1.0) < 1.0 else "检索首条不是标准条款"
                failing.append([r.dataset, r.id, r.type, r.question, why, "；".join(r.gold),
                                r.ranked[0] if r.ranked else ""])
        for a in outcome.run.answers:
            if a.abstained != a.should_abstain and not is_test(a.dataset):
                why = "不该拒答却拒答" if a.abstained else "应拒答却作答"
                failing.append([a.dataset, a.id, a.type, a.question, why, "；".join(a.gold), "；".join(a.cited)])
        chart = outcome.paths.get("png")
        note = _eval_note(outcome.run, outcome.paths.get("md", ""))
        return summary, answers, str(chart) if chart and chart.exists() else None, failing, note

    # --- API (gradio_client) ---

    def api_ask(self, question: str, history: list | None = None, place: str = "", doc_id: str = "",
                kind: str = "") -> dict:
        """Ask one question. history: earlier turns [{"role": "user"|"assistant", "content": "…"}], a list
        of questions, or one question (anything else is refused in Chinese).
        Returns the answer with its citations (the same fields as ``ipqa ask --json``)."""
        try:
            answer = self.backend.ask(question, check_history(history), _filters(place, doc_id, kind))
        except IpqaError as exc:
            raise _error(exc.user_message) from None
        return answer_json(answer)

    def api_search(self, query: str, place: str = "", doc_id: str = "", kind: str = "", year_from: int | None = None,
                   year_to: int | None = None, mode: str = "hybrid", k: int = 10) -> dict:
        """Search clauses. mode: hybrid | dense | bm25. Returns the hits (the same fields as ``ipqa search --json``)."""
        try:
            hits = self.backend.search(query, filters=_filters(place, doc_id, kind, _years(year_from, year_to)),
                                       mode=mode, k=k)
        except IpqaError as exc:
            raise _error(exc.user_message) from None
        return {"query": query, "hits": [hit_json(h) for h in hits]}

    def api_add_documents(self, files: list[FileData]) -> dict:
        """Add files to the knowledge base (.txt .md .html .pdf .docx, uploaded with gradio_client.handle_file).
        A file with the name of an uploaded document replaces it. Returns {"ok", "message", "added", "updated"}
        (added: the doc_ids added or replaced; updated: those that replaced a document)."""
        paths = []
        for f in files or []:
            path = _uploaded_path(f)
            if path is None:
                raise _error("只接受通过 gradio_client.handle_file 上传的文件")
            paths.append(path)
        changed = self.backend.add(paths)
        return {"ok": changed.ok, "message": changed.message, "added": changed.added, "updated": changed.updated}

    def api_remove_documents(self, doc_ids: list[str]) -> dict:
        """Remove documents from the knowledge base by doc_id. Returns {"ok", "message", "removed"}."""
        changed = self.backend.remove([str(d) for d in (doc_ids or [])])
        return {"ok": changed.ok, "message": changed.message, "removed": changed.removed}


def _uploaded_path(value) -> str | None:
    """The path of a file the client uploaded to this server, or None: a path the request names
    itself (``"/etc/passwd"``, a FileData pointing outside Gradio's upload folder) is not read."""
    path = value.get("path") if isinstance(value, dict) else getattr(value, "path", None)
    if not isinstance(path, str) or not path:
        return None
    folder = Path(get_upload_folder()).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_file() or not resolved.is_relative_to(folder):
        return None
    return str(resolved)


def _eval_note(run, report_path) -> str:
    """How many questions were asked, and which of them count where (the tables' 题数 differ)."""
    with_gold = {(r.dataset.split("/")[0], r.id) for r in run.results if r.gold}
    unanswerable = {(a.dataset.split("/")[0], a.id) for a in run.answers if a.should_abstain}
    asked = with_gold | unanswerable | {(a.dataset.split("/")[0], a.id) for a in run.answers}
    return (f"共 {len(asked)} 题：{len(with_gold)} 题有标准条款（检索指标按这些题计算），{len(unanswerable)} 题文件中"
            f"没有答案（检验拒答）；各表「题数」为每个划分（dev / test）中参与该表的题数。报告：{report_path}")


def _panel(value: str, open_clause, elem_id: str, js: str = render.PANEL_JS) -> gr.HTML:
    """An HTML panel whose clause links open the whole document (fetched through ``open_clause``)."""
    return gr.HTML(value, html_template=render.PANEL_TEMPLATE, js_on_load=js, elem_id=elem_id,
                   server_functions=[open_clause])


def build_app(backend: Backend) -> gr.Blocks:
    app = App(backend)

    def open_clause(clause_id: str) -> str:  # a plain function: Gradio marks it as a server function
        return app.open_clause(clause_id)

    choices = app.doc_choices(), backend.places(), backend.kinds()
    with gr.Blocks(title="知识产权政策问答助手", delete_cache=(TEMP_SWEEP_SECONDS, int(TEMP_MAX_AGE))) as demo:
        with gr.Row():
            gr.Markdown("## 知识产权政策问答助手\n根据已收录的知识产权政策与法律法规回答问题，每句话都标注出处条款；"
                        "文件中没有的内容会如实说明。")
            status = gr.Markdown(app.status_line(), elem_id="ipqa-status")
        with gr.Tabs():
            chat_filters = _chat_tab(app, choices, open_clause)
            search_filters = _search_tab(app, choices, open_clause)
            _docs_tab(app, choices[0], [*chat_filters, *search_filters, status])
            _eval_tab(app)
        gr.api(app.api_ask, api_name="ask", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask")
        gr.api(app.api_search, api_name="search", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask")
        # The 文件管理 tab's add and remove for scripts; behind the same login as the page, which already
        # lets every user change the knowledge base. Uploads are copied into <data-dir>/uploads/.
        gr.api(app.api_add_documents, api_name="add_documents", concurrency_id="write")
        gr.api(app.api_remove_documents, api_name="remove_documents", concurrency_id="write")
    return demo


def _chat_tab(app: App, choices: tuple, open_clause) -> tuple:
    """The 智能问答 tab; returns its filters (place, document, kind) for the 文件管理 tab to refresh."""
    docs, places, kinds = choices
    with gr.Tab("智能问答", id="chat"):
        with gr.Accordion("筛选（可选）", open=False):
            with gr.Row():
                c_place = gr.Dropdown(places, label="地区", value=None, elem_id="ipqa-chat-place")
                c_doc = gr.Dropdown(docs, label="文件", value=None, elem_id="ipqa-chat-doc")
                c_kind = gr.Dropdown(kinds, label="文件类型", value=None, elem_id="ipqa-chat-kind")
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="对话", show_label=False, height=520, elem_id="ipqa-chat",
                                     placeholder="请输入关于知识产权政策或法律的问题，例如下方的示例问题。",
                                     feedback_options=("Like", "Dislike"), buttons=["copy", "copy_all"])
                with gr.Row():
                    box = gr.Textbox(show_label=False, placeholder="输入问题，按回车发送", scale=5,
                                     elem_id="ipqa-question", max_length=2000)
                    send = gr.Button("发送", variant="primary", scale=1, elem_id="ipqa-send")
                clear = gr.Button("清空对话", elem_id="ipqa-clear")
                gr.Examples(EXAMPLES, inputs=box, label="示例问题")
            with gr.Column(scale=2):
                sources = _panel(render.sources_html(None, app.doc_date), open_clause, "ipqa-sources",
                                 render.SOURCES_JS)
        turns, answers = gr.State([]), gr.State({})
        chat_io = dict(inputs=[box, chatbot, turns, answers, c_place, c_doc, c_kind],
                       outputs=[box, chatbot, turns, answers, sources], concurrency_limit=ASK_CONCURRENCY,
                       concurrency_id="ask", api_visibility="private")
        box.submit(app.respond, api_name="ui_chat_enter", **chat_io)
        send.click(app.respond, api_name="ui_chat_send", **chat_io)
        clear.click(app.clear, None, [chatbot, turns, answers, sources, box], api_visibility="private")
        chatbot.clear(app.clear, None, [chatbot, turns, answers, sources, box], api_visibility="private")
        chatbot.like(app.feedback, [answers], None, api_visibility="private")
    return c_place, c_doc, c_kind


def _search_tab(app: App, choices: tuple, open_clause) -> tuple:
    """The 条款检索 tab; returns its filters (place, documents, kinds) for the 文件管理 tab to refresh."""
    docs, places, kinds = choices
    with gr.Tab("条款检索", id="search"):
        with gr.Row():
            query = gr.Textbox(label="检索内容", placeholder="关键词或问题，例如：质押融资", scale=5,
                               elem_id="ipqa-query")
            go = gr.Button("检索", variant="primary", scale=1, elem_id="ipqa-search")
        with gr.Row():
            s_place = gr.Dropdown(places, label="地区", value=None, elem_id="ipqa-search-place")
            s_docs = gr.Dropdown(docs, label="文件", value=None, elem_id="ipqa-search-doc")
            s_kinds = gr.Dropdown(kinds, label="文件类型", value=[], multiselect=True, elem_id="ipqa-search-kind")
        with gr.Row():
            # text boxes: Gradio's number box shows 0 when empty
            year_from = gr.Textbox(label="起始年份", placeholder="如 2021（可不填）", max_lines=1)
            year_to = gr.Textbox(label="结束年份", placeholder="如 2025（可不填）", max_lines=1)
            mode = gr.Radio(MODES, value="hybrid", label="检索方式")
            k = gr.Slider(5, 50, value=20, step=1, label="结果数")
        results = _panel('<div class="ipqa-empty">输入关键词后点击“检索”。</div>', open_clause,
                         "ipqa-results")
        export = gr.File(label="导出结果（CSV）", interactive=False, elem_id="ipqa-export")
        search_io = dict(inputs=[query, s_place, s_docs, s_kinds, year_from, year_to, mode, k],
                         outputs=[results, export], concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask",
                         api_visibility="private")
        query.submit(app.search, api_name="ui_search_enter", **search_io)
        go.click(app.search, api_name="ui_search_click", **search_io)
    return s_place, s_docs, s_kinds


def _docs_tab(app: App, docs: list, filters: list) -> None:
    """The 文件管理 tab: upload, preview, remove (asking first) and restore; every write refreshes the
    other tabs' ``filters`` (chat place/document/kind, search place/documents/kinds, the status line)."""
    c_place, c_doc, c_kind, s_place, s_docs, s_kinds, status = filters
    with gr.Tab("文件管理", id="docs"):
        table = gr.Dataframe(app.doc_rows(), headers=["文档ID", "标题", "类型", "发文机关", "文号", "日期", "地区",
                                                      "期限", "条款数", "来源"],
                             interactive=False, wrap=True, label="知识库中的文件", elem_id="ipqa-docs",
                             show_search="filter",  # column headers sort; the box filters rows
                             column_widths=["16%", "24%", "7%", "11%", "10%", "8%", "10%", "6%", "4%", "4%"])
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="上传文件（.txt .md .html .pdf .docx，可多选）", file_count="multiple",
                                 file_types=list(UPLOAD_TYPES), elem_id="ipqa-upload")
                add_btn = gr.Button("加入知识库", variant="primary", elem_id="ipqa-add")
            with gr.Column():
                preview = gr.HTML('<div class="ipqa-empty">选择文件后，这里预览识别出的标题、元数据和前几个条款。</div>',
                                  elem_id="ipqa-preview")
        with gr.Row():
            remove_dd = gr.Dropdown(docs, label="选择要删除的文件", multiselect=True, value=[],
                                    elem_id="ipqa-remove-choice")
            with gr.Column():
                remove_btn = gr.Button("删除所选文件……", variant="stop", elem_id="ipqa-remove")
                restore_btn = gr.Button("恢复内置文件", elem_id="ipqa-restore")
        with gr.Group(visible=False, elem_id="ipqa-confirm") as confirm:
            confirm_text = gr.HTML(elem_id="ipqa-confirm-text")
            with gr.Row():
                confirm_btn = gr.Button("确认删除", variant="stop", elem_id="ipqa-remove-confirm")
                cancel_btn = gr.Button("取消", elem_id="ipqa-remove-cancel")
        doc_status = gr.HTML(elem_id="ipqa-doc-status")
        refresh_out = [doc_status, table, c_doc, s_docs, remove_dd, c_place, s_place, c_kind, s_kinds, status]
        upload.change(app.preview, [upload], [preview], api_visibility="private")
        # Several uploads at once: each embeds on its own and holds the index's lock only to swap it in.
        add_btn.click(app.add, [upload], refresh_out + [upload, preview], concurrency_limit=WRITE_CONCURRENCY,
                      concurrency_id="write", api_visibility="private")
        # Removing asks first, naming what goes; bundled documents can be restored afterwards.
        remove_btn.click(app.ask_to_remove, [remove_dd], [confirm, confirm_text], api_visibility="private")
        cancel_btn.click(lambda: gr.update(visible=False), None, [confirm], api_visibility="private")
        confirm_btn.click(app.remove, [remove_dd], refresh_out + [confirm], concurrency_id="write",
                          api_visibility="private")
        restore_btn.click(app.restore, None, refresh_out, concurrency_id="write", api_visibility="private")


def _eval_tab(app: App) -> None:
    """The 评测 tab: run an eval set, show its tables, chart and failing questions."""
    with gr.Tab("评测", id="eval"):
        with gr.Row():
            dataset = gr.Dropdown(EVAL_DATASETS, value="policies_qa", label="数据集", elem_id="ipqa-eval-dataset")
            with_baselines = gr.Checkbox(label="同时评测基线方法（BM25、朴素 LangChain；首次较慢）", value=False)
            run = gr.Button("运行评测", variant="primary", elem_id="ipqa-eval")
        eval_note = gr.Markdown(elem_id="ipqa-eval-note")
        eval_summary = gr.Dataframe(headers=["数据集", "方法", "hit@1", "hit@1 95% 区间", "hit@3", "hit@5", "hit@10",
                                             "MRR@10", "nDCG@10", "recall@10", "p50 ms", "p95 ms", "题数"],
                                    label="检索指标", interactive=False, elem_id="ipqa-eval-summary")
        eval_answers = gr.Dataframe(headers=["数据集", "关键词覆盖", "引用准确率", "引用召回率", "数字可溯源",
                                             "无答案时拒答", "有答案时拒答", "拒答时说对所缺部分", "p50 ms", "p95 ms", "题数"],
                                    label="回答指标（摘录式）", interactive=False, elem_id="ipqa-eval-answers")
        eval_chart = gr.Image(label="图表", type="filepath", interactive=False)
        eval_failing = gr.Dataframe(headers=["数据集", "编号", "类型", "问题", "问题所在", "标准条款", "实际条款"],
                                    label="未通过的问题", interactive=False, wrap=True,
                                    column_widths=["11%", "9%", "8%", "26%", "10%", "18%", "18%"],
                                    elem_id="ipqa-eval-failing")
        run.click(app.run_eval, [dataset, with_baselines],
                  [eval_summary, eval_answers, eval_chart, eval_failing, eval_note],
                  concurrency_id="eval", api_visibility="private")


THEME_FONTS = ["PingFang SC", "Microsoft YaHei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "system-ui", "sans-serif"]


def launch(backend: Backend, *, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           block: bool = True):
    """Start the app. Fonts are local ones: nothing is fetched from the internet. Uploads go to the
    app's own temporary folder under its data dir (another app's users cannot read them), at most
    the per-file size limit each; with ``auth`` every route but the login needs it (``ui.access``).
    Gradio itself stays quiet (its English lines advise ``share=True``, against ipqa's own advice):
    ``ipqa serve`` says in Chinese where the app is."""
    from starlette.middleware import Middleware

    from assistant.library import max_file_bytes
    from ui.access import AccessGuard

    backend.temp_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(backend.temp_dir.resolve())  # read by Gradio when the app is built
    backend.prune_temp()
    demo = build_app(backend)
    demo.queue(default_concurrency_limit=1, max_size=256)
    theme = gr.themes.Soft(font=THEME_FONTS, font_mono=["ui-monospace", "monospace"])
    demo.launch(server_name=host, server_port=port, auth=auth, auth_message="请输入账号和密码" if auth else None,
                theme=theme, css=render.CSS, prevent_thread_lock=not block, quiet=True, show_error=True,
                footer_links=["api"], allowed_paths=[str(backend.exports_dir), str(backend.data_dir / "eval")],
                max_file_size=max_file_bytes(), app_kwargs={"middleware": [Middleware(AccessGuard)]})
    return demo

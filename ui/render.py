"""HTML for the web app. Everything that comes from a user or a document is escaped here,
so nothing anyone types or uploads can run in the page."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from assistant.compose import table_row_text
from corpus.types import Answer, Citation, Document, Hit, period_label


# Characters that make Markdown syntax: links and images ([x](javascript:…), ![x](…), [x]: url),
# code, emphasis, tables, headings and math. The chat renders Markdown, so user and document text
# gets them as character references: they look the same and mean nothing.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;",
                         **{c: f"&#{ord(c)};" for c in "[]()!`*_~|#$\\"}})


def esc(text: object) -> str:
    """``text`` safe inside HTML and Markdown: tags, attributes and Markdown syntax all inert."""
    return ("" if text is None else str(text)).translate(_ESCAPES)


def _spans(text: str, needles: Sequence[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of ``needles`` in ``text``, longest needles first."""
    taken: list[tuple[int, int]] = []
    for needle in sorted({n for n in needles if n and n.strip()}, key=len, reverse=True):
        start = 0
        while (i := text.find(needle, start)) >= 0:
            j = i + len(needle)
            if all(j <= a or i >= b for a, b in taken):
                taken.append((i, j))
            start = j
    return sorted(taken)


def highlight(text: str, needles: Sequence[str], cls: str = "hl") -> str:
    """``text`` escaped, with each occurrence of ``needles`` wrapped in <mark>."""
    out, pos = [], 0
    for a, b in _spans(text, needles):
        out.append(esc(text[pos:a]))
        out.append(f'<mark class="{cls}">{esc(text[a:b])}</mark>')
        pos = b
    out.append(esc(text[pos:]))
    return "".join(out)


def quote_parts(quote: str) -> list[str]:
    """The verbatim pieces of a citation's quote (sentences are joined by "……")."""
    return [p.strip() for p in quote.split("……") if p.strip()]


def clause_path(path: Sequence[str]) -> str:
    return " › ".join(path)


def _copy_button(text: str) -> str:
    return f'<button class="ipqa-copy" type="button" data-copy="{esc(text)}" title="复制引用">复制引用</button>'


def _open_link(clause_id: str, label: str = "查看全文") -> str:
    return f'<a class="ipqa-open" href="javascript:void(0)" data-clause="{esc(clause_id)}">{esc(label)}</a>'


# --- chat ---------------------------------------------------------------------------


_MARK = re.compile(r"\[(\d+)\]")
# Why an answer was withheld (assistant/verify.py reason codes), as the chat shows it.
REASON_LABELS = {"place": "所问地区的文件", "subject": "所问对象", "figure": "所问数值", "period": "所问时期",
                 "relevance": "相关条款", "no_hits": "相关条款"}


def answer_markdown(answer: Answer, sources: str = "") -> str:
    """The chat bubble: the rewritten query in small text, the answer with [n], a compact
    source list; a not-found answer is set apart and lists the nearest clauses as 可能相关.
    ``sources`` (the panel's cards for this answer) travels hidden in the bubble: clicking any [n]
    of any answer shows them in the 出处 panel with card n highlighted (``SOURCES_JS``)."""
    parts = []
    if answer.rewritten_query:
        parts.append(f'<div class="ipqa-rewritten">按上下文理解为：{esc(answer.rewritten_query)}</div>')
    if answer.abstained:
        why = REASON_LABELS.get(answer.reason or "", "")
        lacking = "、".join(f"「{m}」" for m in answer.missing)
        badge = f'<span class="ipqa-reason">缺少：{esc(why)}{esc(lacking)}</span>' if why else ""
        parts.append(f'<div class="ipqa-notfound"><b>未找到答案</b> {badge}<br>{esc(answer.text)}</div>')
        if answer.related:
            items = "".join(f"<li>{esc(c.citation)}：{esc(_short(c.quote, 60))}</li>" for c in answer.related)
            parts.append(f'<div class="ipqa-related"><b>可能相关（不是答案）</b><ul>{items}</ul></div>')
    else:
        body = "".join(f'<sup class="ipqa-ref" data-n="{piece}">[{piece}]</sup>' if i % 2 else esc(piece)
                       for i, piece in enumerate(_MARK.split(answer.text)))
        parts.append(f'<div class="ipqa-answer">{body}</div>')
        if answer.citations:
            items = "".join(f'<li class="ipqa-ref" data-n="{c.n}">[{c.n}] {esc(c.citation)}{esc(_refers_note(c))}</li>'
                            for c in answer.citations)
            parts.append(f'<div class="ipqa-cites"><b>出处</b><ul>{items}</ul></div>')
    for note in answer.notes:
        if answer.abstained and note in answer.text:
            continue
        parts.append(f'<div class="ipqa-note">{esc(note)}</div>')
    if sources:
        parts.append(f'<div class="ipqa-cards-src">{sources}</div>')
    return f'<div class="ipqa-bubble">{"".join(parts)}</div>' if sources else "\n".join(parts)


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"


def _refers_note(c: Citation) -> str:
    """"（引用第六条、第九条）" after a citation whose quoted sentences cite other articles: of its own law by
    number, of another law with its name ("（引用专利法第三十一条）")."""
    named = [r.path[-1] if r.doc_id == c.doc_id else f"{r.title.removeprefix('中华人民共和国')}{r.path[-1]}"
             for r in c.refers if r.path]
    return f"（引用{'、'.join(named)}）" if named else ""


_LABEL = re.compile(r"^第[一二三四五六七八九十百零]+条\s*")  # an article's own number, before its text


def _refers_html(c: Citation) -> str:
    """The articles a clause's quoted sentences cite by number, each folded under its citation."""
    if not c.refers:
        return ""
    items = "".join(
        f'<details class="ipqa-refer" data-clause="{esc(r.clause_id)}"><summary>{esc(r.citation)}：'
        f'{esc(_short(_LABEL.sub("", r.text.strip(), count=1), 30))}</summary><div class="ipqa-clause">{esc(r.text.strip())}</div>'
        f'{_open_link(r.clause_id)}</details>' for r in c.refers)
    return f'<div class="ipqa-refers"><div class="ipqa-refers-head">本条引用的条文</div>{items}</div>'


def _citation_card(c: Citation, doc_date: str, *, related: bool = False) -> str:
    pieces = quote_parts(c.quote) if not related else []
    text = "\n".join(table_row_text(line) for line in c.text.strip().split("\n"))  # as the answer quotes rows
    body = highlight(text, pieces, cls="quote")
    meta = [f"文号：{esc(c.doc_number)}" if c.doc_number else "", f"日期：{esc(doc_date)}" if doc_date else ""]
    meta_html = " · ".join(m for m in meta if m)
    tag = "可能相关" if related else f"[{c.n}]"
    return (
        f'<div class="ipqa-card{" ipqa-card-related" if related else ""}" data-n="{c.n}">'
        f'<div class="ipqa-card-head"><span class="ipqa-n">{esc(tag)}</span> '
        f'<span class="ipqa-title">《{esc(c.title)}》</span></div>'
        f'<div class="ipqa-meta">{meta_html}</div>'
        f'<div class="ipqa-path">条款：{esc(clause_path(c.path))}</div>'
        f'<div class="ipqa-clause">{body}</div>'
        f'<div class="ipqa-cite-line"><code>{esc(c.citation)}</code> {_copy_button(c.citation)} '
        f'{_open_link(c.clause_id)}</div>'
        f"{_refers_html(c)}</div>"
    )


def sources_html(answer: Answer | None, doc_date: Callable[[str], str]) -> str:
    """The sources panel beside the chat: one card per citation (or per related clause)."""
    if answer is None:
        return '<div class="ipqa-empty">回答的出处会显示在这里：文件、文号、日期、条款路径和条款原文。</div>'
    if answer.abstained:
        if not answer.related:
            return '<div class="ipqa-empty">没有找到相关条款。</div>'
        cards = "".join(_citation_card(c, doc_date(c.doc_id), related=True) for c in answer.related)
        return f'<div class="ipqa-sources"><h4>可能相关的条款（不是答案）</h4>{cards}</div>'
    cards = "".join(_citation_card(c, doc_date(c.doc_id)) for c in answer.citations)
    return f'<div class="ipqa-sources"><h4>出处</h4>{cards}</div>'


# --- clause search ------------------------------------------------------------------


def search_html(hits: Sequence[Hit], terms: Sequence[str], query: str) -> str:
    if not hits:
        return f'<div class="ipqa-empty">没有找到与「{esc(query)}」相关的条款。</div>'
    rows = []
    for h in hits:
        scores = " · ".join(f"{'向量' if k == 'dense' else '关键词' if k == 'bm25' else esc(k)} {v:.3f}"
                            for k, v in h.scores.items())
        rows.append(
            f'<div class="ipqa-result" data-rank="{h.rank}">'
            f'<div class="ipqa-card-head"><span class="ipqa-n">{h.rank}</span> '
            f'<span class="ipqa-title">《{esc(h.title)}》</span> <span class="ipqa-score">得分 {h.score:.3f}'
            f'{(" （" + scores + "）") if scores else ""}</span></div>'
            f'<div class="ipqa-path">条款：{esc(clause_path(h.path))}</div>'
            f'<div class="ipqa-clause">{highlight(h.chunk.text.strip(), terms)}</div>'
            f'<div class="ipqa-cite-line"><code>{esc(h.citation)}</code> {_copy_button(h.citation)} '
            f'{_open_link(h.chunk.clause_id, "在文档中查看")}</div></div>')
    return f'<div class="ipqa-results"><div class="ipqa-count">共 {len(hits)} 条结果</div>{"".join(rows)}</div>'


# --- documents ----------------------------------------------------------------------


def document_html(doc: Document, focus: str | None = None, *, info: str = "") -> str:
    """A whole document, one block per clause; the focused clause is marked and scrolled to."""
    blocks = []
    for c in doc.clauses:
        cls = "ipqa-doc-clause" + (" ipqa-focus" if c.clause_id == focus else "")
        depth = min(len(c.path), 4)
        blocks.append(f'<div class="{cls} depth-{depth}" data-id="{esc(c.clause_id)}">'
                      f'<div class="ipqa-doc-path">{esc(clause_path(c.path))}</div>'
                      f'<div class="ipqa-doc-text">{esc(c.text.strip())}</div></div>')
    return (f'<div class="ipqa-doc"><div class="ipqa-doc-head"><b>《{esc(doc.title)}》</b>'
            f'<button class="ipqa-close" type="button" title="关闭">关闭 ✕</button>'
            f'<div class="ipqa-meta">{esc(info)}</div></div>{"".join(blocks)}</div>')


def doc_meta_line(doc) -> str:
    """文号 · 发文机关 · 日期 · 地区 · 期限 · 类型, whatever the document has."""
    parts = [doc.doc_number, doc.issuer, doc.issued.isoformat() if doc.issued else None,
             "/".join(doc.region) if doc.region else None,
             period_label(doc.period), doc.kind]
    return " · ".join(p for p in parts if p)


def preview_html(previews) -> str:
    """What each uploaded file would add: title, metadata, first clauses; or the error."""
    if not previews:
        return ""
    out = []
    for p in previews:
        if p.error:
            out.append(f'<div class="ipqa-preview ipqa-error"><b>{esc(p.name)}</b>：{esc(p.error)}</div>')
            continue
        d = p.document
        first = [c for c in d.clauses if c.text.strip()][:5]
        items = "".join(f"<li>{'' if c.text.strip().startswith(c.label) else '<b>' + esc(clause_path(c.path)) + '</b> '}"
                        f"{esc(_short(c.text, 80))}</li>" for c in first)
        dup = (f'<div class="ipqa-note">与已有文档 {esc(p.duplicate_of)} 内容相同，加入时会跳过。</div>'
               if p.duplicate_of else "")
        out.append(f'<div class="ipqa-preview"><b>{esc(p.name)}</b> → 《{esc(d.title)}》'
                   f'<div class="ipqa-meta">{esc(doc_meta_line(d))} · 共 {len(d.clauses)} 个条款</div>{dup}'
                   f'<ul>{items}</ul></div>')
    return "".join(out)


CSS = """
/* Toast headings in Chinese: Gradio 6 writes the toast's type ("Error", "Warning", "Info") and
   ignores the title it is given, so the type's word is hidden and the Chinese one shown instead. */
.toast-title.error, .toast-title.warning, .toast-title.info, .toast-title.success { font-size: 0; }
.toast-title.error::before, .toast-title.warning::before, .toast-title.info::before,
.toast-title.success::before { font-size: var(--text-md, 14px); }
.toast-title.error::before { content: "出错了"; }
.toast-title.warning::before { content: "请注意"; }
.toast-title.info::before { content: "提示"; }
.toast-title.success::before { content: "完成"; }

.ipqa-rewritten {font-size: 0.8em; color: #6b7280; margin-bottom: 4px;}
.ipqa-notfound {background: #fff7ed; border-left: 4px solid #f97316; padding: 6px 10px; border-radius: 4px;}
.ipqa-reason {display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px; background: #fed7aa; color: #7c2d12; font-size: 0.85em;}
.ipqa-related {font-size: 0.9em; color: #4b5563; margin-top: 6px;}
.ipqa-cites {font-size: 0.85em; color: #374151; margin-top: 6px;}
.ipqa-note {font-size: 0.8em; color: #92400e; margin-top: 4px;}
.ipqa-card, .ipqa-result, .ipqa-preview {border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 10px;
  margin-bottom: 8px; background: #fff;}
.ipqa-card-related {background: #fafafa; border-style: dashed;}
.ipqa-refers {margin-top: 6px; padding-top: 4px; border-top: 1px dashed #e5e7eb; font-size: 0.9em;}
.ipqa-refers-head {color: #6b7280; font-size: 0.85em;}
.ipqa-refer summary {cursor: pointer; color: #374151;}
.ipqa-cards-src {display: none;}
.ipqa-ref {cursor: pointer; color: #4f46e5;}
.ipqa-card-active {border-color: #6366f1; box-shadow: 0 0 0 2px #c7d2fe;}
.ipqa-n {display: inline-block; min-width: 1.8em; font-weight: 600; color: #1d4ed8;}
.ipqa-title {font-weight: 600;}
.ipqa-meta, .ipqa-path, .ipqa-score, .ipqa-count {font-size: 0.85em; color: #6b7280;}
.ipqa-clause {margin: 6px 0; white-space: pre-wrap; line-height: 1.6;}
.ipqa-clause mark.quote {background: #fde68a;}
mark.hl {background: #bfdbfe;}
.ipqa-cite-line code {font-size: 0.85em; background: #f3f4f6; padding: 1px 4px;}
.ipqa-copy, .ipqa-close {font-size: 0.8em; border: 1px solid #d1d5db; border-radius: 4px; padding: 0 6px;
  background: #f9fafb; cursor: pointer;}
.ipqa-open {font-size: 0.85em; margin-left: 6px; color: #1d4ed8; cursor: pointer;}
.ipqa-viewer:empty {display: none;}
.ipqa-viewer {position: fixed; top: 5vh; left: 10vw; width: 80vw; height: 88vh; overflow: auto; z-index: 1000;
  background: #fff; border: 1px solid #9ca3af; border-radius: 8px; box-shadow: 0 10px 40px rgba(0,0,0,.3);
  padding: 12px 18px;}
.ipqa-doc-head {position: sticky; top: -12px; background: #fff; padding: 6px 0; border-bottom: 1px solid #e5e7eb;}
.ipqa-doc-head .ipqa-close {float: right;}
.ipqa-doc-clause {padding: 4px 6px; border-left: 3px solid transparent;}
.ipqa-doc-clause.ipqa-focus {background: #fef3c7; border-left-color: #f59e0b;}
.ipqa-doc-path {font-size: 0.75em; color: #9ca3af;}
.ipqa-doc-text {white-space: pre-wrap; line-height: 1.6;}
.ipqa-error {border-color: #fca5a5; background: #fef2f2;}
.ipqa-empty {color: #6b7280; padding: 8px;}
"""

# Clicks inside a sources/results panel: copy a citation, open a clause in its document
# (fetched from the server and shown in an overlay), close the overlay.
PANEL_JS = """
element.addEventListener('click', async (e) => {
  const copy = e.target.closest('.ipqa-copy');
  if (copy) {
    const text = copy.dataset.copy;
    try { await navigator.clipboard.writeText(text); } catch (err) {
      const t = document.createElement('textarea'); t.value = text; document.body.appendChild(t);
      t.select(); document.execCommand('copy'); t.remove();
    }
    copy.textContent = '已复制';
    setTimeout(() => { copy.textContent = '复制引用'; }, 1500);
    return;
  }
  const viewer = element.querySelector('.ipqa-viewer');
  if (e.target.closest('.ipqa-close')) { viewer.innerHTML = ''; return; }
  const open = e.target.closest('.ipqa-open');
  if (open) {
    viewer.innerHTML = '<div class="ipqa-empty">正在打开文档……</div>';
    viewer.innerHTML = await server.open_clause(open.dataset.clause);
    const focus = viewer.querySelector('.ipqa-focus');
    if (focus) focus.scrollIntoView({block: 'center'});
  }
});
"""

# Gradio labels a few of its own controls in English whatever the page's language (the chat's copy
# buttons, the table's filter box): they are given Chinese labels as they appear.
LABELS_JS = """
const ZH = {'copy': '复制', 'Copy': '复制', 'Copy message': '复制', 'Copy conversation': '复制整个对话',
            'Copied!': '已复制', 'Copied message': '已复制', 'Filter...': '筛选……', 'Search...': '搜索……',
            'Like': '赞', 'Dislike': '踩', 'Clear': '清空', 'Fullscreen': '全屏', 'Exit fullscreen mode': '退出全屏',
            'Copy table data': '复制表格', 'Retry': '重试', 'Undo': '撤销', 'Scroll down': '滚动到底部'};
const zhLabels = () => document.querySelectorAll('[aria-label], [title], input[placeholder]').forEach((el) => {
  for (const attr of ['aria-label', 'title', 'placeholder']) {
    const v = el.getAttribute(attr);
    if (v && ZH[v]) el.setAttribute(attr, ZH[v]);
  }
});
new MutationObserver(zhLabels).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                       attributeFilter: ['aria-label', 'title', 'placeholder']});
zhLabels();
"""

# The 出处 panel also answers clicks on [n] in any chat answer: it shows that answer's cards (carried
# hidden in its bubble) with card n highlighted.
SOURCES_JS = PANEL_JS + LABELS_JS + """
document.addEventListener('click', (e) => {
  const ref = e.target.closest('#ipqa-chat .ipqa-ref');
  const cards = ref && ref.closest('.ipqa-bubble')?.querySelector('.ipqa-cards-src');
  if (!cards) return;
  const shown = element.querySelector('.ipqa-sources, .ipqa-empty');
  const fresh = document.createElement('div');
  fresh.innerHTML = cards.innerHTML;
  const panel = fresh.firstElementChild;
  if (shown && panel) shown.replaceWith(panel);
  element.querySelectorAll('.ipqa-card').forEach((c) => {
    c.classList.toggle('ipqa-card-active', c.dataset.n === ref.dataset.n);
  });
  const active = element.querySelector('.ipqa-card-active');
  if (active) active.scrollIntoView({block: 'nearest'});
});
"""

PANEL_TEMPLATE = '${value}<div class="ipqa-viewer"></div>'

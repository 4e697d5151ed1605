"""Cleaning: from extracted text to the text that clauses are cut from.

Scraped government pages carry site chrome (navigation, view counters,
related-article lists, contact blocks, QR-code notes), sometimes a second
run-on copy of the whole text, and tables flattened to one cell per line. This
module removes the chrome, keeps one copy, rebuilds tables as one row per line
and normalises whitespace. It never rewrites the characters of the content:
punctuation, digits and dashes stay as the document wrote them.

The result is one paragraph per line (``\\n``-separated, no blank lines).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

# --- whitespace -------------------------------------------------------------

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
# Every kind of horizontal space, including NBSP and the ideographic space.
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\x0b\x0c]+")
_CJK = r"\u3400-\u9fff\uf900-\ufaff"
_MD_HEADING = re.compile(r"^#{1,6}\s+")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def normalize_line(line: str) -> str:
    """Collapse horizontal whitespace to single ASCII spaces and strip the ends."""
    return _SPACES.sub(" ", line).strip()


def compact(text: str) -> str:
    """Text with all whitespace removed, for comparisons that ignore layout."""
    return re.sub(r"\s+", "", text.translate(_ZERO_WIDTH))


# --- boilerplate patterns -----------------------------------------------------

# Lines made only of these tokens are navigation bars.
_NAV_TOKENS = {
    "登录", "注册", "退出", "首页", "无障碍", "智能检索", "检索", "搜索", "站内搜索", "高级搜索",
    "打印", "关闭", "打印本页", "关闭本页", "关闭窗口", "【打印】", "【关闭】", "[打印]", "[关闭]",
    "加入收藏", "收藏", "设为首页", "网站地图", "返回顶部", "返回", "分享", "分享到", "分享到:",
    "字号", "字号:", "大", "中", "小", "【大】", "【中】", "【小】", "繁体", "简体", "繁體", "English",
    "长者模式", "无障碍浏览", "微信", "微博", "QQ", "扫一扫", "|", "·", "/",
}
_NAV_LINE = re.compile(
    r"^(?:当前位置|您现在的位置|你现在的位置|您的位置|你的位置|所在位置|当前位置是)\s*[:：]?.*$"
    r"|^(?:上一(?:条|篇)|下一(?:条|篇))\s*[:：]?.{0,60}$"
    r"|^\d{4}年\d{1,2}月\d{1,2}日\s*星期[一二三四五六日天]$"
    r"|^(?:https?://|www\.)\S+$"
    r"|^[•·●◆■▪►\-\s]+$"
)
_META_KEYS = r"(?:发布时间|发布日期|发文日期|成文日期|来源|信息来源|作者|浏览次数|阅读次数|点击数|点击量|访问量|栏目|责任编辑|编辑|审核|字号)"
_META_FIELD = re.compile(_META_KEYS + r"\s*[:：]")
_SHORT_META_LINE = re.compile(
    r"^(?:来源|作者|编辑|责任编辑|审核|信息来源|发布时间|发布日期)\s*[:：].{0,40}$"
    r"|^(?:时间|日期)\s*[:：]\s*[\d\-/.年月日: ]+$"
)
_COUNTER = re.compile(r"(?:浏览|阅读|点击|访问)(?:次数|量|数)\s*[:：]")
_CONTACT_LINE = re.compile(
    r"^联\s*系\s*我\s*们$"
    r"|^(?:联系方式|联系电话|客服专线|客服电话|服务热线|咨询电话|热线电话|传真|邮箱|电子邮箱|"
    r"E-?mail|地址|通讯地址|邮编|邮政编码|QQ群?|微信号)\s*[:：].{0,60}$",
    re.I,
)
_PHONE_ONLY = re.compile(r"^[\d\-—()（）转\s]{7,}$")
# Site footers. Each phrase is specific enough not to match policy text
# ("明确版权归属", "强化技术支持" are content).
_SITE_FOOTER = re.compile(
    r"收集整理[,，]?\s*相关权利|相关权利归属|版权所有|版权归.{0,12}所有|Copyright|©|ICP备|ICP证|公网安备|网站标识码|"
    r"(?:技术支持|主办单位|承办单位|主管单位)\s*[:：]|建议使用.{0,20}浏览器|分辨率.{0,12}(?:浏览|以上)|"
    r"扫描二维码|扫一扫|二维码(?:无法|查看|分享)",
    re.I,
)
_ATTACHMENT_FILE = re.compile(
    r"^(?:(?:原文|附件|附件下载|下载附件|相关附件|下载)\s*[:：]?\s*)?[^。；]{1,120}\."
    r"(?:zip|rar|7z|pdf|docx?|xlsx?|wps|ofd|txt|jpe?g|png|gif)$",
    re.I,
)
# Markers after which the rest of a web page is site chrome (related lists,
# contact blocks, footers). Only honoured in the second half of a document.
_FOOTER_MARKER = re.compile(
    r"^(?:打印\s*关闭|【?打印本页】?|【?关闭窗口】?|上一(?:条|篇)|下一(?:条|篇)|相关文章|相关阅读|相关链接|相关新闻|"
    r"推荐阅读|热点文章|最新文章|猜你喜欢|文章详情|联\s*系\s*我\s*们|扫描二维码.*|相关附件\s*[:：]?|分享到\s*[:：]?.*|"
    r"版权所有.*)$"
)
_EMPTY_ATTACHMENT = re.compile(r"^(?:附件|相关附件|附件下载)\s*[:：]?$")

_DATE_PATTERNS = [
    re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"),
    re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"),
]


def parse_date(text: str) -> dt.date | None:
    """First date written as 2017年8月3日, 2017-08-03 or 2017/8/3 in ``text``."""
    for pattern in _DATE_PATTERNS:
        m = pattern.search(text)
        if m:
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    return None


@dataclass
class CleanResult:
    """Cleaned text plus what was learnt while removing page chrome."""

    text: str
    notes: list[str] = field(default_factory=list)
    published: dt.date | None = None  # from a page's 发布时间 line


def _is_nav_line(line: str) -> bool:
    tokens = re.split(r"[ |]+", line)
    return all(t in _NAV_TOKENS for t in tokens if t) and any(tokens)


def _is_boilerplate(line: str) -> bool:
    if _is_nav_line(line) or _NAV_LINE.match(line):
        return True
    if len(line) <= 120 and len(_META_FIELD.findall(line)) >= 2:
        return True
    if len(line) <= 60 and (_SHORT_META_LINE.match(line) or _COUNTER.search(line)):
        return True
    if len(line) <= 80 and (_CONTACT_LINE.match(line) or (_PHONE_ONLY.match(line) and not parse_date(line))):
        return True
    if len(line) <= 80 and _SITE_FOOTER.search(line):
        return True
    if len(line) <= 160 and _ATTACHMENT_FILE.match(line):
        return True
    return False


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[。；！？])", text) if len(s) >= 8]


def _drop_run_on_copies(lines: list[str], notes: list[str]) -> list[str]:
    """Drop long lines whose sentences are repeated elsewhere (a second copy of the text).

    Scraped pages sometimes hold the whole document twice: once as one run-on
    paragraph, then formatted. The formatted copy has the line structure that
    headings need, so the long line goes.
    """
    long_idx = [i for i, line in enumerate(lines) if len(line) >= 300]
    if not long_idx:
        return lines
    dropped: set[int] = set()
    for i in long_idx:
        rest = compact("\n".join(l for j, l in enumerate(lines) if j != i and j not in dropped))
        sents = _sentences(compact(lines[i]))
        total = sum(len(s) for s in sents)
        if total == 0:
            continue
        covered = sum(len(s) for s in sents if s in rest)
        if covered / total >= 0.6 and total >= 0.5 * len(compact(lines[i])):
            dropped.add(i)
    if dropped:
        notes.append(f"删除重复的整段文本副本 {len(dropped)} 处")
    return [l for i, l in enumerate(lines) if i not in dropped]


# --- flattened tables -----------------------------------------------------------

_HEADER_CELL = re.compile(
    r"^(?:指标|指标名称|主要指标|指标属性|属性|序号|单位|计量单位|备注|类别|名称|项目|内容|年均增速|年均增长|增速|"
    r"目标值?|现状值?|基期值?|基数|\d{4}年(?:目标|基数|值|底)?|\d+年累计(?:目标)?|[一-龥]{0,4}年份)$"
)
_NAME_HEADERS = {"指标", "指标名称", "主要指标", "名称", "项目", "内容", "类别"}
_BARE_VALUE_HEADERS = {"指标属性", "属性"}
_CELL = re.compile(r"^[^。；;]{1,40}$")
_POLICY_HEADING = re.compile(r"^(?:[一二三四五六七八九十]+[、．.]|[(（][一二三四五六七八九十\d]+[)）]|\d+[.．、](?!\d)|——)")


def format_table_row(header: list[str], row: list[str]) -> str:
    """One table row as one line: ``name | header: value | ... | attribute``.

    The first cell names the row; later cells carry their column header so the
    line can be read (and quoted) on its own. Attribute columns (指标属性) keep
    their bare value.
    """
    cells = [row[0]]
    for head, value in zip(header[1:], row[1:]):
        if not head or head in _BARE_VALUE_HEADERS:
            cells.append(value)
        else:
            cells.append(f"{head}: {value}")
    return " | ".join(cells)


def _is_cell(line: str) -> bool:
    return bool(_CELL.match(line)) and not _POLICY_HEADING.match(line)


def _rebuild_tables(lines: list[str], notes: list[str]) -> list[str]:
    """Rebuild tables whose cells were flattened to one line each.

    A table starts with a run of at least two header cells (指标, 2015年, 年均增速,
    指标属性 …); when the run does not start with a name header (指标, 项目 …) the
    name column's header cell was empty in the source. Rows are the following
    groups of as many cells as there are columns, as long as every group is
    made of short cell-like lines.
    """
    out: list[str] = []
    i, rebuilt = 0, 0
    while i < len(lines):
        j = i
        while j < len(lines) and _HEADER_CELL.match(lines[j]):
            j += 1
        header = lines[i:j]
        if len(header) >= 2 and header[0] in _NAME_HEADERS:
            columns = header
        elif len(header) >= 2:
            columns = [""] + header
        else:
            out.append(lines[i])
            i += 1
            continue
        n = len(columns)
        rows: list[list[str]] = []
        k = j
        while k + n <= len(lines):
            group = lines[k:k + n]
            if not all(_is_cell(c) for c in group) or _HEADER_CELL.match(group[0]):
                break
            rows.append(group)
            k += n
        if not rows:
            out.append(lines[i])
            i += 1
            continue
        out.extend(format_table_row(columns, r) for r in rows)
        rebuilt += len(rows)
        i = k
    if rebuilt:
        notes.append(f"重建表格 {rebuilt} 行")
    return out


# --- the pipeline -------------------------------------------------------------


def clean_text(raw: str, *, web_page: bool = True) -> CleanResult:
    """Clean extracted text; see the module docstring.

    ``web_page`` enables the rules for scraped pages (chrome, footers, duplicate
    copies). Laws from curated Markdown pass ``False`` so that nothing of theirs
    can be mistaken for page chrome.
    """
    notes: list[str] = []
    published: dt.date | None = None
    text = raw.translate(_ZERO_WIDTH).replace("\r\n", "\n").replace("\r", "\n")
    text = _HTML_COMMENT.sub("", text)
    text = _CONTROL.sub("", text)

    lines: list[str] = []
    for raw_line in text.split("\n"):
        # Markdown heading marks are layout; the heading's words stay.
        line = _MD_HEADING.sub("", normalize_line(raw_line))
        if line:
            lines.append(line)

    if web_page:
        kept: list[str] = []
        removed = 0
        footer_from = None
        total_chars = sum(len(l) for l in lines) or 1
        seen_chars = 0
        for idx, line in enumerate(lines):
            seen_chars += len(line)
            if footer_from is None and seen_chars / total_chars > 0.5 and _FOOTER_MARKER.match(line):
                footer_from = idx
                break
            if len(line) <= 120 and len(_META_FIELD.findall(line)) >= 1:
                published = published or _published_date(line)
            if _is_boilerplate(line):
                removed += 1
                continue
            kept.append(line)
        if footer_from is not None:
            notes.append(f"删除页脚及相关链接 {len(lines) - footer_from} 行")
        if removed:
            notes.append(f"删除网站导航、计数、联系方式等 {removed} 行")
        lines = kept
        # A trailing 附件: with nothing after it names attachments the page did not include.
        while lines and _EMPTY_ATTACHMENT.match(lines[-1]):
            lines.pop()
        lines = _drop_run_on_copies(lines, notes)
        lines = _drop_consecutive_duplicates(lines, notes)
        lines = _rebuild_tables(lines, notes)

    cleaned = "\n".join(lines)
    return CleanResult(text=cleaned + "\n" if cleaned else "", notes=notes, published=published)


def _published_date(line: str) -> dt.date | None:
    m = re.search(r"(?:发布时间|发布日期|发文日期|成文日期)\s*[:：]\s*(.{6,20})", line)
    return parse_date(m.group(1)) if m else None


def _drop_consecutive_duplicates(lines: list[str], notes: list[str]) -> list[str]:
    out: list[str] = []
    dropped = 0
    for line in lines:
        if out and len(line) >= 6 and compact(out[-1]) == compact(line):
            dropped += 1
            continue
        out.append(line)
    if dropped:
        notes.append(f"删除紧邻重复行 {dropped} 行")
    return out

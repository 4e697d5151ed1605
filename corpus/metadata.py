"""Document metadata read from cleaned text: title, issuer, 文号, date, region, period, kind.

Policies carry theirs in the notice that issued them (关于印发《…》的通知, 文号,
the issuing office and the date above the policy); laws in the Markdown header
block (title, then one line per adoption or revision).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from corpus.clean import parse_date
from corpus.numerals import cn_to_int
from corpus.regions import detect_region
from corpus.types import Revision

_DOC_NUMBER = re.compile(
    r"^[\u4e00-\u9fa5A-Za-z]{1,14}\s*[〔\[［(（【]\s*(?:19|20)\d{2}\s*[〕\]］)）】]\s*第?\s*\d{1,5}\s*号$"
)
DATE_LINE = re.compile(r"^\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日$")
_ISO_DATE_LINE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_REVISION_LINE = re.compile(r"^(\d{4}年\d{1,2}月\d{1,2}日)\s*(.*)$")
ORG_END = re.compile(
    r"(?:人民政府|办公室|办公厅|知识产权局|监督管理局|管理局|局|委员会|委|厅|部|院|管委会|管理委员会|中心|政府|法院|检察院|协会|联合会)$"
)
_NOTICE_TITLE = re.compile(r"^(?P<issuer>.*?)\s*关于(?:印发|转发|下发|公布)\s*(?P<title>.+?)\s*的通知$")
_FIVE_YEAR = {"十一五": (2006, 2010), "十二五": (2011, 2015), "十三五": (2016, 2020),
              "十四五": (2021, 2025), "十五五": (2026, 2030)}
_YEAR_RANGE = re.compile(r"((?:19|20)\d{2})\s*[-—–~～至到]+\s*((?:19|20)\d{2})\s*年?")
_BODY_PERIOD = re.compile(
    r"(?:时间|期限|规划期|实施期|周期|时期)(?:为|是|[:：])?\s*[(（]?((?:19|20)\d{2})\s*[-—–~～至到]+\s*((?:19|20)\d{2})\s*年"
)
_BODY_START = re.compile(r"^第[一二三四五六七八九十百零〇\d]+[条章节编]")
# A red-header file's letterhead ("××市知识产权局文件") and the lines around its 文号.
_LETTERHEAD = re.compile(r"^(?P<org>.{2,40}?)\s*文\s*件$")
_NOTICE_QUOTED = re.compile(r"关于(?:印发|转发|下发|公布)《(?P<title>[^《》]{4,60})》的通知")
_FILE_MARKS = ("签发人", "密级", "紧急程度", "特急", "加急", "平急", "急件", "机密", "秘密", "公开方式", "发文日期")
_VALID_YEARS = re.compile(r"有效期(?:为|是)?\s*([一二三四五六七八九十两\d]{1,3})\s*年")
_VALID_UNTIL = re.compile(r"有效期(?:至|到|截至)\s*((?:19|20)\d{2})\s*年")
# Suffix of a title → kind. Longest first.
_KINDS = [
    ("实施细则", "实施细则"), ("实施方案", "实施方案"), ("工作方案", "工作方案"), ("行动方案", "行动方案"),
    ("行动计划", "行动计划"), ("方案", "方案"), ("工作要点", "工作要点"), ("要点", "工作要点"),
    ("规划", "规划"), ("纲要", "规划"), ("实施意见", "意见"), ("指导意见", "意见"), ("若干意见", "意见"),
    ("意见", "意见"), ("管理办法", "办法"), ("暂行办法", "办法"), ("办法", "办法"), ("若干规定", "规定"),
    ("规定", "规定"), ("细则", "细则"), ("条例", "条例"), ("决定", "决定"), ("解释", "司法解释"),
    ("批复", "司法解释"), ("通知", "通知"), ("指南", "指南"), ("措施", "政策措施"), ("政策", "政策措施"),
]
# LawRefBook keeps one folder per category; its name is the most reliable kind.
_LAW_FOLDERS = {
    "宪法": "法律", "宪法相关法": "法律", "民法典": "法律", "民法商法": "法律", "行政法": "法律",
    "经济法": "法律", "社会法": "法律", "刑法": "法律", "诉讼与非诉讼程序法": "法律",
    "行政法规": "行政法规", "司法解释": "司法解释", "部门规章": "部门规章", "地方性法规": "地方性法规",
    "案例": "案例",
}
LAW_KINDS = ("法律", "行政法规", "司法解释", "部门规章", "地方性法规")


@dataclass(frozen=True)
class Metadata:
    title: str
    issuer: str | None
    doc_number: str | None
    issued: dt.date | None
    region: tuple[str, ...]
    region_aliases: tuple[str, ...]
    period: tuple[int, int] | None
    kind: str
    revisions: tuple[Revision, ...]


def notice_inner_title(line: str) -> str | None:
    """关于印发《乌海市…规划》的通知 → 乌海市…规划 (also without 《》)."""
    m = _NOTICE_TITLE.match(line)
    if not m:
        return None
    inner = m.group("title").strip()
    if inner.startswith("《") and inner.endswith("》"):
        inner = inner[1:-1]
    return inner.replace(" ", "") or None


def _is_file_mark(line: str) -> bool:
    """A red-header file's lines above its title: letterhead, 文号, 签发人, 密级 and the like."""
    return bool(_LETTERHEAD.match(line) and ORG_END.search(_LETTERHEAD.match(line).group("org"))) or bool(
        _DOC_NUMBER.match(line)) or line.startswith(_FILE_MARKS)


def _policy_title(lines: list[str], first: str) -> str:
    """A policy's title: its first line, unless that is a red-header file's letterhead; then the
    policy the notice issues (关于印发《…》的通知 → …), or the first line below the file marks."""
    if not _is_file_mark(first):
        return notice_inner_title(first) or first
    head = [line.strip() for line in lines[:15] if line.strip()]
    inner = next((t for t in map(notice_inner_title, head) if t), None)
    # (a PDF's line joiner may have run the notice's title into the 主送 line below it)
    quoted = next((m.group("title") for m in map(_NOTICE_QUOTED.search, head) if m), None)
    return inner or quoted or next((line for line in head if not _is_file_mark(line)), first)


def _law_header(lines: list[str]) -> list[Revision]:
    """The revision lines under a law's title, before its body (a date at the end is a signature)."""
    revisions = []
    for line in lines[1:40]:
        if _BODY_START.match(line):
            break
        m = _REVISION_LINE.match(line)
        if not m:
            if revisions:
                break
            continue
        date = parse_date(m.group(1))
        if date:
            revisions.append(Revision(date, m.group(2).strip().rstrip("）)　 ")))
    return revisions


def _law_issuer(revisions: list[Revision], title: str) -> str | None:
    if title.startswith(("最高人民法院", "最高人民检察院")):
        return "最高人民法院" if title.startswith("最高人民法院") else "最高人民检察院"
    for rev in revisions:
        note = rev.note
        for org in ("全国人民代表大会常务委员会", "全国人民代表大会", "国务院", "最高人民法院", "最高人民检察院"):
            if org in note:
                return org
        m = re.search(r"([\u4e00-\u9fa5]{2,12}?(?:省|市|自治区|自治州|县))第?[^，。]*?人民代表大会常务委员会", note)
        if m:
            return f"{m.group(1)}人民代表大会常务委员会"
        m = re.search(r"([\u4e00-\u9fa5]{2,20}?(?:部|总局|局|委员会|署|行))令", note)
        if m:
            return m.group(1).removeprefix("中华人民共和国")
    return None


def _law_kind(title: str, issuer: str | None, folder_hint: str | None) -> str:
    if folder_hint in _LAW_FOLDERS:
        return _LAW_FOLDERS[folder_hint]
    if title.startswith(("最高人民法院", "最高人民检察院")):
        return "司法解释"
    if issuer in ("全国人民代表大会常务委员会", "全国人民代表大会"):
        return "法律" if title.endswith("法") or "法律" in title else "法律性决定"
    if issuer == "国务院":
        return "行政法规"
    if issuer and issuer.endswith("人民代表大会常务委员会"):
        return "地方性法规"
    if issuer:
        return "部门规章"
    return "法律" if title.startswith("中华人民共和国") and title.endswith("法") else "法规"


def _policy_kind(title: str) -> str:
    t = re.sub(r"[(（][^)）]*[)）]$", "", title).strip()
    for suffix, kind in _KINDS:
        if t.endswith(suffix):
            return kind
    return "政策文件"


def _valid_period(text: str, issued: dt.date | None) -> tuple[int, int] | None:
    """有效期三年 (from the date it was issued) or 有效期至2025年12月31日."""
    if issued is None:
        return None
    m = _VALID_UNTIL.search(text)
    if m and int(m.group(1)) >= issued.year:
        return issued.year, int(m.group(1))
    m = _VALID_YEARS.search(text)
    if m:
        years = int(m.group(1)) if m.group(1).isdigit() else cn_to_int(m.group(1).replace("两", "二"))
        if 0 < years <= 20:
            return issued.year, issued.year + years - (1 if (issued.month, issued.day) == (1, 1) else 0)
    return None


def _period(title: str, text: str) -> tuple[int, int] | None:
    for name, years in _FIVE_YEAR.items():
        if name in title:
            return years
    m = _YEAR_RANGE.search(title)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.match(r"^((?:19|20)\d{2})年", title)
    if m:
        return int(m.group(1)), int(m.group(1))
    m = _BODY_PERIOD.search(text[:5000])
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def extract_metadata(text: str, *, articles: bool, published: dt.date | None = None,
                     title_hint: str | None = None, folder_hints: tuple[str, ...] = (),
                     version_hint: dt.date | None = None, law_source: bool = False) -> Metadata:
    """Metadata of one cleaned document.

    ``articles``: the text is organised in articles; ``law_source``: it comes from a
    curated law collection (title on the first line, revision lines after it);
    ``folder_hints``: names of the folders holding the file, nearest first.
    """
    lines = text.split("\n")
    first = lines[0] if lines else ""
    revisions = _law_header(lines) if articles else []
    law = articles and (bool(revisions) or law_source)
    folder_hint = next((f for f in folder_hints if f in _LAW_FOLDERS), None)

    if law:
        title = first
    else:
        title = _policy_title(lines, first)
        if len(title) > 80 or not title:
            title = title_hint or title[:40]

    doc_number = next((l.replace(" ", "") for l in lines[:30] if _DOC_NUMBER.match(l)), None)
    if law:
        issuer, issued, doc_number = _law_signature(revisions, title, version_hint, doc_number)
        kind = _law_kind(title, issuer, folder_hint)
    else:
        issuer, issued = _policy_signature(lines, published)
        kind = _LAW_FOLDERS.get(folder_hint or "") or _policy_kind(title)
    region, aliases = detect_region(title, issuer)
    period = None if kind in LAW_KINDS else (_period(title, text) or _valid_period(text, issued))
    return Metadata(
        title=title, issuer=issuer, doc_number=doc_number, issued=issued, region=region,
        region_aliases=aliases, period=period, kind=kind, revisions=tuple(revisions),
    )


def _law_signature(revisions: list, title: str, version_hint: dt.date | None,
                   doc_number: str | None) -> tuple[str | None, dt.date | None, str | None]:
    """(issuer, issued, doc_number) of a law, read off its revision lines."""
    issuer = _law_issuer(revisions, title)
    adopted = [r for r in revisions if not re.fullmatch(r"施行|起施行", r.note)] or revisions
    issued = adopted[-1].date if adopted else version_hint
    m = re.search(r"令第\s*\d+\s*号", adopted[-1].note) if adopted else None
    # The order number of the version in force is on its own (latest) line;
    # an older line's number belongs to an earlier version.
    if m and not doc_number:
        org = "国务院" if "国务院令" in adopted[-1].note else ""
        doc_number = f"{org}{m.group(0).replace(' ', '')}"
    # Collections name files after their version date ("专利法(2020-10-17).md"), which
    # is later than the header when the header misses the latest revision.
    if version_hint and issued and (version_hint - issued).days > 60:
        issued = version_hint
    return issuer, issued, doc_number


def _policy_signature(lines: list[str], published: dt.date | None) -> tuple[str | None, dt.date | None]:
    """(issuer, issued) of a policy: an office on one line and the date on the next, above the
    policy (its notice) or at its end; else the notice title or the letterhead."""
    first, head = (lines[0] if lines else ""), lines[:30]
    issuer: str | None = None
    issued: dt.date | None = None
    candidates = list(enumerate(head)) + list(enumerate(lines))[-6:]
    for i, line in candidates:
        if DATE_LINE.match(line):
            issued = issued or parse_date(line)
            if i > 0 and ORG_END.search(lines[i - 1]) and len(lines[i - 1]) <= 40:
                issuer = issuer or lines[i - 1]
            if issuer:
                break
    issued = issued or published or next((parse_date(l) for l in head if _ISO_DATE_LINE.match(l)), None)
    if not issuer:
        m = _NOTICE_TITLE.match(first) or next(
            (m for m in (_NOTICE_TITLE.match(l) for l in head) if m), None)
        if m and m.group("issuer") and ORG_END.search(m.group("issuer").strip()):
            issuer = m.group("issuer").strip()
    letterhead = _LETTERHEAD.match(first)
    if not issuer and letterhead and ORG_END.search(letterhead.group("org")):
        issuer = letterhead.group("org")  # ××市知识产权局文件
    return issuer, issued

"""The clause tree: headings found in cleaned text, and the clauses they open.

Two heading systems exist:

- laws and regulations: 第X编 / 分编 / 章 / 节 / 条 (an article keeps its 款 and
  its items (一)(二) as its own paragraphs);
- policies: 一、 / (一) or （一） / 1. or 1、 / (1) / ①, often run into the
  paragraph ("4.强化专利导航…。围绕…").

A heading must start a line: "依照本法第十条…" and "11.5.14.2的试验" are body
text. Every character of the text belongs to exactly one clause: text before
the first heading becomes 题注 (a law's title and revision lines), or 通知 (the
notice that issued a policy) and 前言 (its preamble); the signature at the end
(the issuing office and the date on lines of their own) becomes 落款, not part of
the last clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from corpus.clean import compact
from corpus.metadata import DATE_LINE, ORG_END
from corpus.numerals import CN_NUMERAL_CHARS, normalize_number
from corpus.types import Clause

_N = rf"[{CN_NUMERAL_CHARS}\d]+"
_CN = "[一二三四五六七八九十]{1,3}"

# (level, pattern). Group 1 is the numeral; the match end is where the marker ends.
_LAW_LEVELS: list[tuple[str, re.Pattern[str]]] = [
    ("附件", re.compile(r"^附件\s*(\d*)(?:[:：]|\s|$)")),
    ("编", re.compile(rf"^第\s*({_N})\s*编(?=\s|$)")),
    ("分编", re.compile(rf"^第\s*({_N})\s*分编(?=\s|$)")),
    ("章", re.compile(rf"^第\s*({_N})\s*章(?=\s|$)")),
    ("节", re.compile(rf"^第\s*({_N})\s*节(?=\s|$)")),
    # "第一条 …", "第一条　…" and, in files typed without a space, "第一条为了…"; not body text
    # that starts with a reference ("第一条规定的…", "第三条、第四条").
    ("条", re.compile(rf"^第\s*({_N})\s*条(?:之({_N}))?(?![的、，,和或及与至规所中之])")),
]
_POLICY_LEVELS: list[tuple[str, re.Pattern[str]]] = [
    ("附件", _LAW_LEVELS[0][1]),
    ("部分", re.compile(rf"^第\s*({_N})\s*部分(?=\s|$|[:：、])")),
    ("编", _LAW_LEVELS[1][1]),
    ("章", _LAW_LEVELS[3][1]),
    ("节", _LAW_LEVELS[4][1]),
    ("一、", re.compile(rf"^({_CN})\s*[、．.](?!\d)")),
    ("(一)", re.compile(rf"^[(（]\s*({_CN})\s*[)）]")),
    ("1.", re.compile(r"^(\d{1,2})\s*(?:[、．]|\.(?!\d))")),
    ("(1)", re.compile(r"^[(（]\s*(\d{1,2})\s*[)）]")),
    ("①", re.compile(r"^([①-⑳])")),
]
_ITEM = re.compile(rf"^(?:[(（]\s*(?:{_CN}|\d{{1,2}})\s*[)）]|\d{{1,2}}[.．、](?!\d)|[①-⑳])")
_TOC = re.compile(r"^目\s*录$")
_SENTENCE_END = re.compile(r"[。；;！!？?]")
_MAX_TITLE = 40


@dataclass(frozen=True)
class Heading:
    line_start: int  # offset of the line in the text
    level: str
    rank: int
    label: str  # marker as written, without surrounding whitespace
    number: str | None  # normalised marker
    heading: str  # marker + title as shown in paths


def is_article_structured(lines: list[str]) -> bool:
    """True when a text is organised in articles (第X条), like laws and regulations: three or
    more, or a short text whose articles run 第一条, 第二条 …"""
    numbers = [normalize_number(m.group(0)) for m in map(_LAW_LEVELS[5][1].match, lines) if m]
    if len(numbers) >= 3:
        return True
    return len(numbers) == 2 and numbers == ["第1条", "第2条"]


def _normalise_marker(level: str, m: re.Match[str]) -> str | None:
    numeral = m.group(1)
    if level in ("编", "分编", "章", "节", "条", "部分"):
        raw = m.group(0).replace(" ", "")
        return normalize_number(raw)
    if level == "附件":
        return f"附件{numeral}" if numeral else "附件"
    if level == "一、":
        return f"{numeral}、"
    if level == "(一)":
        return f"({numeral})"
    if level == "1.":
        return f"{int(numeral)}."
    if level == "(1)":
        return f"({int(numeral)})"
    return numeral  # ①


def _heading_text(level: str, line: str, marker_end: int) -> str:
    """What a path shows for this heading: the marker and the heading's own title."""
    if level == "条":
        return line[:marker_end].replace(" ", "")
    if level in ("编", "分编", "章", "节", "部分"):
        # Typesetting spreads short titles ("总 则"); the title is "总则".
        marker = line[:marker_end].replace(" ", "")
        title = re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", line[marker_end:].strip())
        return f"{marker} {title}".strip()
    rest = line[marker_end:]
    end = _SENTENCE_END.search(rest)
    title_end = marker_end + (end.start() if end else len(rest))
    heading = line[:title_end].rstrip()
    if len(heading) - marker_end > _MAX_TITLE:
        comma = re.search(r"[，,：:]", rest)
        if comma and comma.start() <= _MAX_TITLE:
            heading = line[: marker_end + comma.start()].rstrip()
        else:
            heading = line[: marker_end + _MAX_TITLE - 10].rstrip() + "…"
    return heading


def find_headings(text: str, *, articles: bool | None = None) -> list[Heading]:
    """Headings of ``text`` in order. ``articles`` forces (or forbids) the law system."""
    lines = text.split("\n")
    if articles is None:
        articles = is_article_structured(lines)
    levels = _LAW_LEVELS if articles else _POLICY_LEVELS
    found: list[Heading] = []
    offset = 0
    in_toc = False
    for line in lines:
        start = offset
        offset += len(line) + 1
        if _TOC.match(line):
            in_toc = True
            continue
        for rank, (level, pattern) in enumerate(levels):
            m = pattern.match(line)
            if not m:
                continue
            if in_toc and level != "条":
                break  # a table of contents lists headings without opening them
            in_toc = False
            found.append(Heading(
                line_start=start, level=level, rank=rank, label=m.group(0).strip().replace(" ", ""),
                number=_normalise_marker(level, m), heading=_heading_text(level, line, m.end()),
            ))
            break
        else:
            if in_toc and line and not any(p.match(line) for _, p in levels):
                in_toc = False
    return _drop_unlabelled_toc(found, text) if articles else found


def _drop_unlabelled_toc(headings: list[Heading], text: str) -> list[Heading]:
    """Drop a table of contents that has no 目录 line.

    Such a TOC is a run of chapter/section headings on consecutive lines before
    the first article. Where the run restarts its numbering (the real 第一章
    follows the TOC), the TOC ends there; otherwise the whole run is a TOC when
    it is long and its headings appear again later.
    """
    structural = ("编", "分编", "章", "节")
    run: list[Heading] = []
    for h in headings:
        if h.level not in structural:
            break
        if run:
            prev = run[-1]
            if text.find("\n", prev.line_start) + 1 != h.line_start:
                break
        run.append(h)
    if len(run) < 3:
        return headings
    seen: set[tuple[str, str | None]] = set()
    for k, h in enumerate(run):
        if (h.level, h.number) in seen:
            return headings[k:]
        seen.add((h.level, h.number))
    later = {(h.level, h.number) for h in headings[len(run):]}
    if sum((h.level, h.number) in later for h in run) * 2 >= len(run):
        return headings[len(run):]
    return headings


def _paragraph_starts(text: str, articles: bool) -> tuple[int, ...]:
    """Offsets (relative) of the paragraphs (款) of a clause; items (一)(二) are not 款."""
    starts, offset = [], 0
    for i, line in enumerate(text.split("\n")):
        if line and (i == 0 or not (articles and _ITEM.match(line))):
            starts.append(offset)
        offset += len(line) + 1
    return tuple(starts) or (0,)


def build_clauses(doc_id: str, text: str, *, title: str = "", articles: bool | None = None) -> tuple[Clause, ...]:
    """Cut ``text`` into clauses (see the module docstring) in document order."""
    lines = text.split("\n")
    if articles is None:
        articles = is_article_structured(lines)
    headings = find_headings(text, articles=articles)

    spans: list[tuple[int, int, Heading | None, str]] = []  # start, end, heading, preamble label
    first = headings[0].line_start if headings else len(text)
    if first > 0:
        spans.extend(_preamble_spans(text[:first], title, articles))
    for i, h in enumerate(headings):
        end = headings[i + 1].line_start if i + 1 < len(headings) else len(text)
        spans.append((h.line_start, end, h, ""))
    if headings and (signed := _signature_start(text, headings[-1].line_start)) is not None:
        start, _, h, label = spans[-1]
        spans[-1:] = [(start, signed, h, label), (signed, len(text), None, "落款")]

    clauses: list[Clause] = []
    stack: list[tuple[Heading, Clause]] = []
    used_ids: set[str] = set()
    for start, end, h, pre_label in spans:
        body = text[start:end]
        if h is None:
            cid = _unique(f"{doc_id}:{pre_label}", used_ids)
            clauses.append(Clause(
                clause_id=cid, doc_id=doc_id, path=(pre_label,), label=pre_label, number=None,
                level=pre_label, heading=pre_label, text=body, start=start, end=end,
                parent_id=None, paragraph_starts=_paragraph_starts(body, False),
            ))
            continue
        while stack and stack[-1][0].rank >= h.rank:
            stack.pop()
        parent = stack[-1][1] if stack else None
        keys = [c.number or c.label for _, c in stack] + [h.number or h.label]
        cid = _unique(f"{doc_id}:{'/'.join(keys)}", used_ids)
        clause = Clause(
            clause_id=cid, doc_id=doc_id,
            path=tuple(c.heading for _, c in stack) + (h.heading,),
            label=h.label, number=h.number, level=h.level, heading=h.heading,
            text=body, start=start, end=end,
            parent_id=parent.clause_id if parent else None,
            paragraph_starts=_paragraph_starts(body, articles),
        )
        clauses.append(clause)
        stack.append((h, clause))
    return tuple(clauses)


def _signature_start(text: str, last_heading: int) -> int | None:
    """Where the signature at the end of a document starts (the issuing office on a line of its own,
    then the date: 沧州市市场监督管理局 / 2023年5月6日), so that it is not read as the last clause's
    words. None when the text does not end so, or when the signature would cut into the last heading's
    own line."""
    lines = text.rstrip().split("\n")
    if not lines or not DATE_LINE.match(lines[-1].strip()):
        return None
    first = len(lines) - 1
    while first > 0 and first > len(lines) - 4 and _office_line(lines[first - 1]):
        first -= 1
    start = sum(len(line) + 1 for line in lines[:first])
    first_line_end = text.find("\n", last_heading)
    return start if first_line_end != -1 and start > first_line_end else None


def _office_line(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) <= 40 and bool(ORG_END.search(line)) and not re.search(r"[，。；：,;:]", line)


def _unique(cid: str, used: set[str]) -> str:
    candidate, n = cid, 1
    while candidate in used:
        n += 1
        candidate = f"{cid}~{n}"
    used.add(candidate)
    return candidate


_NOTICE_MARK = re.compile(r"印发|的通知|现将|现予|〔\d{4}〕|\[\d{4}\]")


def _preamble_spans(pre: str, title: str, articles: bool) -> list[tuple[int, int, None, str]]:
    """Split text before the first heading into 题注 / 通知 + 前言."""
    if articles:
        return [(0, len(pre), None, "题注")]
    # The policy's own title, repeated after the notice, starts the policy proper.
    key = compact(title)
    offset, body_title_at = 0, None
    for line in pre.split("\n"):
        if key and offset > 0 and compact(line) == key:
            body_title_at = offset
        offset += len(line) + 1
    if body_title_at is not None and _NOTICE_MARK.search(pre[:body_title_at]):
        return [(0, body_title_at, None, "通知"), (body_title_at, len(pre), None, "前言")]
    return [(0, len(pre), None, "前言")]

"""List and stage questions answered from the clause tree (issue 17).

"芙蓉区强区建设的工作目标有哪些", "分几个阶段", "有哪些措施" ask for the items of a section: its
child clauses' headings, in order, each cited. The best clause is often one of those items (the
fourth goal) or elsewhere in the document; the section is the clause of the best clause's document,
with two children or more, whose heading names the thing listed ("工作目标", "保障措施", or "阶段" in
each child's heading). Laws are left out: an article's items are inside its own text, not clauses
of their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from assistant.compose import Picked, clause_hits
from assistant.understanding import Understanding
from corpus.metadata import LAW_KINDS
from corpus.types import Hit
from index.core import KnowledgeIndex
from index.text import tag, tokenize

_COUNTED = r"哪[一二三四五六七八九十两]+(?:大|个|项|类|种|方面)"  # "完善哪四大工作体系"
_ASKS_LIST = re.compile(r"哪些|哪几|分几|几个阶段|几个方面|几大|几项|" + _COUNTED)
# The thing listed: after the asking word ("分几个阶段", "有哪些保障措施") or before it ("工作目标有哪些").
_MEASURE = r"(?:个|项|类|种|大|家|名|位|条|方面)?"
_AFTER = re.compile(r"(?:哪些|哪几" + _MEASURE + r"|分几" + _MEASURE + r"|几个|几大|几项|" + _COUNTED + r")([\u4e00-\u9fa5]{1,10})")
_BEFORE = re.compile(r"([\u4e00-\u9fa5]{2,})(?:都|还|主要|一共)?(?:有|包括|分为|是)(?:哪些|哪几)")
MAX_ITEMS = 12


def _children(chunks: dict, prefix: str) -> dict[str, int]:
    """{child clause id: its first chunk (its own, or its first descendant's when the child is a heading
    without text of its own)}, in document order, of the section whose clause ids start with ``prefix``
    ("hubei-2023:二、/"; the document's own top level: "hubei-2023:")."""
    firsts: dict[str, int] = {}
    for cid, ch in sorted(chunks.items(), key=lambda kv: kv[1].start):
        if ch.clause_id.startswith(prefix):
            child = prefix + ch.clause_id[len(prefix):].split("/", 1)[0]
            firsts.setdefault(child, cid)
    return firsts


def listed_thing(query: str) -> str:
    """What a list question asks the items of: 阶段 (分几个阶段), 保障措施 (有哪些保障措施), 工作目标
    (工作目标有哪些); 城市 (哪几个城市) names things inside a sentence, and no heading will hold it."""
    after = _AFTER.search(query)
    if after:
        nouns = []
        tagged = tag(after.group(1))
        for i, (word, flag) in enumerate(tagged):
            # b: 主要任务, 基本原则; a verb before a noun: 保障措施, 实施步骤
            leading_verb = i == 0 and flag == "v" and len(tagged) > 1 and tagged[1][1].startswith("n")
            if not (flag.startswith("n") or flag in ("vn", "b") or leading_verb):
                break
            nouns.append(word)
        return "".join(nouns) or after.group(1)[:2]
    before = _BEFORE.search(query)
    if before and (words := [w for w, _ in tag(before.group(1))]):
        return words[-1]
    return ""


def _head(thing: str) -> str:
    """The word a Chinese noun phrase ends with, which the rest modifies (保障措施 → 措施, 阶段 → 阶段)."""
    words = [w for w, _ in tag(thing)]
    return words[-1] if words else thing


def _ancestors(clause_id: str) -> list[str]:
    doc, _, path = clause_id.partition(":")
    pieces = path.split("/")
    return [f"{doc}:{'/'.join(pieces[:n])}" for n in range(1, len(pieces))]


def _section(ix: KnowledgeIndex, u: Understanding, best: Hit) -> tuple[str, list[tuple[str, Hit]]]:
    """The section of the best clause's document that the question asks the items of: of the clauses with
    two children or more, the one whose heading names the thing listed (or whose children's headings
    each do, as in "(一)基础搭建阶段 (二)重点推进阶段"); the nearest to the best clause breaks a tie.
    A section may be a heading without text of its own (一、工作目标), or a lead-in that announces the
    sections after it ("重点做好以下工作:", the last words of 湖北's preface, before its 一、 to 四、)."""
    thing = listed_thing(u.query)
    wanted = {t for t in tokenize(thing) if len(t) > 1}
    head = _head(thing)
    chunks = ix.chunks(ix.doc_chunk_ids([best.chunk.doc_id]).tolist())
    first_of: dict[str, int] = {}
    for cid, ch in sorted(chunks.items(), key=lambda kv: kv[1].start):
        first_of.setdefault(ch.clause_id, cid)
    sections = list(dict.fromkeys(a for c in first_of for a in _ancestors(c)))
    heading = {c: (path[-1] if path else "") for c, path in ix.clause_paths(sections + list(first_of)).items()}
    # A heading names the thing listed by its head (知识产权重点工程: 工程), not by a modifier every heading
    # has (知识产权); a lead-in announces whatever follows it ("重点做好以下工作:").
    candidates = [(heading.get(s, ""), _children(chunks, s + "/"), True) for s in sections]
    candidates += [(title, items, False) for title, items in _lead_ins(chunks, first_of)]
    scored = []
    for title, items, needs_head in candidates:
        if len(items) < 2 or (needs_head and head not in title and sum(head in heading.get(c, "") for c in items) < 2):
            continue
        own = sum(len(t) for t in wanted & set(tokenize(title)))
        # "分几个阶段": the section whose items are each a 阶段 ("(一)基础搭建阶段", "(二)重点推进阶段" …).
        shared = sum(len(t) * n / 2 for t in wanted if (n := sum(t in heading.get(c, "") for c in items)) >= 2)
        if own + shared:
            first = chunks[next(iter(items.values()))].start
            scored.append((-(own + shared), abs(first - best.chunk.start), title, items))
    if not scored:
        return "", []
    _, _, title, items = min(scored, key=lambda x: x[:2])
    hits = ix.hits([(cid, 0.0) for cid in items.values()], {})
    return title, [_as_child(ix, child, hit) for child, hit in zip(items, hits)]


def _lead_ins(chunks: dict, first_of: dict[str, int]) -> list[tuple[str, dict[str, int]]]:
    """(the lead-in sentence with its colon, {clause id: first chunk} of the sections it announces): a
    clause without children of its own whose text ends with a colon announces its following siblings."""
    out, last = [], {}
    for ch in sorted(chunks.values(), key=lambda ch: ch.start):
        last[ch.clause_id] = ch
    for clause in first_of:
        text = last[clause].text.rstrip()
        if not text.endswith(("：", ":")) or any(c.startswith(clause + "/") for c in first_of):
            continue
        parent = clause.rsplit("/", 1)[0] + "/" if "/" in clause.partition(":")[2] else clause.partition(":")[0] + ":"
        siblings = _children(chunks, parent)
        after = dict(list(siblings.items())[list(siblings).index(clause) + 1:]) if clause in siblings else {}
        out.append((re.split(r"[。；;!！?？]", text)[-1].strip(), after))
    return out


_HEADING_TAIL = re.compile(r"\s*[(（][^)）]*[)）]\s*$")  # "(一)基础搭建阶段(2017年6月—2018年12月)": its dates


def names_a_section(ix: KnowledgeIndex, thing: str) -> bool:
    """Whether some policy's heading ends with ``thing`` (阶段, 保障措施, 实施步骤): it is a kind of section,
    which a plan has or has not; not a thing inside a sentence (地方, 城市, 行业 end no heading)."""
    if not thing:
        return False
    docs = [d.doc_id for d in ix.documents() if d.kind not in LAW_KINDS]
    clauses = {ch.clause_id for ch in ix.chunks(ix.doc_chunk_ids(docs).tolist()).values()}
    sections = clauses | {a for c in clauses for a in _ancestors(c)}
    return any(path and _HEADING_TAIL.sub("", path[-1]).endswith(thing) for path in ix.clause_paths(sections).values())


def _as_child(ix: KnowledgeIndex, child: str, hit: Hit) -> tuple[str, Hit]:
    """(the child's heading, a hit that cites the child itself). A child that is a heading without text
    of its own ("(一)基础搭建阶段(2017年6月—2018年12月)") is cited with its heading line before its first
    item's text, so the figures of the heading are in what it cites."""
    path, citation = ix.clause_info([child])[child]
    heading = path[-1] if path else ""
    if hit.chunk.clause_id == child:
        return heading, hit
    chunk = replace(hit.chunk, clause_id=child, text=f"{heading}\n{hit.chunk.text}")
    return heading, replace(hit, chunk=chunk, path=path or hit.path, citation=citation or hit.citation)


def list_items(ix: KnowledgeIndex, u: Understanding, hits: Sequence[Hit]) -> tuple[str, list[Picked]] | None:
    """(the section's heading, one picked heading line per item) for a list question on a policy, or
    None when the question does not ask for a list or no section of the best clause's tree fits."""
    clauses = clause_hits(hits)
    if u.multi or not clauses or not _ASKS_LIST.search(u.query) or clauses[0].kind in LAW_KINDS:
        return None
    section, items = _section(ix, u, clauses[0])
    if not items:
        return None
    picked = []
    for rank, (line, item) in enumerate(items[:MAX_ITEMS]):
        picked.append(Picked(rank, item.chunk.start, line or item.chunk.text.split("\n", 1)[0].strip(), item))
    return section, picked


def list_text(heading: str, picked: Sequence[Picked], numbers: dict[str, int]) -> str:
    """"一、工作目标包括以下4项：\n(一)知识产权宣教全面覆盖[1]\n…"; after a lead-in, "重点做好以下工作:\n一、…[1]"."""
    lines = [f"{p.sentence.rstrip('。；;')}[{numbers[p.hit.chunk.clause_id]}]" for p in picked]
    lead = heading if heading.endswith(("：", ":")) else f"{heading}包括以下{len(lines)}项："
    return lead + "\n" + "\n".join(lines)

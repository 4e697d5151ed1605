"""A law's sentence that names its subject only by article number, read through the clause tree.

"违反本法第六条、第九条规定侵犯商业秘密…" is about 商业秘密, but "违反本法第九条规定…赔偿五百万元以下" names it
only as 第九条. The checks in assistant/verify.py look for the question's subject in what frames a quoted
sentence (its document's title and its clause's headings); this module adds the articles the sentence
cites of its own law, so 第九条's 商业秘密 counts for it. Only references to the same law (本法, 本条例,
依照第…条) are read: "商标法第十三条" in a regulation names another document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from corpus.metadata import LAW_KINDS
from corpus.numerals import cn_to_int
from corpus.types import Citation, Hit

_NUMBER = r"第[一二三四五六七八九十百零]+条(?:第[一二三四五六七八九十]+款)?(?:第[一二三四五六七八九十]+项)?"
# 本法第六条、第九条; 依照第二十一条; 违反本条例第三十条或者第三十一条 (a chain of numbers after one lead)
_SELF_CITE = re.compile(
    rf"(?:本(?:法|条例|细则|规定|办法|解释)|依照|按照|根据|违反|适用|依据)({_NUMBER}(?:(?:、|和|或者|或|以及|及|至){_NUMBER})*)")
_ARTICLE = re.compile(r"第([一二三四五六七八九十百零]+)条")
MAX_CITED = 4  # articles read per sentence: a longer chain lists a chapter, not one subject


def cited_numbers(sentence: str) -> list[str]:
    """The articles of its own law a sentence cites, as the clause tree numbers them ("第9条")."""
    numbers: list[str] = []
    for chain in _SELF_CITE.finditer(sentence):
        for m in _ARTICLE.finditer(chain.group(1)):
            try:
                numbers.append(f"第{cn_to_int(m.group(1))}条")
            except ValueError:
                continue
    return list(dict.fromkeys(numbers))[:MAX_CITED]


def with_cited(ix, picked: Sequence) -> list:
    """``picked`` (assistant.compose.Picked) with each law sentence's ``cited``: the chunks (as hits, in
    the order cited) of the articles of its own law that it cites by number, the article it is in left out."""
    out = []
    for p in picked:
        numbers = cited_numbers(p.sentence) if p.hit.kind in LAW_KINDS else []
        own = p.hit.chunk.clause_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        ids = [i for n in numbers if n != own for i in ix.article_chunk_ids([p.hit.chunk.doc_id], n)]
        if ids:
            p = replace(p, cited=tuple(ix.hits([(i, 0.0) for i in dict.fromkeys(ids)], {})))
        out.append(p)
    return out


def referred(picked: Sequence, n: int, quoted: set[str]) -> tuple[Citation, ...]:
    """The articles the sentences of one cited clause refer to, as citations under the same ``n``: each
    article once, its chunks joined, in the order cited; an article the answer quotes itself is left out."""
    parts: dict[str, list[Hit]] = {}
    for p in picked:
        for h in p.cited:
            if h.chunk.clause_id not in quoted:
                parts.setdefault(h.chunk.clause_id, []).append(h)
    out = []
    for cid, hits in parts.items():
        hits = list({h.chunk.chunk_id: h for h in sorted(hits, key=lambda h: h.chunk.start)}.values())
        h = hits[0]
        out.append(Citation(n=n, clause_id=cid, doc_id=h.chunk.doc_id, title=h.title, doc_number=h.doc_number,
                            path=h.path, citation=h.citation, quote="", text="\n".join(x.chunk.text for x in hits)))
    return tuple(out)

"""A law's sentence that names its subject only by article number, read through the clause tree.

"违反本法第六条、第九条规定侵犯商业秘密…" is about 商业秘密, but "违反本法第九条规定…赔偿五百万元以下" names it
only as 第九条. The checks in assistant/verify.py look for the question's subject in what frames a quoted
sentence (its document's title and its clause's headings); this module adds the articles the sentence
cites, so 第九条's 商业秘密 counts for it. Two kinds of reference are read: to the same law (本法, 本条例,
依照第…条), and to another law of the index by its name, when that law's version is not later than the
citing document ("依照专利法第三十一条第二款规定" in 专利法实施细则: the law's article it implements). The
answer shows both under the quoting citation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

from corpus.metadata import LAW_KINDS
from corpus.numerals import cn_to_int, int_to_cn
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


def law_names(documents: Sequence) -> dict[str, str]:
    """{the name other documents cite a law by (商标法, 专利法实施细则): its document id}, for the laws
    among ``documents`` (index.catalog.DocInfo)."""
    return {d.title.removeprefix("中华人民共和国"): d.doc_id for d in documents if d.kind in LAW_KINDS}


@lru_cache(maxsize=8)
def _named_cite(names: tuple[str, ...]) -> re.Pattern:
    # The longest name first: "商标法实施条例第十条" is the regulation's article, not the law's.
    alternatives = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
    return re.compile(rf"(?:《(?:中华人民共和国)?)?({alternatives})》?({_NUMBER}(?:(?:、|和|或者|或|以及|及|至){_NUMBER})*)")


def other_law_cited(sentence: str, names: Mapping[str, str]) -> list[tuple[str, str]]:
    """(document id, article as the clause tree numbers it) of the articles of the laws in ``names``
    (law_names) that a sentence cites by the law's name: "依照专利法第三十一条第二款规定" → (专利法's id, "第31条")."""
    if not names:
        return []
    out: list[tuple[str, str]] = []
    for chain in _named_cite(tuple(names)).finditer(sentence):
        for m in _ARTICLE.finditer(chain.group(2)):
            try:
                out.append((names[chain.group(1)], f"第{cn_to_int(m.group(1))}条"))
            except ValueError:
                continue
    return list(dict.fromkeys(out))[:MAX_CITED]


def _same_numbering(cited, citing) -> bool:
    """Whether ``cited`` (a law's DocInfo) numbers its articles as when ``citing`` was made: a version
    not later than the citing document. A law amended after it may have been renumbered (著作权法 2020
    moved the articles its 2013 regulation cites), so a reference to a later version is not followed."""
    return bool(cited and citing and cited.issued and citing.issued and cited.issued <= citing.issued)


def with_cited(ix, picked: Sequence) -> list:
    """``picked`` (assistant.compose.Picked) with each law sentence's ``cited``: the chunks (as hits, in
    the order cited) of the articles it cites by number, of its own law (the article it is in left
    out) and of the other laws of the index it names (_same_numbering)."""
    docs: dict | None = None
    out = []
    for p in picked:
        if p.hit.kind in LAW_KINDS:
            docs = {d.doc_id: d for d in ix.documents()} if docs is None else docs
            doc = p.hit.chunk.doc_id
            own = p.hit.chunk.clause_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            articles = [(doc, n) for n in cited_numbers(p.sentence) if n != own]
            articles += [(d, n) for d, n in other_law_cited(p.sentence, law_names(docs.values()))
                         if d != doc and _same_numbering(docs.get(d), docs.get(doc))]
            ids = [i for d, n in articles for i in ix.article_chunk_ids([d], n)]
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


_OBLIGES = re.compile(r"不得|禁止|应当|必须")
_BROKEN = re.compile(rf"违反(?:本(?:法|条例|细则|规定|办法))?({_NUMBER}(?:(?:、|和|或者|或|以及|及|至){_NUMBER})*)")
_ITEM = re.compile(r"[（(][一二三四五六七八九十]+[）)]")
_PARAGRAPHS = r"((?:第[一二三四五六七八九十]+款(?:、|和|或者|或|以及|及)?)*)"


def sanction_of(ix, article: Hit, sentences: Sequence[str]) -> tuple[Hit, int, str] | None:
    """What befalls whoever breaks a rule the answer quotes: when a quoted sentence of a law's ``article``
    forbids or requires (不得, 应当), the one sentence of the same law that cites that paragraph of the
    article after 违反 ("违反本法第十四条第五款规定的，由地方工商行政管理部门责令改正，处十万元罚款"), as
    (its chunk as a hit, the sentence's offset in the chunk, the sentence); None if the law states none,
    or several articles do."""
    own = article.chunk.clause_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    m = re.fullmatch(r"第(\d+)条", own)
    obliging = [s for s in sentences if _OBLIGES.search(s)]
    if article.kind not in LAW_KINDS or not m or not obliging:
        return None
    quoted = _paragraphs_of(ix, article, obliging)
    own_cn = re.compile(rf"第{int_to_cn(int(m.group(1)))}条{_PARAGRAPHS}")
    found = []
    for cid, chunk in sorted(ix.chunks(ix.doc_chunk_ids([article.chunk.doc_id]).tolist()).items()):
        if chunk.clause_id == article.chunk.clause_id:
            continue
        for off, sentence in _sentences(chunk.text):
            for chain in _BROKEN.finditer(sentence):
                cited = own_cn.search(chain.group(1))
                named = {cn_to_int(n) for n in re.findall(r"第([一二三四五六七八九十]+)款", cited.group(1))} if cited else set()
                if cited and (not named or named & quoted):
                    found.append((cid, chunk.clause_id, off, sentence))
    if len({clause for _, clause, _, _ in found}) != 1:
        return None
    cid, _, off, sentence = found[0]
    return ix.hits([(cid, 0.0)], {})[0], off, sentence


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each paragraph (款) of an article's text: its non-empty lines, an item's line
    ("（一）…", a 项) belonging to the paragraph that announces it."""
    out: list[tuple[int, int]] = []
    start = 0
    for line in text.split("\n"):
        if line.strip() and _ITEM.match(line.strip()) and out:
            out[-1] = (out[-1][0], start + len(line))
        elif line.strip():
            out.append((start, start + len(line)))
        start += len(line) + 1
    return out


def _paragraphs_of(ix, article: Hit, sentences: Sequence[str]) -> set[int]:
    """The paragraphs (款, from 1) of ``article``'s whole text that hold ``sentences``."""
    ids = ix.clause_chunk_ids([article.chunk.clause_id]).get(article.chunk.clause_id, [])
    chunks = sorted(ix.chunks(ids).values(), key=lambda c: c.start) or [article.chunk]
    text = "\n".join(c.text for c in chunks)
    paragraphs = [text[a:b] for a, b in paragraph_spans(text)]
    return {n for n, p in enumerate(paragraphs, 1) for s in sentences if s.rstrip("。；") in p}


def _sentences(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(0).strip()) for m in re.finditer(r"[^。；\n]+[。；]?", text) if m.group(0).strip()]

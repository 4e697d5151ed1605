"""Property tests: random text (built from the pieces real policies are made of) through the
cleaner, the clause parser and the chunker never raises, keeps offsets inside the text, and
every character of the cleaned text belongs to exactly one clause."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.clean import clean_text
from corpus.structure import build_clauses
from corpus.types import Document
from index.chunking import chunk_document

# Fragments of real headings and lines, so the parser's branches are reached, plus arbitrary text.
PIECES = ["第一章 总则", "第二节 ", "第十二条 ", "第一百零三条", "一、", "（二）", "(三)", "1.", "(4)", "①", "目录",
          "附件", "关于印发《某某方案》的通知", "发布时间：2023-02-15", "首页 > 政策", "打印本页", "\n", "\n\n", " ",
          "，", "。", "；", "：", "专利", "知识产权质押融资", "2025年", "10%", "3亿元", "|", "\t", "\u3000", "<p>", "#"]
MARKERS = ["", "", "第一章 ", "第二章 ", "第一节 ", "第三条 ", "第十二条 ", "第一百零三条 ", "一、", "二、", "（一）", "（二）",
           "(三)", "1.", "2.", "(4)", "①", "目录", "附件1", "前言"]
FRAGMENT = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=20)), max_size=8).map("".join)
LINE = st.tuples(st.sampled_from(MARKERS), FRAGMENT).map("".join)
TEXT = st.lists(LINE, max_size=40).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.booleans())
def test_clean_parse_chunk_never_break(raw, web_page):
    cleaned = clean_text(raw, web_page=web_page).text
    clauses = build_clauses("doc", cleaned, title="测试")
    owner = [0] * len(cleaned)
    for c in clauses:
        assert 0 <= c.start <= c.end <= len(cleaned)
        assert cleaned[c.start:c.end] == c.text
        for i in range(c.start, c.end):
            owner[i] += 1
    assert all(n == 1 for n in owner), "every character in exactly one clause"
    doc = Document(doc_id="doc", title="测试", text=cleaned, clauses=clauses, kind="")
    for chunk in chunk_document(doc):
        assert 0 <= chunk.start <= chunk.end <= len(cleaned)
        assert cleaned[chunk.start:chunk.end] == chunk.text

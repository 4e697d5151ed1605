"""Laws and regulations: header metadata, 编/章/节/条 structure, article numbers."""

from __future__ import annotations

import datetime as dt

from corpus import load_document, normalize_number
from corpus.numerals import cn_to_int, int_to_cn
from tests.conftest import DATA

PATENT_CHAPTERS = [
    "第一章 总则", "第二章 授予专利权的条件", "第三章 专利的申请", "第四章 专利申请的审查和批准",
    "第五章 专利权的期限、终止和无效", "第六章 专利实施的特别许可", "第七章 专利权的保护", "第八章 附则",
]


def test_patent_law_chapters_and_82_articles(patent_law):
    chapters = [c.heading for c in patent_law.clauses if c.level == "章"]
    assert chapters == PATENT_CHAPTERS
    articles = [c for c in patent_law.clauses if c.level == "条"]
    assert [a.number for a in articles] == [f"第{i}条" for i in range(1, 83)]
    assert [a.label for a in articles][:3] == ["第一条", "第二条", "第三条"]
    assert articles[70].label == "第七十一条"
    assert articles[70].path == ("第七章 专利权的保护", "第七十一条")
    assert articles[70].clause_id == "专利法(2020-10-17):第7章/第71条"


def test_patent_law_metadata(patent_law):
    assert patent_law.title == "中华人民共和国专利法"
    assert patent_law.kind == "法律"
    assert patent_law.issuer == "全国人民代表大会常务委员会"
    assert patent_law.issued == dt.date(2020, 10, 17)
    assert patent_law.region == ("全国",)
    assert [r.date for r in patent_law.revisions] == [
        dt.date(1984, 3, 12), dt.date(1992, 9, 4), dt.date(2000, 8, 25), dt.date(2008, 12, 27), dt.date(2020, 10, 17)]
    assert patent_law.revisions[-1].note.endswith("第四次修正")


def test_article_lookup_by_any_number_form(patent_law):
    for typed in ["第四十二条", "第42条", "42条", "第 42 条"]:
        [article] = patent_law.find_number(normalize_number(typed))
        assert article.text.startswith("第四十二条 发明专利权的期限为二十年，实用新型专利权的期限为十年，外观设计专利权的期限为十五年")
    assert patent_law.citation(article) == "《中华人民共和国专利法》第四十二条"


def test_paragraphs_of_an_article(patent_law):
    [article] = patent_law.find_number("第42条")
    assert len(article.paragraph_starts) == 3
    third = article.text.index("为补偿新药上市审评审批占用的时间")
    assert article.paragraph_index(article.start + third) == 3
    # Items (一)(二) inside an article are not paragraphs of their own.
    [article22] = patent_law.find_number("第22条")
    assert "第二十二条 授予专利权的发明和实用新型，应当具备新颖性、创造性和实用性。" in article22.text
    [article75] = patent_law.find_number("第75条")
    assert "（一）专利产品或者依照专利方法直接获得的产品，由专利权人或者经其许可的单位、个人售出后" in article75.text
    assert len(article75.paragraph_starts) == 1


def test_body_references_are_not_headings(patent_law):
    """"依照本法第十条…" and the like stay inside their article."""
    for clause in patent_law.clauses:
        if clause.level == "条":
            assert clause.text.startswith(clause.label + " ")
    [article10] = patent_law.find_number("第10条")
    assert article10.path == ("第一章 总则", "第十条")


def test_implementing_rules_2023(laws):
    rules = laws["专利法实施细则(2023-12-11)"]
    assert rules.title == "中华人民共和国专利法实施细则"
    assert rules.kind == "行政法规"
    assert rules.issuer == "国务院"
    assert rules.issued == dt.date(2023, 12, 11)
    chapters = [c.heading for c in rules.clauses if c.level == "章"]
    assert chapters[0] == "第一章 总则"  # typeset as "第一章 总 则"
    assert "第五章 专利权期限补偿" in chapters
    assert len(chapters) == 13
    articles = [c.number for c in rules.clauses if c.level == "条"]
    assert articles[0] == "第1条" and len(articles) == len(set(articles))


def test_bundled_laws_kinds_and_numbers(laws):
    expected = {
        "专利法(2020-10-17)": "法律", "商标法(2019-04-23)": "法律", "著作权法(2020-11-11)": "法律",
        "反不正当竞争法(2019-04-23)": "法律", "专利法实施细则(2023-12-11)": "行政法规",
        "商标法实施条例(2014-04-29)": "行政法规",
        "最高人民法院关于审理侵害知识产权民事案件适用惩罚性赔偿的解释(2021-03-02)": "司法解释",
    }
    for doc_id, kind in expected.items():
        assert laws[doc_id].kind == kind, doc_id
    assert laws["商标法实施条例(2014-04-29)"].doc_number == "国务院令第651号"
    assert laws["商标法(2019-04-23)"].find_number("第63条")[0].text.startswith("第六十三条 侵犯商标专用权的赔偿数额")
    for doc in laws.values():
        assert doc.region == ("全国",)
        assert sum(1 for c in doc.clauses if c.level == "条") >= 7, doc.doc_id


def test_table_of_contents_is_not_opened_as_chapters():
    doc = load_document(DATA / "北京中轴线文化遗产保护条例(2022-05-25).md")
    chapters = [c for c in doc.clauses if c.level == "章"]
    assert [c.heading for c in chapters] == [
        "第一章 总则", "第二章 保护规划和保护措施", "第三章 传承利用和公众参与", "第四章 法律责任", "第五章 附则"]
    assert all("~" not in c.clause_id for c in doc.clauses)
    assert doc.find_number("第1条")[0].parent_id == chapters[0].clause_id
    assert doc.region == ("北京市",) and doc.kind == "地方性法规"


def test_toc_whose_first_chapters_are_missing_from_the_body():
    doc = load_document(DATA / "重庆市长江防护林体系管理条例(2019-05-31).md")
    chapters = [c.heading for c in doc.clauses if c.level == "章"]
    assert chapters == ["第四章 资金管理", "第五章 林权管理", "第六章 保护管理", "第七章 法律责任", "第八章 附则"]
    assert "第一章 总则" not in [c.heading for c in doc.clauses]
    assert doc.find_number("第1条")


def test_chinese_numerals():
    assert [cn_to_int(s) for s in ["一", "十", "十二", "二十", "七十一", "一百", "一百零五", "一百一十", "两千零三"]] == [
        1, 10, 12, 20, 71, 100, 105, 110, 2003]
    for n in [1, 9, 10, 11, 20, 42, 71, 100, 101, 110, 119, 999, 1024]:
        assert cn_to_int(int_to_cn(n)) == n
    assert normalize_number("第十条之一") == "第10条之1"
    assert normalize_number("第六章") == "第6章"
    assert normalize_number("依照本法第十条") is None

"""The five bundled policies (scraped web pages) after cleaning and structuring.

Expected values are read off the source pages by hand.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from corpus.clean import compact
from tests.conftest import paths, top_level

# Strings of site chrome found in the scraped pages; none may reach a clause.
BOILERPLATE = [
    "登录 注册 退出", "无障碍", "当前位置", "您现在的位置", "打印 关闭", "上一条", "下一条", "加入收藏",
    "浏览次数", "栏目:", "发布时间", "作者:市场监督管理局站点管理员", "智能检索", "星期四",
    "联 系 我 们", "联系方式", "客服专线", "0731-85161658", "18975877560", "13627487995",
    "地址:长沙市", "金房集团", "文章详情", "湘盾", "来源:", "时间:2017-12-20", "备案代理机构",
    "天心经开区", "长沙县县长质量奖", "扫描二维码", "二维码", "侦策百科", "收集整理", "http",
    "相关附件", ".zip", ".pdf", "原文:", "• ·",
]

EXPECTED_META = {
    "changsha-furong-2017": dict(
        title="长沙市芙蓉区推进知识产权强区建设工作实施方案", issuer="长沙市芙蓉区人民政府办公室",
        doc_number="芙政办发〔2017〕33号", issued=dt.date(2017, 8, 3),
        region=("湖南省", "长沙市", "芙蓉区"), period=(2017, 2020), kind="实施方案"),
    "jingmen-hitech-2023": dict(
        title="荆门高新区创建湖北省知识产权强省建设示范园区工作方案(2023-2025年)", issuer=None,
        doc_number=None, issued=None, region=("湖北省", "荆门市", "荆门高新区"), period=(2023, 2025),
        kind="工作方案"),
    "hubei-2023": dict(
        title="2023年全省知识产权工作要点", issuer="湖北省知识产权局", doc_number=None,
        issued=dt.date(2023, 2, 15), region=("湖北省",), period=(2023, 2023), kind="工作要点"),
    "wuhai-2022": dict(
        title="乌海市“十四五”知识产权保护和运用规划", issuer="乌海市市场监督管理局",
        doc_number="乌市监知字〔2022〕169号", issued=dt.date(2022, 8, 8),
        region=("内蒙古自治区", "乌海市"), period=(2021, 2025), kind="规划"),
    "cangzhou-2017": dict(
        title="沧州市专利事业发展“十三五”规划", issuer="沧州市人民政府办公室", doc_number=None,
        issued=dt.date(2017, 7, 3), region=("河北省", "沧州市"), period=(2016, 2020), kind="规划"),
}

EXPECTED_TOP = {
    "changsha-furong-2017": ["一、工作目标", "二、工作任务", "三、实施步骤", "四、保障条件"],
    "jingmen-hitech-2023": ["一、 指导思想", "二、 基本原则", "三、 工作目标", "四、 重点任务", "五、 保障措施"],
    "hubei-2023": ["一、坚持和加强党对知识产权工作的全面领导", "二、实施知识产权五大专项行动",
                   "三、完善知识产权四大工作体系", "四、做好知识产权文化建设等基础性工作"],
    "wuhai-2022": ["一、指导思想", "二、基本原则", "三、发展目标", "四、主要措施", "五、保障措施"],
    "cangzhou-2017": ["一、指导思想", "二、发展目标", "三、主要任务", "四、重点工程", "五、保障措施"],
}

EXPECTED_PATHS = {
    "changsha-furong-2017": [
        ("一、工作目标", "(二)知识产权申请量及授权量快速增长"),
        ("二、工作任务", "(一)推动产业转型升级,提升知识产权创造和运用水平", "3.深入实施商标品牌战略"),
        ("三、实施步骤", "(一)基础搭建阶段(2017年6月—2018年12月)", "1.申报启动(2017年6月)"),
        ("四、保障条件", "(三)资金保障"),
    ],
    "jingmen-hitech-2023": [
        ("四、 重点任务", "(二)促进园区知识产权转移转化,提升知识产权运用能力", "9. 深化知识产权金融服务"),
        ("四、 重点任务", "(四)健全园区知识产权管理体系,提高知识产权服务能力", "15. 提高企业知识产权管理能力"),
        ("三、 工作目标", "(四)知识产权管理水平明显提高"),
    ],
    "hubei-2023": [
        ("一、坚持和加强党对知识产权工作的全面领导", "1.深入学习宣传贯彻党的二十大精神"),
        ("二、实施知识产权五大专项行动", "(一)实施知识产权服务产业高质量发展专项行动", "4.强化专利导航和高价值专利培育"),
        ("二、实施知识产权五大专项行动", "(四)实施专利转化专项行动", "16.支持知识产权金融创新"),
        ("四、做好知识产权文化建设等基础性工作", "30.深化知识产权国际交流合作"),
    ],
    "wuhai-2022": [
        ("四、主要措施", "(二)提升知识产权运用水平,助推实体经济创新发展", "7.积极稳妥发展知识产权金融"),
        ("二、基本原则", "(三)坚持质量为先"),
        ("三、发展目标", "(二)提升知识产权运用成效"),
    ],
    "cangzhou-2017": [
        ("三、主要任务", "(二)构建流转顺畅、转化灵活的专利运用体系"),
        ("四、重点工程", "(六)深入实施专利质量提升工程"),
        ("五、保障措施", "(三)加大资源投入"),
    ],
}


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_META))
def test_metadata(policies, doc_id):
    doc = policies[doc_id]
    for key, value in EXPECTED_META[doc_id].items():
        assert getattr(doc, key) == value, key


def test_region_aliases(policies):
    assert {"掇刀区", "掇刀", "荆门高新区"} <= set(policies["jingmen-hitech-2023"].region_aliases)
    assert {"芙蓉区", "长沙市芙蓉区"} <= set(policies["changsha-furong-2017"].region_aliases)
    assert "沧州" in policies["cangzhou-2017"].region_aliases


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_TOP))
def test_top_level_sections(policies, doc_id):
    assert top_level(policies[doc_id]) == EXPECTED_TOP[doc_id]


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_PATHS))
def test_exact_clause_paths(policies, doc_id):
    doc_paths = paths(policies[doc_id])
    for path in EXPECTED_PATHS[doc_id]:
        assert path in doc_paths


def test_clause_ids_and_citations(policies):
    doc = policies["jingmen-hitech-2023"]
    clause = doc.clause("jingmen-hitech-2023:四、/(二)/9.")
    assert clause.text.startswith("9. 深化知识产权金融服务\n健全园区知识产权质押融资风险分担机制")
    assert "荆门市高新区·掇刀区知识产权质押融资风险补偿基金" in clause.text
    assert doc.citation(clause) == "《荆门高新区创建湖北省知识产权强省建设示范园区工作方案(2023-2025年)》四、(二)9."
    furong = policies["changsha-furong-2017"]
    c = furong.clause("changsha-furong-2017:一、/(二)")
    assert furong.citation(c) == "《长沙市芙蓉区推进知识产权强区建设工作实施方案》（芙政办发〔2017〕33号）一、(二)"
    # a top-level part is cited by its words, not by a bare number
    cangzhou = policies["cangzhou-2017"]
    assert cangzhou.citation(cangzhou.clause("cangzhou-2017:二、")) == "《沧州市专利事业发展“十三五”规划》二、发展目标"


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_META))
def test_no_boilerplate_survives(policies, doc_id):
    doc = policies[doc_id]
    for clause in doc.clauses:
        for chrome in BOILERPLATE:
            assert chrome not in clause.text, (clause.clause_id, chrome)


def test_notice_is_kept_as_its_own_clause(policies):
    notice = policies["wuhai-2022"].clause("wuhai-2022:通知")
    assert "乌市监知字〔2022〕169号" in notice.text
    assert "现将《乌海市“十四五”知识产权保护和运用规划》印发给各相关单位" in notice.text
    preamble = policies["wuhai-2022"].clause("wuhai-2022:前言")
    assert preamble.text.startswith("乌海市“十四五”知识产权保护和运用规划\n“十四五”时期(2021—2025年)")
    furong = policies["changsha-furong-2017"].clause("changsha-furong-2017:通知")
    assert "芙政办发〔2017〕33号" in furong.text and "2017年8月3日" in furong.text


def test_hubei_text_appears_once(policies):
    doc = policies["hubei-2023"]
    text = compact(doc.text)
    for sentence in [
        "现将《2023年全省知识产权工作要点》印发给你们",
        "全省万人发明专利拥有量突破22件",
        "知识产权质押融资超100亿元",
        "质押融资额同比增长20%以上",
        "联合世界知识产权组织(WIPO)开展PCT专利申请",
    ]:
        assert text.count(sentence) == 1, sentence
    # The run-on copy was one 4,000-character paragraph; no clause is anywhere near that.
    assert max(len(c.text) for c in doc.clauses) < 1000
    numbered = [c.number for c in doc.clauses if c.level == "1."]
    assert numbered == [f"{i}." for i in range(1, 33)]


def test_cangzhou_tables_rebuilt_row_per_line(policies):
    lines = policies["cangzhou-2017"].text.split("\n")
    expected_rows = [
        "全市年专利申请量(件) | 2015年: 4026 | 2020年: 6500 | 年均增速: 10%以上 | 预期性",
        "每万人口发明专利拥有量(件/万人) | 2015年: 0.64 | 2020年: 8.0以上 | 年均增速: 65%以上 | 预期性",
        "培育市级以上知识产权优势示范企业 | 5年累计目标: 80家以上 | 预期性",
        "实现知识产权质押融资金额 | 5年累计目标: 2亿元以上 | 预期性",
        "专利权作价入股企业 | 5年累计目标: 10家 | 预期性",
        "培育知识产权保护规范化市场 | 2020年目标: 5家(5年累计) | 预期性",
        "处理专利纠纷案件结案率 | 2020年目标: 95% | 预期性",
        "通过《企业知识产权管理规范》国家标准认证的企业 | 5年累计目标: 20家以上 | 预期性",
        "征集专利供需对接项目 | 5年累计目标: 100项 | 预期性",
    ]
    for row in expected_rows:
        assert row in lines
    # No cell is left on a line of its own.
    for cell in ["4026", "6500", "10%以上", "预期性", "指标属性", "2亿元以上", "95%"]:
        assert cell not in lines
    goals = policies["cangzhou-2017"].clause("cangzhou-2017:二、")
    assert "实现知识产权质押融资金额 | 5年累计目标: 2亿元以上 | 预期性" in goals.text


def test_figures_are_quoted_as_written(policies):
    """Cleaning keeps the document's own punctuation, digits and dashes."""
    furong = policies["changsha-furong-2017"].text
    assert "(一)基础搭建阶段(2017年6月—2018年12月)" in furong
    assert "年均增长率分别达到25%和15%以上;" in furong
    assert "“‘4.26’知识产权宣传周”" in furong
    assert "“十四五”时期(2021—2025年)" in policies["wuhai-2022"].text
    assert "园区通过知识产权贯标认证企业达到12家以上" in policies["jingmen-hitech-2023"].text


@pytest.mark.parametrize("doc_id", sorted(EXPECTED_META))
def test_clauses_partition_the_text(policies, doc_id):
    doc = policies[doc_id]
    position = 0
    for clause in doc.clauses:
        assert clause.start == position
        assert doc.text[clause.start:clause.end] == clause.text
        position = clause.end
    assert position == len(doc.text)
    assert len({c.clause_id for c in doc.clauses}) == len(doc.clauses)
    assert not re.search(r"\n\n|[ \u3000\u00a0]\n", doc.text)

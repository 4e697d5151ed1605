"""Heading rules on lines taken from the bundled documents."""

from __future__ import annotations

from corpus.clean import clean_text
from corpus.structure import build_clauses, find_headings


def headings(text: str, articles: bool | None = None) -> list[tuple[str, str]]:
    return [(h.level, h.heading) for h in find_headings(text, articles=articles)]


def test_policy_heading_levels_and_run_in_titles():
    text = "\n".join([
        "二、实施知识产权五大专项行动",
        "(一)实施知识产权服务产业高质量发展专项行动",
        "4.强化专利导航和高价值专利培育。围绕我省五大优势产业及细分行业领域,打造一批高价值专利培育中心。",
        "（二）实施知识产权强企培育专项行动",
        "7、强化政策支撑。针对“链主”龙头企业出台政策措施。",
        "(1)申报启动。启动申报工作。",
        "①建立培育库。",
    ])
    assert headings(text) == [
        ("一、", "二、实施知识产权五大专项行动"),
        ("(一)", "(一)实施知识产权服务产业高质量发展专项行动"),
        ("1.", "4.强化专利导航和高价值专利培育"),
        ("(一)", "（二）实施知识产权强企培育专项行动"),
        ("1.", "7、强化政策支撑"),
        ("(1)", "(1)申报启动"),
        ("①", "①建立培育库"),
    ]


def test_headings_must_start_a_line():
    text = "\n".join([
        "第十一条 依照本法第十条的规定转让专利权的，当事人应当订立书面合同。",
        "11.5.14.2的试验按照标准进行。",
        "4.26世界知识产权日期间开展宣传。",
        "依照本法第十条规定办理。",
        "第十二条 任何单位或者个人实施他人专利的，应当与专利权人订立实施许可合同。",
        "第十三条 发明专利申请公布后，申请人可以要求实施其发明的单位或者个人支付适当的费用。",
    ])
    assert headings(text) == [("条", "第十一条"), ("条", "第十二条"), ("条", "第十三条")]
    assert headings("11.5.14.2的试验按照标准进行。\n4.26世界知识产权日期间开展宣传。", articles=False) == []


def test_law_items_stay_inside_their_article():
    text = "\n".join([
        "第一章 总 则",
        "第一条 为了保护专利权人的合法权益，制定本法。",
        "第二条 有下列情形之一的，不视为侵犯专利权：",
        "（一）专利产品由专利权人售出后，使用该产品的；",
        "（二）专为科学研究和实验而使用有关专利的。",
        "第三条 本法自1985年4月1日起施行。",
    ]) + "\n"
    clauses = build_clauses("t", text)
    assert [c.path for c in clauses] == [
        ("第一章 总则",), ("第一章 总则", "第一条"), ("第一章 总则", "第二条"), ("第一章 总则", "第三条")]
    assert "（二）专为科学研究" in clauses[2].text


def test_long_run_in_heading_is_shortened_for_paths():
    line = ("2.巩固深化党史学习教育及“下基层、察民情、解民忧、暖民心”实践活动成果,淬党性铸忠诚,"
            "强能力办实事,建设模范机关。推动各级党组织将知识产权纳入学习内容。")
    [(level, heading)] = headings(line, articles=False)
    assert heading == "2.巩固深化党史学习教育及“下基层、察民情、解民忧、暖民心”实践活动成果"
    assert len(heading) <= 45


def test_clean_keeps_content_characters_and_drops_chrome():
    raw = ("登录 注册 退出\n当前位置: 首页 > 信息公开\n\u3000\u3000一、工作目标\u00a0\n"
           "  到2025年,专利年授权量达到2500件以上——比2022年增长20%。\n\n浏览次数: 123\n")
    assert clean_text(raw).text == "一、工作目标\n到2025年,专利年授权量达到2500件以上——比2022年增长20%。\n"


def test_content_that_resembles_page_chrome_is_kept():
    lines = [
        "(三)强化技术支持。依托服务机构开展专利分析。",
        "明确版权归属,完善版权登记。",
        "公共服务平台访问量达到10万次以上。",
        "时间安排:2017年6月启动申报。",
        "地址变更登记应当在30日内办理。",
        "来源于财政专项资金的项目应当公开。",
    ]
    page = "当前位置: 首页\n" + "\n".join(lines) + "\n浏览次数: 99\n"
    assert clean_text(page).text.split("\n")[:-1] == lines

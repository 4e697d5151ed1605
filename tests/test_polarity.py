"""The yes a yes/no question gets first (assistant/polarity.py): read without the model."""

from __future__ import annotations

import pytest

from assistant.polarity import asks_permission, verdict, with_verdict

GRANT = "对首次获得发明专利的小微企业予以支持。"


@pytest.mark.parametrize("question, policy, lead", [
    ("企业申请专利有没有资助", False, "有。"),
    ("在沧州靠专利押给银行贷到款了，政府有扶持吗？", True, "有。"),
    ("乌海会不会设知识产权专项经费？重点扶持啥", True, "会。"),  # the A of A-not-A
    ("湖北是否支持市州自己设立知识产权公共服务机构？", True, "支持。"),  # the first verb after 是否
    ("荆门高新区能不能办知识产权云公证？", True, "能。"),
    ("企业想组建产业知识产权联盟，政府可不可以给钱？", True, "可以。"),
    ("掇刀的企业，区里给钱吗？", True, "是的。"),  # no verb of the list: a plain yes
])
def test_a_yes_no_question_answered_from_the_documents_is_led_by_its_yes(question, policy, lead):
    said = verdict(question, [GRANT], policy=policy)
    assert said is not None and said.yes and said.lead == lead and said.label == "yes"
    assert with_verdict("予以支持[1]。", said) == f"{lead}予以支持[1]。"
    assert with_verdict("沧州市：…[1]\n乌海市：…[2]", said).startswith(f"{lead}\n沧州市")


@pytest.mark.parametrize("question, policy", [
    ("新品种要有特异性，具体指什么？", False),  # 有 … 什么 asks for a definition
    ("有哪些扶持措施", True),  # a list
    ("软件著作权是不是必须先去登记了才有？", False),  # 才有: not whether something exists
    ("沧州专利规划落实得好不好，怎么监督？", True),  # a judgement no document makes
    ("乌海知识产权专项经费是多少？", True),  # no yes/no asked
    # permission and consent are not read from a law's modal (the wrong one on the laws test split)
    ("产品包装上能印“驰名商标”几个字做宣传吗？", False),
    ("写论文引用别人已经发表的文章，需要经过作者同意吗？", False),
])
def test_no_yes_where_the_question_asks_none_or_the_quote_cannot_say_it(question, policy):
    assert verdict(question, [GRANT], policy=policy) is None


def test_a_quote_that_denies_gets_no_yes():
    assert verdict("外国企业有没有自己办理商标注册的权利", ["外国企业…不得自行办理。"]) is None
    assert verdict("沧州有补贴吗", ["沧州没有设立补贴。"], policy=True) is None
    assert verdict("沧州有补贴吗", [], policy=True) is None


@pytest.mark.parametrize("question, asks", [
    ("产品包装上能印“驰名商标”几个字做宣传吗？", True),
    ("经营者可以搞最高奖十万元的抽奖吗", True),
    ("公司能不能用别人的商标做字号？", True),
    ("做生意给中间人付佣金，算不算商业贿赂？", False),  # whether it is something, not whether it may be done
    ("这个软件的功能受保护吗", False),  # 功能 is no 能
    ("驰名商标可以怎么认定？", False),  # a question word: not a yes/no question
])
def test_a_question_asking_whether_something_may_be_done(question, asks):
    assert asks_permission(question) is asks

"""The verification step (issue 17): the question reader and each check, on the bundled documents'
own clauses, without the embedding model. The assistant-level tests (the issue's six questions, the
LLM path) are in tests/test_assistant.py."""

from __future__ import annotations

import pytest

from dataclasses import replace

from assistant.compose import Picked, pick_sentences
from assistant.references import cited_numbers, law_names, other_law_cited, paragraph_spans
from assistant.understanding import QuestionReader
from assistant.verify import (asked_event, check_figure, check_listed, check_period, check_place, check_reply, check_subject,
                              check_support,
                              document_spans, figure_or_subject, figure_text, not_found_text, own_years, read_asked,
                              relative_note,
                              states_of_event, unknown_topic, value_noun, Failure)
from corpus import load_collection
from corpus.types import Chunk, Hit
from index.text import parts, tokenize


@pytest.fixture(scope="module")
def documents():
    return {d.doc_id: d for name in ("policies", "laws") for d in load_collection(name).documents}


@pytest.fixture(scope="module")
def reader(documents):
    return QuestionReader(list(documents.values()))


@pytest.fixture(scope="module")
def known(documents):
    """The documents' vocabulary, as the index has it (every keyword of every clause)."""
    return {t for d in documents.values() for c in d.clauses for t in tokenize(c.text)}


def picked(documents, clause_id: str, containing: str) -> Picked:
    """The sentence of a real clause that holds ``containing``, as the composer would pick it."""
    doc = documents[clause_id.split(":", 1)[0]]
    clause = doc.clause(clause_id)
    chunk = Chunk(chunk_id=clause_id + "#0", clause_id=clause_id, doc_id=doc.doc_id, text=clause.text, context="",
                  start=clause.start, end=clause.end)
    hit = Hit(chunk=chunk, rank=1, score=1.0, scores={"dense": 0.9}, title=doc.title, path=clause.path,
              region=doc.region, kind=doc.kind, citation=f"《{doc.title}》{clause.label}")
    start = clause.text.index(containing)
    end = min([i for i in (clause.text.find(p, start) for p in "。；\n") if i >= 0] or [len(clause.text)])
    begin = max(clause.text.rfind(p, 0, start) for p in "。；\n") + 1
    return Picked(0, clause.start + begin, clause.text[begin:end + 1].strip(), hit)


def subject_check(reader, known, question: str, *quoted: Picked):
    """The subject check of ``question`` against the quoted sentences."""
    u = reader.read(question)
    return check_subject(read_asked(u, known), list(quoted), u)


# --- the reader ---------------------------------------------------------------------------------

@pytest.mark.parametrize("question, subject, kind", [
    ("沧州每万人高价值发明专利拥有量的目标是多少？", "高价值发明专利", None),
    ("驰名商标认定之后有效期是几年？", "驰名商标", "duration"),
    ("乌海一年专利申请要达到多少件？", "专利申请", "count"),
    ("专利代理师资格考试多少分算合格？", None, "score"),
    ("乌海跟周边哪几个地方搞知识产权跨区域保护协作？", None, "list"),  # 哪几个 asks which, not how many
    ("产品包装上能印“驰名商标”几个字做宣传吗？", None, "yesno"),
    ("芙蓉区专利技术实施与产业化专项资金每年安排多少？", None, "amount"),
    ("集成电路布图设计登记要交多少登记费？", "集成电路布图设计", "amount"),  # 多少…费 asks a sum
    ("发明专利年费多少", "专利", "amount"),
    ("芙蓉区商标注册量每年要增长百分之多少？", "商标注册", "rate"),  # 百分之多少 asks a rate, as 百分之几 does
    ("湖北有效商标今年要突破多少万件？", "商标", "count"),  # 多少万件 counts 件: no sum of money
    ("侵犯商业秘密最多罚几万？", "商业秘密", "amount"),  # 几万 alone is a sum
])
def test_the_reader_finds_the_subject_and_the_kind_of_answer(reader, known, question, subject, kind):
    asked = read_asked(reader.read(question), known)
    assert asked.kind == kind
    if subject:
        assert any(subject in w for w in asked.subject), asked


def test_words_that_only_frame_or_set_the_question_are_not_its_subject(reader, known):
    # 政府, 银行 name no IP object; 企业 is who asks; "专利审查里" is where the question is set.
    assert read_asked(reader.read("在沧州靠专利押给银行贷到款了，政府有扶持吗？"), known).subject == ("专利",)
    assert read_asked(reader.read("企业申请专利有没有资助"), known).subject == ()
    assert "专利审查" not in read_asked(reader.read("专利审查里常说的现有技术是啥？"), known).subject
    # A layperson's word the documents never use cannot be required of a clause.
    assert "抄袭" not in read_asked(reader.read("别人抄袭我的作品怎么办"), known).subject


# --- the checks ---------------------------------------------------------------------------------

def test_subject_check_needs_every_modifier(reader, known, documents):
    u = reader.read("沧州每万人高价值发明专利拥有量的目标是多少？")
    quoted = picked(documents, "cangzhou-2017:二、", "每万人口发明专利拥有量")
    failed = check_subject(read_asked(u, known), [quoted], u)
    assert failed == Failure("subject", ("高价值发明专利拥有量",))
    # The same words, asked of the plan that has them, pass.
    u = reader.read("荆门高新区每万人高价值发明专利拥有量要达到多少？")
    quoted = picked(documents, "jingmen-hitech-2023:三、/(一)", "每万人高价值发明专利拥有量")
    assert check_subject(read_asked(u, known), [quoted], u) is None


def test_a_subject_in_latin_letters_is_read_whatever_its_case(reader, known, documents):
    """The index's vocabulary is lower case (pct), the question's words are as typed (PCT): 芙蓉区's plan never
    writes PCT, so its 专利申请量 target does not answer for PCT filings; 荆门高新区's does."""
    u = reader.read("芙蓉区PCT申请要达到多少件")
    asked = read_asked(u, known)
    assert "PCT" in asked.subject
    growth = picked(documents, "changsha-furong-2017:一、/(二)", "力争全区三年专利申请量")
    assert check_subject(asked, [growth], u) == Failure("subject", ("PCT",))
    u = reader.read("荆门高新区PCT每年要申请多少件")
    target = picked(documents, "jingmen-hitech-2023:三、/(一)", "PCT专利年申请量")
    assert check_subject(read_asked(u, known), [target], u) is None


def test_subject_check_reads_the_sentence_that_states_the_value(reader, known, documents):
    # "每万人发明专利拥有量达到4件" does not say how many 专利申请, whatever the next sentence says; that
    # sentence names 专利申请 ("PCT…国际专利申请明显增长") with no count, so what 乌海's plan lacks is the count.
    u = reader.read("乌海一年专利申请要达到多少件？")
    value = picked(documents, "wuhai-2022:三、/(一)", "每万人发明专利拥有量达到4件")
    other = picked(documents, "wuhai-2022:三、/(一)", "PCT(专利合作条约)国际专利申请明显增长")
    assert check_subject(read_asked(u, known), [value], u) == Failure("subject", ("专利申请",))
    assert check_subject(read_asked(u, known), [value, other], u) == Failure("figure", ("数量",), of="专利申请")


def test_subject_check_wants_the_level_asked_when_the_sentence_names_another(reader, known, documents):
    leaders = picked(documents, "hubei-2023:二、/(五)/17.", "确定20家省级地理标志龙头企业")
    assert subject_check(reader, known, "湖北要确定多少家省级地理标志龙头企业？", leaders) is None
    assert subject_check(reader, known, "湖北要确定多少家地理标志龙头企业？", leaders) is None  # no level asked
    assert subject_check(reader, known, "湖北要确定多少家国家级地理标志龙头企业？", leaders) == \
        Failure("subject", ("国家级地理标志龙头企业",))


def test_subject_check_takes_the_broader_right_but_not_a_sibling(reader, known, documents):
    # 专利法第七十一条 on 专利权 answers for 外观设计; 驰名商标 is not 注册商标.
    damages = picked(documents, "专利法(2020-10-17):第7章/第71条", "侵犯专利权的赔偿数额")
    assert subject_check(reader, known, "被人抄了我的外观设计，法院最多能判多少钱？", damages) is None
    term = picked(documents, "商标法(2019-04-23):第4章/第39条", "注册商标的有效期为十年")
    assert subject_check(reader, known, "驰名商标认定之后有效期是几年？", term) == Failure("subject", ("驰名商标",))
    # A kind of patent said with 专利 (发明专利, 外观设计专利) is covered by a clause on 专利 itself: 专利法第六条
    # says who owns a service invention's patent, in 发明创造 and 申请专利的权利, never "发明专利".
    owner = picked(documents, "专利法(2020-10-17):第1章/第6条", "职务发明创造申请专利的权利属于该单位")
    assert subject_check(reader, known, "职务发明专利归谁？", owner) is None
    # Not by a clause on a sibling kind: 第二十七条's papers are for 外观设计专利.
    design = picked(documents, "专利法(2020-10-17):第3章/第27条", "申请外观设计专利的")
    assert subject_check(reader, known, "申请外观设计专利要交哪些文件？", design) is None
    assert subject_check(reader, known, "申请实用新型专利要交哪些文件？", design) == Failure("subject", ("实用新型专利",))
    # A policy's figure for 专利 is no figure for one kind: 芙蓉区 sets 专利申请量's growth, not 外观设计专利's.
    growth = picked(documents, "changsha-furong-2017:一、/(二)", "力争全区三年专利申请量")
    assert subject_check(reader, known, "芙蓉区专利申请量每年增长多少？", growth) is None
    assert subject_check(reader, known, "芙蓉区外观设计专利申请量每年增长多少？", growth) == \
        Failure("subject", ("外观设计专利申请",))
    # A policy's measure for 专利 still covers each kind (no figure asked), as a statute's figure does.
    funding = picked(documents, "changsha-furong-2017:二、/(二)/2.", "专利资助奖励")
    assert subject_check(reader, known, "芙蓉区外观设计专利有资助吗？", funding) is None
    assert subject_check(reader, known, "被人抄了我的外观设计专利，法院最多能判多少钱？", damages) is None


def test_a_kind_of_right_said_before_the_subject_must_be_what_the_clause_speaks_of(reader, known, documents):
    # "实用新型要实质审查吗": 实质审查 is the head; 实用新型, said first, is whose 实质审查. 专利法第三十五条 is
    # about 发明专利申请 only, and its 国务院专利行政部门 is an office, not the broader right 专利.
    exam = picked(documents, "专利法(2020-10-17):第4章/第35条", "发明专利申请自申请日起三年内")
    u = reader.read("实用新型要实质审查吗")
    assert read_asked(u, known).subject == ("实质审查",) and read_asked(u, known).kinds == ("实用新型",)
    assert subject_check(reader, known, "实用新型要实质审查吗", exam) == Failure("subject", ("实用新型",))
    assert subject_check(reader, known, "发明专利要实质审查吗", exam) is None
    # A clause that names the kind anywhere in what it quotes answers for it (the value itself stands in
    # another sentence of 第四十二条 than 发明专利).
    extension = [picked(documents, "专利法(2020-10-17):第5章/第42条", "对在中国获得上市许可的新药相关发明专利"),
                 picked(documents, "专利法(2020-10-17):第5章/第42条", "补偿期限不超过五年")]
    assert subject_check(reader, known, "新药相关的发明专利，期限补偿最多能补多久？", *extension) is None
    # The broader right itself still covers a kind: 专利法第七十一条 on 专利权 answers for 外观设计.
    damages = picked(documents, "专利法(2020-10-17):第7章/第71条", "侵犯专利权的赔偿数额")
    assert subject_check(reader, known, "外观设计被侵权了，赔偿数额怎么算？", damages) is None



def test_the_everyday_name_of_a_right_is_the_statutes_name_for_it(reader, known, documents):
    # 商标权 is what 商标法 calls 注册商标专用权, and its clauses speak of 注册商标; 驰名商标 stays apart.
    damages = picked(documents, "商标法(2019-04-23):第7章/第63条", "对恶意侵犯商标专用权")
    assert subject_check(reader, known, "侵犯商标权赔多少？", damages) is None
    transfer = picked(documents, "商标法(2019-04-23):第4章/第42条", "转让注册商标的，转让人和受让人")
    assert subject_check(reader, known, "商标权可以转让吗？", transfer) is None
    term = picked(documents, "商标法(2019-04-23):第4章/第39条", "注册商标的有效期为十年")
    assert subject_check(reader, known, "商标权保护多久？", term) is None
    assert subject_check(reader, known, "驰名商标的保护期多少年？", term).reason == "subject"

def test_figure_check_wants_a_value_of_the_kind_asked(reader, known, documents):
    u = reader.read("专利代理师资格考试多少分算合格？")
    papers = picked(documents, "专利法实施细则(2023-12-11):第13章/第146条", "签字或者盖章")
    assert check_figure(read_asked(u, known), [papers], u) == Failure("figure", ("分数",))
    u = reader.read("外观设计专利保护多少年？")
    term = picked(documents, "专利法(2020-10-17):第5章/第42条", "外观设计专利权的期限为十五年")
    assert check_figure(read_asked(u, known), [term], u) is None
    # "怎么办" asks what to do: a rate named in passing is not asked for.
    u = reader.read("职务发明报酬的比例有争议怎么办？")
    assert check_figure(read_asked(u, known), [term], u) is None


def test_a_question_about_support_is_answered_by_a_sentence_that_names_some(reader, documents):
    # 专利法第十九条 is about applying abroad: it names no support, so it does not answer "有补贴吗", and the
    # failure lets the clauses behind it be read (as a figure failure does).
    u = reader.read("申请专利有补贴吗")
    abroad = picked(documents, "专利法(2020-10-17):第1章/第19条", "向外国申请专利")
    failed = check_support(u, [abroad])
    assert failed == Failure("subject", ("补贴",), check="support") and failed.reads_on
    # A policy's sentence that grants support answers it, whichever word it uses (资助 for 补贴) …
    grant = picked(documents, "cangzhou-2017:四、/(六)", "按照省级和市级发明专利资助原则")
    assert check_support(u, [grant]) is None
    # … and so does a law that names the money asked of it (职务发明's 奖金).
    u = reader.read("职务发明奖金最少多少")
    bonus = picked(documents, "专利法实施细则(2023-12-11):第7章/第93条", "奖金最低不少于4000元")
    assert check_support(u, [bonus]) is None
    # Not a question about support: not this check's.
    u = reader.read("专利向外国申请要保密审查吗")
    assert u.intent != "subsidy" and check_support(u, [abroad]) is None
    assert not Failure("subject", ("补贴",)).reads_on and Failure("figure", ("金额",)).reads_on


def test_a_question_asking_which_department_needs_one_named(reader, known, documents):
    # 著作权法第二十八条 says the parties register the pledge, and names no office that does it.
    pledge = picked(documents, "著作权法(2020-11-11):第3章/第28条", "以著作权中的财产权出质的")
    u = reader.read("著作权出质登记要找哪个部门？")
    assert check_figure(read_asked(u, known), [pledge], u) == Failure("figure", ("负责的部门",))
    # 荆门's plan names its lead office as the subject of 负起牵头部门责任.
    lead = picked(documents, "jingmen-hitech-2023:五、/(三)", "区市场监管局切实负起牵头部门责任")
    u = reader.read("荆门高新区创建示范园区由哪个部门牵头？")
    assert check_figure(read_asked(u, known), [lead], u) is None


def test_a_value_of_another_item_of_a_list_is_not_the_subjects(reader, known, documents):
    # Hubei's targets are parallel items, each with its own figure: 100亿元 is 质押融资's amount; the items
    # naming 发明专利 state counts (22件, 8件), so the sentence states no amount of 发明专利.
    targets = picked(documents, "hubei-2023:前言", "主要预期目标")
    u = reader.read("湖北发明专利的年费要交多少钱？")
    assert check_figure(read_asked(u, known), [targets], u) == Failure("figure", ("金额",))
    u = reader.read("湖北知识产权质押融资要达到多少钱？")
    assert check_figure(read_asked(u, known), [targets], u) is None
    # 多少万件 counts 件 (it is no sum of money): the 商标 item's 100万件 answers it.
    u = reader.read("湖北有效商标今年要突破多少万件？")
    assert read_asked(u, known).kind == "count" and check_figure(read_asked(u, known), [targets], u) is None
    # An item naming the subject with no figure of its own is answered by the items after it.
    pledge = picked(documents, "jingmen-hitech-2023:三、/(二)", "全区知识产权质押融资金额达3亿元")
    assert pledge.sentence.startswith("推动园区知识产权质押融资增量扩面")
    u = reader.read("荆门高新区质押融资金额要达到多少钱？")
    assert check_figure(read_asked(u, known), [pledge], u) is None


def test_a_figure_must_be_in_the_quoted_sentence_not_elsewhere_in_the_clause(reader, known, documents):
    # The item counts the service agencies it brings in (引进2-3家) in another sentence: the sentence
    # quoted for the 聚集区 states no count of them, and the user would read it as the answer.
    u = reader.read("荆门高新区要建几个知识产权服务业聚集区？")
    quoted = picked(documents, "jingmen-hitech-2023:四、/(四)/14.", "深入开展园区知识产权服务业聚集区建设")
    assert "2-3家" in quoted.hit.chunk.text and "2-3家" not in quoted.sentence
    assert check_figure(read_asked(u, known), [quoted], u) == Failure("figure", ("数量",))
    u = reader.read("荆门高新区要引进几家高水平服务机构？")
    counted = picked(documents, "jingmen-hitech-2023:四、/(四)/14.", "引进2-3家")
    assert check_figure(read_asked(u, known), [counted], u) is None


def test_a_short_article_quoted_whole_keeps_the_sentence_with_the_value_asked(reader, documents):
    # 反不正当竞争法第十七条 is short enough to quote whole, but its 五百万元 stands in its sixth sentence,
    # past the five an answer quotes; the figure check reads only what is quoted.
    article = picked(documents, "反不正当竞争法(2019-04-23):第4章/第17条", "五百万元")
    quoted = [p.sentence for p in pick_sentences(reader.read("侵犯商业秘密最多赔多少钱？"), [article.hit])]
    assert any("五百万元" in s for s in quoted) and len(quoted) == 6
    asked_how = [p.sentence for p in pick_sentences(reader.read("侵犯商业秘密怎么赔？"), [article.hit])]
    assert len(asked_how) == 5 and not any("五百万元" in s for s in asked_how)  # no value asked: as before


def clause_hit(documents, clause_id: str, start: int = 0, end: int | None = None, rank: int = 1) -> Hit:
    """A hit on a real clause's text[start:end], as retrieval gives a chunk of a long article."""
    doc = documents[clause_id.split(":", 1)[0]]
    clause = doc.clause(clause_id)
    text = clause.text[start:end]
    chunk = Chunk(chunk_id=f"{clause_id}#{start}", clause_id=clause_id, doc_id=doc.doc_id, text=text, context="",
                  start=clause.start + start, end=clause.start + start + len(text))
    return Hit(chunk=chunk, rank=rank, score=1.0 / rank, scores={"dense": 0.9}, title=doc.title, path=clause.path,
               region=doc.region, kind=doc.kind, citation=f"《{doc.title}》{clause.label}")


def test_a_value_in_the_articles_next_chunk_is_quoted(reader, documents):
    # 计算机软件保护条例第二十四条 is chunked: its acts in the first chunk, its fine in the second.
    cid = "计算机软件保护条例(2013-01-30):第4章/第24条"
    fine = documents[cid.split(":")[0]].clause(cid).text.index("有前款第一项")
    first, second = clause_hit(documents, cid, 0, fine), clause_hit(documents, cid, fine, rank=2)
    quoted = [p.sentence for p in pick_sentences(reader.read("盗版软件罚多少"), [first, second])]
    assert quoted[0].startswith("第二十四条") and any("每件100元" in s for s in quoted)
    asked_how = [p.sentence for p in pick_sentences(reader.read("盗版软件怎么处理"), [first, second])]
    assert not any("100元" in s for s in asked_how)  # no value asked: the first chunk, as before


def test_a_value_asked_of_an_act_is_quoted_from_the_article_that_cites_it(reader, documents):
    # 反不正当竞争法第九条 says what infringing a trade secret is; 第二十一条 states the fine and cites it.
    act = clause_hit(documents, "反不正当竞争法(2019-04-23):第2章/第9条")
    fine = clause_hit(documents, "反不正当竞争法(2019-04-23):第4章/第21条", rank=2)
    quoted = pick_sentences(reader.read("泄露商业秘密罚多少"), [act, fine])
    assert quoted[0].hit is fine and "处十万元以上一百万元以下的罚款" in quoted[0].sentence  # what was asked, first
    assert all(p.hit is act for p in quoted[1:]) and quoted[1].sentence.startswith("第九条")
    # Not asked a value, or the citing article not of the same law: the act's article alone.
    assert all(p.hit.chunk.clause_id == act.chunk.clause_id for p in pick_sentences(reader.read("泄露商业秘密算什么行为"), [act, fine]))
    other = replace(fine, chunk=replace(fine.chunk, doc_id="商标法(2019-04-23)"))
    assert all(p.hit is act for p in pick_sentences(reader.read("泄露商业秘密罚多少"), [act, other]))


def test_a_sanction_asked_of_an_act_is_quoted_from_the_article_that_cites_it(reader, documents):
    # Asked what the law does to whoever infringes (not a value): 第二十一条's sanction, which cites 第九条.
    act = clause_hit(documents, "反不正当竞争法(2019-04-23):第2章/第9条")
    fine = clause_hit(documents, "反不正当竞争法(2019-04-23):第4章/第21条", rank=2)
    quoted = pick_sentences(reader.read("泄露商业秘密会受到什么处罚"), [act, fine])
    assert quoted[0].hit is fine and "责令停止违法行为" in quoted[0].sentence
    assert quoted[1].hit is act and quoted[1].sentence.startswith("第九条")


@pytest.mark.parametrize("question, text, expected", [
    ("侵犯商业秘密怎么处罚", "由监督检查部门责令停止违法行为，没收违法所得", True),
    ("假冒注册商标会坐牢吗", "构成犯罪的，依法追究刑事责任", True),
    ("侵犯商业秘密怎么处罚", "本法所称的商业秘密，是指不为公众所知悉…的技术信息", False),
    ("泄露商业秘密罚多少", "由监督检查部门责令停止违法行为", False),  # a value asked: a sanction without a sum is not it
    ("泄露商业秘密罚多少", "处十万元以上一百万元以下的罚款", True),
    ("商业秘密是什么", "处十万元以上一百万元以下的罚款", None),  # asks neither a value nor a sanction
])
def test_what_a_question_asks_is_stated_or_not(question, text, expected):
    from assistant.asks import states_asked

    assert states_asked(question, text) is expected


@pytest.mark.parametrize("sentence, numbers", [
    ("经营者违反本法第六条、第九条规定，权利人因被侵权所受到的实际损失…", ["第6条", "第9条"]),
    ("依照第二十一条规定处理", ["第21条"]),
    ("违反本条例第三十条或者第三十一条的", ["第30条", "第31条"]),
    ("本法第十条第一款第五项至第十七项规定的权利", ["第10条"]),
    ("依照商标法第十三条的规定", []),  # another law's article: not this document's
])
def test_the_articles_a_sentence_cites_of_its_own_law(sentence, numbers):
    assert cited_numbers(sentence) == numbers


def test_the_articles_a_sentence_cites_of_another_law_by_its_name(documents):
    names = law_names(list(documents.values()))  # the laws' titles without 中华人民共和国; no policy
    assert names["专利法"] == "专利法(2020-10-17)" and names["专利法实施细则"] == "专利法实施细则(2023-12-11)"
    assert not any(name.startswith(("沧州", "2023年")) for name in names)
    fortieth = picked(documents, "专利法实施细则(2023-12-11):第2章/第40条", "依照专利法第三十一条")
    assert other_law_cited(fortieth.sentence, names) == [("专利法(2020-10-17)", "第31条")]
    # The longest name first: "专利法实施细则第十条" is the regulation's article, not the law's.
    assert other_law_cited("依照专利法实施细则第十条和专利法第二条、第三条的规定", names) == [
        ("专利法实施细则(2023-12-11)", "第10条"), ("专利法(2020-10-17)", "第2条"), ("专利法(2020-10-17)", "第3条")]
    assert other_law_cited("违反本法第九条规定", names) == [] and other_law_cited("依照专利法的规定", names) == []
    # As a judicial interpretation writes it, with the full title in 《》.
    assert other_law_cited("《中华人民共和国商标法》第六十三条第一款", names) == [("商标法(2019-04-23)", "第63条")]


def test_the_subject_of_an_article_cited_by_number_counts_for_the_sentence_citing_it(reader, known, documents):
    question = "侵犯商业秘密最多赔多少钱？"
    value = picked(documents, "反不正当竞争法(2019-04-23):第4章/第17条", "五百万元")
    assert "商业秘密" not in value.sentence
    assert subject_check(reader, known, question, value) == Failure("subject", ("商业秘密",))
    ninth = picked(documents, "反不正当竞争法(2019-04-23):第2章/第9条", "商业秘密").hit
    assert subject_check(reader, known, question, replace(value, cited=(ninth,))) is None


def test_a_list_asked_of_the_laws_names_its_kind_in_the_quoted_article(reader, known, documents):
    # The filing article lists no 报名条件: a list of them is not answered with it.
    u = reader.read("专利代理师资格考试的报名条件有哪些？")
    filing = picked(documents, "专利法实施细则(2023-12-11):第13章/第146条", "向国务院专利行政部门提交申请文件")
    assert check_listed(read_asked(u, known), [filing], u) == Failure("subject", ("报名条件",))
    # An article that announces its own list ("可以行使下列职权：") answers whatever the question calls them.
    u = reader.read("工商局查商标侵权的时候能采取哪些手段")
    powers = picked(documents, "商标法(2019-04-23):第7章/第62条", "可以行使下列职权")
    assert check_listed(read_asked(u, known), [powers], u) is None
    assert check_listed(read_asked(u, known), [filing], u) == Failure("subject", ("手段",))
    # A policy names the members of a list (乌海's neighbours), not their kind (地方): not checked.
    u = reader.read("乌海跟周边哪几个地方搞知识产权跨区域保护协作？")
    joint = picked(documents, "wuhai-2022:四、/(一)/2.", "跨区域执法协作")
    assert check_listed(read_asked(u, known), [joint], u) is None
    assert check_listed(read_asked(u, known), [joint], u, is_section=lambda thing: thing == "阶段") is None
    # A kind of section (阶段 ends 芙蓉区's headings) that 乌海's plan does not have: refused, naming it.
    u = reader.read("乌海的规划分几个阶段")
    duty = picked(documents, "wuhai-2022:五、/(一)", "各区委、区政府要将知识产权规划落实工作纳入重要议事日程")
    assert check_listed(read_asked(u, known), [duty], u, is_section=lambda thing: thing == "阶段") == \
        Failure("subject", ("阶段",))
    assert check_listed(read_asked(u, known), [duty], u) is None  # without knowing the kinds of section


def test_a_value_must_be_stated_of_the_event_asked(reader, known, documents):
    # "多长时间内作出复审决定": 第四十一条 states 三个月 for asking a review, and never when it is decided.
    u = reader.read("专利被驳回后请求复审，专利局一般多长时间内作出复审决定？")
    assert asked_event(u) == ("作出", "复审", "决定")
    ask_review = picked(documents, "专利法(2020-10-17):第4章/第41条", "可以自收到通知之日起三个月内")
    decided = picked(documents, "专利法(2020-10-17):第4章/第41条", "作出决定")
    assert not states_of_event(read_asked(u, known), u, [ask_review, decided])
    # Nothing after the asking word: any period of the kind asked will do.
    u = reader.read("外观设计专利保护多少年？")
    assert asked_event(u) == ()
    term = picked(documents, "专利法(2020-10-17):第5章/第42条", "外观设计专利权的期限为十五年")
    assert states_of_event(read_asked(u, known), u, [term])
    assert not states_of_event(read_asked(u, known), u, [decided])
    # "什么时候生效": the sentence with the time it takes effect.
    u = reader.read("外观设计国际申请在中国什么时候生效")
    assert asked_event(u) == ("生效",)
    effect = picked(documents, "专利法实施细则(2023-12-11):第12章/第143条", "自公告之日起生效")
    assert states_of_event(read_asked(u, known), u, [effect])


def test_a_figure_asked_of_something_the_clause_never_names_lacks_that_subject(reader, known, documents):
    # 法定赔偿 is no IP word, so the subject check lets it pass; what the question asks an amount of is
    # still nowhere in the nearest clause, and the not-found should say so, not "no amount".
    u = reader.read("芯片布图设计被人抄了，法院最多能判多少法定赔偿？")
    assert value_noun(u) == ("法定赔偿",)
    suit = picked(documents, "集成电路布图设计保护条例(2001-04-02):第5章/第31条", "可以向人民法院起诉")
    failed = check_figure(read_asked(u, known), [suit], u)
    assert failed == Failure("figure", ("金额",))
    assert figure_or_subject(failed, u, [suit], suit.hit) == Failure("subject", ("法定赔偿",))
    # The kind asked (比例), a unit (多少分) or nothing after the asking word leave it a figure failure.
    for question in ("著作权集体管理组织提管理费，最高能提多少比例？", "专利代理师资格考试多少分算合格？",
                     "单位给职务作品作者的奖励最低标准是多少？"):
        assert value_noun(reader.read(question)) == (), question
    # A value asked of something the clause does name stays a figure failure (湖北 names the centres, no count).
    u = reader.read("湖北今年要打造多少个高价值专利培育中心？")
    plan = picked(documents, "hubei-2023:二、/(一)/4.", "打造一批高价值专利培育中心")
    failed = check_figure(read_asked(u, known), [plan], u)
    assert failed and figure_or_subject(failed, u, [plan], plan.hit) == failed


def test_a_subject_quoted_without_a_value_of_its_own_lacks_its_figure(reader, known, documents):
    # 芙蓉区's targets give rates of 专利申请量 (25%) and say 商标注册 "逐年增长" with none: the plan names the
    # subject, so what it lacks is the rate, and the not-found says whose rate.
    u = reader.read("芙蓉区商标注册量每年要增长百分之多少？")
    # The clause ends its sentences with a half-width ";", which picked() does not split on.
    clause = "changsha-furong-2017:一、/(二)"
    rate = replace(picked(documents, clause, "年均增长率"), sentence="力争全区三年专利申请量、授权量年均增长率分别达到25%和15%以上;")
    named = replace(picked(documents, clause, "商标注册、驰名商标"),
                    sentence="商标注册、驰名商标、湖南省著名商标逐年增长,商标注册总量、驰名商标数、湖南省著名商标数保持全省前列;")
    failed = check_subject(read_asked(u, known), [rate, named], u)
    assert failed == Failure("figure", ("比例",), of="商标注册")
    assert figure_text("《芙蓉区方案》", "比例", True, failed.of) == "《芙蓉区方案》没有写明「商标注册」的比例。"
    # Quoted with the rate alone, the subject itself is what is missing.
    assert check_subject(read_asked(u, known), [rate], u) == Failure("subject", ("商标注册",))


def test_subject_check_reads_a_compound_in_other_order_or_framed_by_the_law(reader, known, documents):
    # 注册商标 said as "申请商标注册的"; 专利年费 in 专利法's article on 年费 (专利 is the law's own word).
    papers = picked(documents, "商标法实施条例(2014-04-29):第2章/第14条", "申请人应当提交其身份证明文件")
    assert subject_check(reader, known, "申请注册商标要交身份证明吗？", papers) is None
    fees = picked(documents, "专利法(2020-10-17):第5章/第44条", "没有按照规定缴纳年费的")
    assert subject_check(reader, known, "专利年费不交会怎样？", fees) is None
    # A term the dictionary keeps whole (万人发明专利拥有量) is present by its parts (每万人口…); its first
    # two single characters make one part, 万人, not 万 + 万发明专利.
    row = picked(documents, "cangzhou-2017:二、", "每万人口发明专利拥有量(件/万人)")
    assert parts("万人发明专利拥有量") == ["万人", "发明专利", "拥有量"]
    assert subject_check(reader, known, "沧州每万人发明专利拥有量目标是多少？", row) is None
    assert subject_check(reader, known, "沧州每万人高价值发明专利拥有量的目标是多少？", row).reason == "subject"
    # The halves must stand together: 驰名 is in neither the clause nor its frame.
    failed = subject_check(reader, known, "驰名商标的年费交多少？", fees)
    assert failed and failed.reason == "subject" and "驰名商标" in failed.missing[0]


def test_a_day_named_by_an_event_answers_which_day(reader, known, documents):
    # "以寄出的邮戳日为申请日" says which day, though it names no calendar date.
    u = reader.read("专利申请是邮寄的，申请日按哪天算？")
    day = picked(documents, "专利法(2020-10-17):第3章/第28条", "以寄出的邮戳日为申请日")
    assert read_asked(u, known).kind == "date"
    assert check_figure(read_asked(u, known), [day], u) is None
    # A sentence with no day in it still fails.
    papers = picked(documents, "专利法实施细则(2023-12-11):第13章/第146条", "签字或者盖章")
    assert check_figure(read_asked(u, known), [papers], u) is not None


def test_a_sum_per_money_is_no_amount(reader, documents, known):
    """"0.28件/百万元" is a count per sum of money: it does not answer 多少钱; "3亿元" does."""
    u = reader.read("荆门高新区知识产权方面一共要投入多少钱？")
    ratio = picked(documents, "jingmen-hitech-2023:三、/(一)", "0.28件/百万元")
    assert check_figure(read_asked(u, known), [ratio], u) == Failure("figure", ("金额",))
    loans = picked(documents, "jingmen-hitech-2023:三、/(二)", "质押融资金额达3亿元")
    assert check_figure(read_asked(u, known), [loans], u) is None


def test_a_multiple_asked_is_answered_by_a_multiple_not_a_sum(reader, documents, known):
    """"几倍" asks for "N倍": 专利法第七十一条's "一倍以上五倍以下" states one, its "三万元以上五百万元以下" does
    not, and the not-found names 倍数, not 金额."""
    u = reader.read("惩罚性赔偿最多几倍？")
    asked = read_asked(u, known)
    assert (asked.kind, asked.unit) == ("amount", "倍")
    times = picked(documents, "专利法(2020-10-17):第7章/第71条", "一倍以上五倍以下")
    assert check_figure(asked, [times], u) is None
    sums = picked(documents, "专利法(2020-10-17):第7章/第71条", "三万元以上五百万元以下")
    assert check_figure(asked, [sums], u) == Failure("figure", ("倍数",))
    # The same sentence answers a question asking how much.
    u = reader.read("侵犯专利权法定赔偿最多赔多少钱？")
    assert check_figure(read_asked(u, known), [sums], u) is None


def test_how_many_days_of_a_compensation_asks_a_duration_not_an_amount(reader, known):
    assert read_asked(reader.read("专利期限补偿补多少天？"), known).kind == "duration"
    assert read_asked(reader.read("侵犯商业秘密罚多少钱？"), known).kind == "amount"
    assert read_asked(reader.read("职务发明一般奖多少？"), known).kind == "amount"


@pytest.mark.parametrize("question, unknown", [
    ("今天天气怎么样", ("今天天气",)),
    ("红烧肉怎么做", ("红烧肉",)),
    ("怎么考驾照？", ("考驾照",)),
    ("房租不交怎么办", ("房租",)),
])
def test_a_question_on_nothing_the_documents_know_of_is_out_of_scope(reader, known, question, unknown):
    assert unknown_topic(reader.read(question), known) == unknown


@pytest.mark.parametrize("question", [
    "别人抄袭我的作品怎么办",  # 抄袭 is a layperson's word; 作品 is the documents'
    "盗版怎么办",  # no document word, but colloquial.txt maps it to one
    "那沧州呢",  # a place
    "专利法第四十二条",  # an article
    "外观设计专利保护多少年",
])
def test_one_known_word_a_place_or_a_colloquial_phrase_keeps_a_question_in_scope(reader, known, question):
    assert unknown_topic(reader.read(question), known) == ()


def test_period_check_compares_the_years(reader, known, documents):
    spans = document_spans(documents.values(), "")
    plan = picked(documents, "hubei-2023:二、/(四)/16.", "持续推进知识产权质押融资入园惠企行动")
    u = reader.read("湖北2024年知识产权质押融资要增长多少？")
    assert check_period(read_asked(u, known), [plan], spans) == Failure("period", ("2024年",))
    u = reader.read("湖北2023年知识产权质押融资要增长多少？")
    assert check_period(read_asked(u, known), [plan], spans) is None


def test_this_year_and_next_are_read_against_each_policys_own_year(reader, known, documents):
    spans, years = document_spans(documents.values(), ""), own_years(documents.values())
    assert years["hubei-2023"] == 2023 and years["wuhai-2022"] == 2022  # issued (the 十四五 plan starts 2021)
    assert "专利法(2020-10-17)" not in years  # a law has no "now"
    goal = picked(documents, "hubei-2023:前言", "全省万人发明专利拥有量突破22件")
    u = reader.read("湖北今年万人发明专利拥有量的目标是多少？")
    assert check_period(read_asked(u, known), [goal], spans, years) is None
    assert relative_note(u, ["hubei-2023"], years) == "（“今年”按文件的年份理解，即2023年。）"
    u = reader.read("湖北明年万人发明专利拥有量的目标是多少？")
    assert check_period(read_asked(u, known), [goal], spans, years) == Failure("period", ("明年（2024年）",))
    # A sentence that names its year answers only for that year: 乌海's plan sets its targets for 2025.
    target = picked(documents, "wuhai-2022:三、/(一)", "每万人发明专利拥有量达到4件")
    u = reader.read("乌海今年每万人发明专利拥有量要达到多少？")
    assert check_period(read_asked(u, known), [target], spans, years) == Failure("period", ("今年（2022年）",))
    # 今年 beside a law's article asks nothing of its period.
    term = picked(documents, "专利法(2020-10-17):第5章/第42条", "外观设计专利权的期限为十五年")
    u = reader.read("今年申请的外观设计专利保护多少年？")
    assert check_period(read_asked(u, known), [term], spans, years) is None
    assert relative_note(u, ["专利法(2020-10-17)"], years) == ""


def test_a_value_asked_for_a_year_is_read_from_the_sentences_with_figures(reader, known, documents):
    # 沧州's 十三五 plan (2016–2020) sets 2020's 8.0; a sentence without a figure beside it ("…等有较大增长")
    # must not make that a 2018 target because 2018 lies within the plan's period.
    spans, years = document_spans(documents.values(), ""), own_years(documents.values())
    growth = picked(documents, "cangzhou-2017:二、", "每万人口发明专利拥有量等有较大增长")
    row = picked(documents, "cangzhou-2017:二、", "每万人口发明专利拥有量(件/万人)")
    u = reader.read("沧州2018年每万人发明专利拥有量目标是多少？")
    assert check_period(read_asked(u, known), [growth, row], spans) == Failure("period", ("2018年",))
    u = reader.read("沧州2020年每万人发明专利拥有量目标是多少？")
    assert check_period(read_asked(u, known), [growth, row], spans) is None
    u = reader.read("沧州今年每万人发明专利拥有量目标是多少？")  # 今年: the year it was issued, 2017
    assert check_period(read_asked(u, known), [growth, row], spans, years) == Failure("period", ("今年（2017年）",))
    # A sentence that names no year speaks for the year an earlier sentence of its clause set: 荆门高新区's
    # "到2025年,园区专利年授权量达到2500件以上…。园区每万人有效发明专利拥有量达到30件以上…" is about 2025.
    later = picked(documents, "jingmen-hitech-2023:三、/(一)", "园区每万人有效发明专利拥有量达到30件以上")
    assert "2025" not in later.sentence
    u = reader.read("荆门高新区2024年每万人有效发明专利拥有量要达到多少件？")
    assert check_period(read_asked(u, known), [later], spans) == Failure("period", ("2024年",))
    u = reader.read("荆门高新区2025年每万人有效发明专利拥有量要达到多少件？")
    assert check_period(read_asked(u, known), [later], spans) is None


def test_period_check_knows_which_version_of_a_law_is_indexed(reader, known, documents):
    question = "2008年修正的专利法规定外观设计专利保护期是几年？"
    term = picked(documents, "专利法(2020-10-17):第5章/第42条", "外观设计专利权的期限为十五年")
    failed = check_period(read_asked(reader.read(question), known), [term], document_spans(documents.values(), question))
    assert failed == Failure("period", ("2008年",))
    # A year that is not a version ("2015年申请的") leaves the current law the answer.
    question = "2015年申请的外观设计专利保护期是几年？"
    assert check_period(read_asked(reader.read(question), known), [term],
                        document_spans(documents.values(), question)) is None


def test_place_check(reader, documents):
    target = picked(documents, "changsha-furong-2017:一、/(二)", "专利申请量、授权量年均增长率")
    assert check_place(reader.read("长沙市的专利目标是多少？"), [target]) == Failure("place", ("长沙市",))
    assert check_place(reader.read("长沙雨花区对发明专利有补助吗？"), [target]) == Failure("place", ("雨花区",))
    assert check_place(reader.read("深圳对PCT申请资助多少？"), [target]) == Failure("place", ("深圳",))
    assert check_place(reader.read("芙蓉区的专利目标是多少？"), [target]) is None


def test_an_llm_reply_that_answers_a_neighbouring_question_fails(reader, known):
    u = reader.read("荆门高新区到2025年专利年授权量要达到多少？")
    asked = read_asked(u, known)
    heads = "荆门高新区创建湖北省知识产权强省建设示范园区工作方案(2023-2025年) 三、 (一)"
    assert check_reply(asked, "到2025年，园区专利年授权量达到2500件以上[1]。", heads, u) is None
    assert check_reply(asked, "到2025年，园区注册商标总量达到6000件以上[1]。", heads, u).reason == "subject"
    assert check_reply(asked, "到2023年，园区专利年授权量达到2000件[1]。", heads, u).reason == "period"
    # A policy's figure for 专利 is no figure for 外观设计专利; a statute's would hold for it (``rules``).
    design = reader.read("荆门高新区到2025年外观设计专利年授权量要达到多少？")
    asked = read_asked(design, known)
    reply = "到2025年，园区专利年授权量达到2500件以上[1]。"
    assert check_reply(asked, reply, heads, design, rules=False) == Failure("subject", ("外观设计",))
    assert check_reply(asked, reply, heads, design, rules=True) is None


def test_the_not_found_answer_names_what_is_missing_and_shows_the_nearest_clause(reader, documents):
    u = reader.read("乌海一年专利申请要达到多少件？")
    nearest = picked(documents, "wuhai-2022:三、/(一)", "每万人发明专利拥有量达到4件")
    text = not_found_text(Failure("subject", ("专利申请",)), u, nearest.hit, nearest.sentence, {}, "《乌海…》",
                          mentioned={"专利申请"})
    # The plan does use 专利申请 (not with a target): what it does not state is the count asked.
    assert text.startswith("抱歉，没有找到答案：《乌海市“十四五”知识产权保护和运用规划》没有写明「专利申请」的数量。")
    assert "每万人发明专利拥有量达到4件" in text and "并不是所问问题的答案" in text
    assert "[1]" not in text


def test_a_missing_figure_is_claimed_of_the_closest_clauses_unless_one_document_was_asked(reader, documents):
    # Over the whole collection only the closest clauses were read: 专利法第四十一条 states no time for the
    # 复审决定, and the collection is not claimed to state none. Asked of one plan, the plan is named.
    u = reader.read("专利被驳回后请求复审，专利局一般多长时间内作出复审决定？")
    review = picked(documents, "专利法(2020-10-17):第4章/第41条", "专利申请人对国务院专利行政部门驳回申请的决定不服的")
    text = not_found_text(Failure("figure", ("期限",)), u, review.hit, review.sentence, {}, "全部 17 份文件")
    assert text.startswith("抱歉，没有找到答案：收录的文件中与问题最接近的条款没有写明具体期限。")
    u = reader.read("湖北的知识产权保护状况白皮书哪天发布？")
    assert u.region_docs
    plan = picked(documents, "hubei-2023:四、/29.", "白皮书")
    text = not_found_text(Failure("figure", ("时间",)), u, plan.hit, plan.sentence, {}, "《2023年全省知识产权工作要点》")
    assert text.startswith("抱歉，没有找到答案：《2023年全省知识产权工作要点》没有写明具体时间。")


@pytest.mark.parametrize("missing, mentioned, kind, said", [
    (("驰名商标有效期",), set(), "duration", "收录的文件没有写到「驰名商标有效期」。"),  # no document uses it
    (("驰名商标",), {"驰名商标"}, "duration", "收录的文件没有写明「驰名商标」的期限。"),  # used, with no period
    (("实质审查",), {"实质审查"}, "yesno", "收录的文件中与问题最接近的条款没有写到「实质审查」。"),
    (("高价值", "专利申请"), {"专利申请"}, "count", "收录的文件没有写到「高价值」。"),  # only what is true
])
def test_a_not_found_says_a_word_is_unwritten_only_when_no_document_uses_it(missing, mentioned, kind, said):
    from assistant.verify import subject_text

    assert subject_text("收录的文件", missing, mentioned, kind) == said


def test_an_articles_paragraphs_hold_their_items():
    """商标法第十四条 as the corpus writes it: five items (项) under its first paragraph (款), so 第五款 — the one
    第五十三条 punishes — is 生产、经营者不得…, not the third item."""
    from pathlib import Path
    law = (Path(__file__).resolve().parents[1] / "corpus" / "laws" / "商标法(2019-04-23).md").read_text(encoding="utf-8")
    article = law[law.index("第十四条 驰名商标"):law.index("第十五条")].strip()
    paragraphs = [article[a:b] for a, b in paragraph_spans(article)]
    assert len(paragraphs) == 5
    assert paragraphs[0].startswith("第十四条") and "（五）该商标驰名的其他因素" in paragraphs[0]
    assert paragraphs[4].startswith("生产、经营者不得将“驰名商标”字样")
    assert paragraph_spans("第一条 一句。") == [(0, 7)]

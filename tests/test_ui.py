"""The web app: HTML escaping and upload names (fast), then the real app driven in headless
Chromium with Playwright and through gradio_client (slow: real index, real model, real server).

Screenshots of every tab go to test-output/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.servers import serve
from ui.backend import safe_file_name
from ui.render import document_html, highlight, search_html

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


# --- fast: what the page renders and where uploads go --------------------------------------


def test_highlight_escapes_document_text_and_marks_terms():
    html = highlight('专利<script>alert(1)</script>质押融资', ["质押融资", "<script>"])
    assert "<script>" not in html
    assert '<mark class="hl">质押融资</mark>' in html
    assert '<mark class="hl">&lt;script&gt;</mark>' in html


def test_document_view_escapes_clause_text(policies):
    from dataclasses import replace

    doc = policies["cangzhou-2017"]
    evil = replace(doc.clauses[3], text='<img src=x onerror="alert(1)">' + doc.clauses[3].text)
    doc = replace(doc, clauses=(doc.clauses[:3] + (evil,) + doc.clauses[4:]))
    html = document_html(doc, focus=evil.clause_id)
    assert "<img" not in html and "&lt;img src=x" in html
    assert html.count("ipqa-focus") == 1


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("政策/../../x.docx", "x.docx"),
    ("宁波市专利管理条例(2012-04-09).docx", "宁波市专利管理条例(2012-04-09).docx"),
    ("a<b>|c?.TXT", "a_b_c_.txt"),
    ("....", "upload"),
    (".hidden.md", "hidden.md"),
])
def test_upload_names_stay_in_the_uploads_folder(name, expected):
    assert safe_file_name(name) == expected


def test_search_results_without_hits_say_so():
    assert "没有找到" in search_html([], [], "<b>x</b>")
    assert "<b>x</b>" not in search_html([], [], "<b>x</b>")


# --- slow: the real app ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(first_run):
    """`ipqa serve` as a first run (conftest.first_run): no index yet, so it built one over the bundled
    knowledge base."""
    started = first_run["log"].read_text(errors="replace")
    assert "首次运行：正在为内置知识库建立索引" in started and "17 个文件已就绪" in started
    assert "share=True" not in started and " DEBUG " not in started  # no library noise
    return first_run


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "browser tests need Debian's chromium: apt-get install -y chromium fonts-wqy-zenhei"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    outside = []
    pg.on("request", lambda r: outside.append(r.url)
          if not r.url.startswith((server["url"], "data:", "blob:")) else None)
    pg.goto(server["url"])
    pg.locator("#ipqa-question textarea").wait_for()
    yield pg
    context.close()
    assert outside == [], f"the page fetched from outside 127.0.0.1: {outside[:5]}"


def _shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _ask(pg, question: str, answers_before: int) -> None:
    pg.locator("#ipqa-question textarea").fill(question)
    pg.locator("#ipqa-send").click()
    # wait until this question's answer replaced the "正在检索……" placeholder
    pg.wait_for_function(
        """n => { const bots = document.querySelectorAll('#ipqa-chat .message-row.bot-row, #ipqa-chat .bot');
                  const done = document.querySelectorAll('#ipqa-chat .ipqa-answer, #ipqa-chat .ipqa-notfound');
                  return done.length > n; }""", arg=answers_before)


def _pick(pg, elem_id: str, text: str) -> None:
    """Choose an option of a Gradio dropdown by typing and clicking it."""
    box = pg.locator(f"#{elem_id} input")
    box.click()
    box.fill(text)
    pg.get_by_role("option", name=text, exact=True).first.click()


@pytest.mark.slow
def test_chat_answers_with_sources_follow_up_and_not_found(page, server):
    pg = page
    _ask(pg, "荆门高新区对通过贯标认证的企业有奖励吗？", 0)
    answer = pg.locator("#ipqa-chat .ipqa-answer").last
    assert "资金奖励" in answer.inner_text() and "[1]" in answer.inner_text()
    card = pg.locator("#ipqa-sources .ipqa-card").first
    assert "荆门高新区创建湖北省知识产权强省建设示范园区工作方案" in card.inner_text()
    assert "四、" in card.locator(".ipqa-path").inner_text()
    assert "资金奖励" in card.locator("mark.quote").first.inner_text()  # the quoted span is highlighted
    assert card.locator("code").inner_text().startswith("《荆门高新区创建湖北省知识产权强省建设示范园区工作方案")
    _shot(pg, "chat-answer")

    # the citation opens the whole document at that clause
    card.locator(".ipqa-open").click()
    focus = pg.locator("#ipqa-sources .ipqa-viewer .ipqa-focus")
    focus.wait_for()
    assert "对通过贯标认证的企业给予资金奖励" in focus.inner_text()
    assert pg.locator("#ipqa-sources .ipqa-viewer .ipqa-doc-clause").count() > 20  # the whole document
    _shot(pg, "chat-document")
    pg.locator("#ipqa-sources .ipqa-close").click()

    # a follow-up is rewritten from the history and the rewrite is shown
    _ask(pg, "那沧州呢？", 1)
    rewritten = pg.locator("#ipqa-chat .ipqa-rewritten").last.inner_text()
    assert "沧州" in rewritten and "贯标" in rewritten
    # 沧州's plan sets a 贯标 target and no reward for it: a precise not-found naming what it lacks, with
    # 沧州's nearest clause as possibly related, not a neighbouring clause given as the answer
    assert "奖励" in pg.locator("#ipqa-chat .ipqa-notfound").last.locator(".ipqa-reason").inner_text()
    assert "沧州市专利事业发展" in pg.locator("#ipqa-sources .ipqa-card").first.inner_text()
    _shot(pg, "chat-follow-up")

    # the sources stay with each answer: [1] of the first answer shows its citation, highlighted
    pg.locator("#ipqa-chat .ipqa-answer").first.locator(".ipqa-ref").first.click()
    active = pg.locator("#ipqa-sources .ipqa-card-active")
    active.wait_for()
    assert "荆门高新区创建湖北省知识产权强省建设示范园区工作方案" in active.inner_text()
    assert "沧州市专利事业发展" not in pg.locator("#ipqa-sources").inner_text()
    _shot(pg, "chat-earlier-sources")

    # not found looks different and shows the nearest clauses as possibly related
    _ask(pg, "深圳市对PCT专利申请的资助标准是多少？", 2)
    not_found = pg.locator("#ipqa-chat .ipqa-notfound").last
    assert "没有找到" in not_found.inner_text()
    # the reason is shown: which part of the question no document covers
    badge = not_found.locator(".ipqa-reason")
    assert badge.inner_text().startswith("缺少：所问地区的文件") and "深圳" in badge.inner_text()
    assert "可能相关" in pg.locator("#ipqa-sources").inner_text()
    assert pg.locator("#ipqa-sources .ipqa-card-related").count() >= 1
    _shot(pg, "chat-not-found")

    # the chat's own buttons are labelled in Chinese (Gradio's copy buttons read "copy")
    labels = pg.eval_on_selector_all("#ipqa-chat button[aria-label], #ipqa-chat button[title]",
                                     "els => els.map(e => (e.getAttribute('aria-label') || '') + (e.title || ''))")
    assert labels and not [label for label in labels if re.search(r"[A-Za-z]", label)], labels

    # 👍 appends the exchange to the feedback file
    pg.locator("#ipqa-chat button[aria-label='赞']").first.click()
    feedback = server["data"] / "feedback.jsonl"
    deadline = time.time() + 20
    while not feedback.exists() and time.time() < deadline:
        time.sleep(0.2)
    record = json.loads(feedback.read_text(encoding="utf-8").splitlines()[-1])
    assert record["rating"] == "up"
    assert record["question"] == "荆门高新区对通过贯标认证的企业有奖励吗？"
    assert record["citations"][0]["doc_id"] == "jingmen-hitech-2023"

    # a clause citing other articles of its law by number shows them, folded, under its card
    _ask(pg, "侵犯商业秘密最多赔多少钱？", 3)
    assert "（引用第六条、第九条）" in pg.locator("#ipqa-chat .ipqa-cites").last.inner_text()
    ninth = pg.locator("#ipqa-sources .ipqa-card").first.locator(".ipqa-refer").last
    assert ninth.locator("summary").inner_text().startswith("《中华人民共和国反不正当竞争法》第九条：经营者不得实施")
    assert not ninth.locator(".ipqa-clause").is_visible()
    ninth.locator("summary").click()
    assert "电子侵入" in ninth.locator(".ipqa-clause").inner_text()
    _shot(pg, "chat-cited-articles")
    # the sources stay with each answer: the first answer's [1], then back to the latest's
    pg.locator("#ipqa-chat .ipqa-answer").first.locator(".ipqa-ref").first.click()
    pg.wait_for_function("() => document.querySelector('#ipqa-sources .ipqa-card-active')?.innerText"
                         ".includes('荆门高新区创建湖北省知识产权强省建设示范园区工作方案')")
    pg.locator("#ipqa-chat .ipqa-answer").last.locator(".ipqa-ref").first.click()
    pg.wait_for_function("() => document.querySelector('#ipqa-sources .ipqa-card-active')?.innerText"
                         ".includes('反不正当竞争法')")

    # clearing empties the conversation
    pg.locator("#ipqa-clear").click()
    pg.wait_for_function("() => document.querySelectorAll('#ipqa-chat .ipqa-answer').length === 0")


@pytest.mark.slow
def test_clause_search_with_place_filter_and_csv(page):
    pg = page
    pg.get_by_role("tab", name="条款检索").click()
    # the year boxes start empty (not 0); an empty query is refused in a toast headed in Chinese
    assert pg.get_by_label("起始年份").input_value() == "" and pg.get_by_label("结束年份").input_value() == ""
    pg.locator("#ipqa-search").click()
    toast = pg.locator(".toast-body").filter(has_text="请输入检索内容")
    toast.wait_for()
    heading = toast.locator(".toast-title")
    assert heading.evaluate("e => getComputedStyle(e, '::before').content") == '"出错了"'
    assert heading.evaluate("e => getComputedStyle(e).fontSize") == "0px"  # Gradio's own "Error", hidden
    _shot(pg, "search-empty-query")
    pg.locator("#ipqa-query textarea").fill("质押融资")
    _pick(pg, "ipqa-search-place", "沧州市")
    pg.locator("#ipqa-search").click()
    pg.locator("#ipqa-results .ipqa-result").first.wait_for()
    titles = pg.locator("#ipqa-results .ipqa-result .ipqa-title").all_inner_texts()
    assert titles and all("沧州" in t for t in titles)
    assert pg.locator("#ipqa-results mark.hl").count() > 0  # matched terms highlighted
    assert "质押" in pg.locator("#ipqa-results mark.hl").first.inner_text() or \
        "融资" in pg.locator("#ipqa-results mark.hl").first.inner_text()
    link = pg.locator("#ipqa-export a").first
    link.wait_for()
    with pg.expect_download() as dl:
        link.click()
    rows = list(csv.reader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0][:2] == ["排名", "得分"] and len(rows) == len(titles) + 1
    assert all(r[4] == "沧州市专利事业发展“十三五”规划" for r in rows[1:])
    # open a result in its document
    pg.locator("#ipqa-results .ipqa-open").first.click()
    pg.locator("#ipqa-results .ipqa-viewer .ipqa-focus").wait_for()
    _shot(pg, "search")


def _docx_from_markdown(md: Path, out: Path) -> Path:
    import docx

    d = docx.Document()
    for line in md.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("<!--"):
            continue
        if line.startswith("# "):
            d.add_heading(line[2:], level=1)
        else:
            d.add_paragraph(line)
    d.save(out)
    return out


@pytest.mark.slow
def test_upload_a_docx_ask_about_it_and_remove_it(page, tmp_path):
    pg = page
    docx_file = _docx_from_markdown(DATA / "宁波市专利管理条例(2012-04-09).md", tmp_path / "宁波市专利管理条例.docx")
    pg.get_by_role("tab", name="文件管理").click()
    _shot(pg, "documents")
    pg.locator("#ipqa-upload input[type=file]").set_input_files(str(docx_file))
    pg.locator("#ipqa-preview .ipqa-preview").first.wait_for()
    preview = pg.locator("#ipqa-preview").inner_text()
    assert "《宁波市专利管理条例》" in preview and "第一条" in preview
    _shot(pg, "documents-preview")
    pg.locator("#ipqa-add").click()
    pg.locator("#ipqa-doc-status .ipqa-ok").wait_for()
    assert "已加入：宁波市专利管理条例" in pg.locator("#ipqa-doc-status").inner_text()
    assert "宁波市专利管理条例" in pg.locator("#ipqa-docs").inner_text()
    # the new document is in sight: the first row of the table; the table's search box filters rows
    rows = pg.locator("#ipqa-docs").inner_text()
    assert rows.index("宁波市专利管理条例") < rows.index("cangzhou-2017")
    assert "2023–2023" not in rows and "2021–2025" in rows  # a one-year period reads 2023
    search = pg.locator("#ipqa-docs input[type=text], #ipqa-docs input:not([type])").first
    assert search.get_attribute("placeholder") == "筛选……"
    search.fill("乌海")
    pg.wait_for_function("() => !document.querySelector('#ipqa-docs').innerText.includes('cangzhou-2017')")
    assert "wuhai-2022" in pg.locator("#ipqa-docs").inner_text()
    search.fill("")
    _shot(pg, "documents-added")

    pg.get_by_role("tab", name="智能问答").click()
    _ask(pg, "宁波市被授予专利权的单位应当在多长时间内发给发明人奖金？", 0)
    answer = pg.locator("#ipqa-chat .ipqa-answer").last.inner_text()
    assert "九十日内" in answer
    assert "宁波市专利管理条例" in pg.locator("#ipqa-sources .ipqa-card").first.inner_text()
    assert "第十一条" in pg.locator("#ipqa-sources .ipqa-card .ipqa-path").first.inner_text()
    _shot(pg, "chat-uploaded")

    pg.get_by_role("tab", name="文件管理").click()
    _pick(pg, "ipqa-remove-choice", "宁波市专利管理条例（宁波市专利管理条例）")
    # removing asks first and says what goes; 取消 keeps the document
    pg.locator("#ipqa-remove").click()
    pg.locator("#ipqa-confirm-text .ipqa-preview").wait_for()
    plan = pg.locator("#ipqa-confirm-text").inner_text()
    assert "《宁波市专利管理条例》" in plan and "重新上传" in plan
    _shot(pg, "documents-confirm-removal")
    pg.locator("#ipqa-remove-cancel").click()
    pg.locator("#ipqa-remove-confirm").wait_for(state="hidden")
    assert "宁波市专利管理条例" in pg.locator("#ipqa-docs").inner_text()
    pg.locator("#ipqa-remove").click()
    pg.locator("#ipqa-remove-confirm").click()
    pg.wait_for_function("() => (document.querySelector('#ipqa-doc-status') || {}).innerText?.includes('已删除')")
    pg.wait_for_function("() => !document.querySelector('#ipqa-docs').innerText.includes('宁波市专利管理条例')")

    pg.get_by_role("tab", name="智能问答").click()
    _ask(pg, "宁波市被授予专利权的单位应当在多长时间内发给发明人奖金？", 1)
    assert "宁波市专利管理条例" not in pg.locator("#ipqa-sources").inner_text()

    # a bundled document removed is not lost: 恢复内置文件 puts it back
    pg.get_by_role("tab", name="文件管理").click()
    _pick(pg, "ipqa-remove-choice", "2023年全省知识产权工作要点（hubei-2023）")
    pg.locator("#ipqa-remove").click()
    pg.locator("#ipqa-confirm-text .ipqa-preview").wait_for()
    assert "内置文件" in pg.locator("#ipqa-confirm-text").inner_text()
    pg.locator("#ipqa-remove-confirm").click()
    pg.wait_for_function("() => !document.querySelector('#ipqa-docs').innerText.includes('hubei-2023')")
    pg.locator("#ipqa-restore").click()
    pg.wait_for_function("() => (document.querySelector('#ipqa-doc-status') || {}).innerText?.includes('已恢复：hubei-2023')")
    assert "hubei-2023" in pg.locator("#ipqa-docs").inner_text()


@pytest.mark.slow
def test_red_header_uploads_preview_with_the_policy_title(page, tmp_path):
    """A government file's usual shape (letterhead, 文号, 关于印发《…》的通知, 主送, body, 落款) as .docx and
    .pdf: the preview names the policy, not the letterhead."""
    from tests.test_formats import RED_HEADER_NOTICE, _write_pdf, _write_red_header_docx

    docx_file = _write_red_header_docx(RED_HEADER_NOTICE, tmp_path / "红头.docx", "沧州市专利资助管理办法")
    pdf_file = tmp_path / "红头扫描.pdf"
    _write_pdf(RED_HEADER_NOTICE, pdf_file)
    pg = page
    pg.get_by_role("tab", name="文件管理").click()
    pg.locator("#ipqa-upload input[type=file]").set_input_files([str(docx_file), str(pdf_file)])
    pg.locator("#ipqa-preview .ipqa-preview").nth(1).wait_for()
    cards = pg.locator("#ipqa-preview .ipqa-preview").all_inner_texts()
    assert len(cards) == 2 and all("《沧州市专利资助管理办法》" in c and "沧市监知〔2023〕12号" in c for c in cards)
    assert not any("《沧州市市场监督管理局文件》" in c for c in cards)
    _shot(pg, "documents-red-header-preview")


@pytest.mark.slow
def test_eval_tab_runs_a_dataset(page):
    pg = page
    pg.get_by_role("tab", name="评测").click()
    pg.locator("#ipqa-eval").click()
    pg.wait_for_function("() => document.querySelector('#ipqa-eval-note').innerText.includes('题')",
                         timeout=240_000)
    summary = pg.locator("#ipqa-eval-summary").inner_text()
    assert "policies_qa" in summary and "ipqa-hybrid" in summary
    # the note counts every question of the dataset and says which count where
    lines = (ROOT / "eval" / "datasets" / "policies_qa.jsonl").read_text(encoding="utf-8").split("\n")
    note = pg.locator("#ipqa-eval-note").inner_text()
    total = sum(1 for line in lines if line.strip())
    with_gold = sum(1 for line in lines if line.strip() and json.loads(line).get("gold"))
    assert f"共 {total} 题：{with_gold} 题有标准条款" in note and with_gold < total
    # every column of the answers table has its header (the 11th used to be headed "11")
    assert "拒答时说对所缺部分" in pg.locator("#ipqa-eval-answers").inner_text()
    pg.locator("img[src*='chart']").first.wait_for()
    assert pg.locator("#ipqa-eval-failing").count() == 1
    _shot(pg, "eval")


@pytest.mark.slow
def test_gradio_client_calls_ask_and_search(server):
    from gradio_client import Client

    client = Client(server["url"], verbose=False)
    first = client.predict("湖北省2023年知识产权质押融资目标是多少？", [], "", "", "", api_name="/ask")
    assert not first["abstained"] and first["citations"][0]["doc_id"] == "hubei-2023"
    history = [{"role": "user", "content": "湖北省2023年知识产权质押融资目标是多少？"},
               {"role": "assistant", "content": first["answer"]}]
    follow = client.predict("那沧州呢？", history, "", "", "", api_name="/ask")
    assert "沧州" in follow["rewritten_query"]
    assert follow["citations"][0]["doc_id"] == "cangzhou-2017"
    # the history's other accepted forms (as in `ipqa ask --batch`): one question, or a list of questions
    for short in ("湖北省2023年知识产权质押融资目标是多少？", ["湖北省2023年知识产权质押融资目标是多少？"]):
        again = client.predict("那沧州呢？", short, "", "", "", api_name="/ask")
        assert "沧州" in again["rewritten_query"] and "质押融资" in again["rewritten_query"]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="history"):
        client.predict("那沧州呢？", [{"role": "robot", "content": 1}], "", "", "", api_name="/ask")
    found = client.predict("质押融资", "沧州", "", "", None, None, "hybrid", 5, api_name="/search")
    assert found["hits"] and all(h["doc_id"] == "cangzhou-2017" for h in found["hits"])


@pytest.mark.slow
def test_the_running_app_finds_a_document_added_with_the_cli(server):
    """``ipqa docs add`` in another process while the app runs: the app finds the new document
    within 5 s without a restart, and stops finding it once ``ipqa docs remove`` took it out."""
    import subprocess
    import sys

    from gradio_client import Client

    from corpus import load_document

    client = Client(server["url"], verbose=False)
    law = DATA / "宁波市专利管理条例(2012-04-09).md"
    doc_id, index_dir = load_document(law).doc_id, str(server["data"].parent / "index")

    def found() -> set[str]:
        hits = client.predict("宁波市专利管理条例", "", "", "", None, None, "bm25", 5, api_name="/search")["hits"]
        return {h["doc_id"] for h in hits}

    def cli(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "cli", "docs", *args, "--index-dir", index_dir], cwd=ROOT, check=True,
                       capture_output=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})

    def within_5s(want: bool) -> bool:
        deadline = time.monotonic() + 5
        while (doc_id in found()) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        return (doc_id in found()) == want

    assert doc_id not in found()
    cli("add", str(law), "--quiet")
    try:
        assert within_5s(True)
    finally:
        cli("remove", doc_id)
    assert within_5s(False)

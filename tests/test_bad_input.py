"""Bad input (issue 8): bad files, odd file names, hostile questions and markup.

Each bad input must give a clear Chinese reason naming the file (or the question),
and never cost the good inputs beside it. The list of inputs tried is in
docs/bad-inputs.md. LLM endpoint failures and prompt injection are in test_assistant.py
(they use its scripted OpenAI-compatible server).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from assistant import add_files, index_sources, open_index
from corpus import UnsupportedDocument, load_document, load_folder
from assistant.service import check_question
from corpus.errors import InvalidQuestion
from tests.conftest import POLICIES, ROOT
from tests.test_formats import _write_pdf

GOOD = ["hubei-2023.txt", "wuhai-2022.txt"]
EVIL_MARKUP = ['<script>alert(1)</script>', '<img src=x onerror=alert(1)>', '[x](javascript:alert(1))',
               '![p](javascript:alert(2))', '<a href="javascript:alert(3)">点我</a>']


# --- building bad files ---------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 16 for _ in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _docx_bomb(inflated: int) -> bytes:
    """A real .docx whose word/document.xml is replaced by ``inflated`` bytes of valid XML."""
    import docx

    blank = io.BytesIO()
    docx.Document().save(blank)
    buf = io.BytesIO()
    with zipfile.ZipFile(blank) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in src.infolist():
            if item.filename != "word/document.xml":
                zf.writestr(item.filename, src.read(item))
        with zf.open("word/document.xml", "w", force_zip64=inflated >= 1 << 31) as f:
            f.write(b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
            block = b"<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 30000
            written = 0
            while written < inflated:
                f.write(block)
                written += len(block)
            f.write(b"</w:body></w:document>")
    return buf.getvalue()


@pytest.fixture(scope="module")
def gigabyte_bomb() -> bytes:
    """About 3 MB on disk, 1 GiB once inflated."""
    return _docx_bomb(1 << 30)


def _encrypted_pdf(path: Path, tmp: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = tmp / "plain-for-encryption.pdf"
    _write_pdf(["第一条 测试文本。"], plain)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="secret", owner_password="owner")
    with open(path, "wb") as fh:
        writer.write(fh)
    plain.unlink()


def _bad_files(folder: Path, bomb: bytes, tmp: Path) -> dict[str, str]:
    """Every kind of bad file, with a word its Chinese reason must contain."""
    rng = random.Random(8)
    files = {
        "setup.exe": (b"MZ\x90\x00" + rng.randbytes(2000), "不支持的文件类型「.exe」"),
        "table.xlsx": (b"PK\x03\x04" + rng.randbytes(500), "表格文件不受支持"),
        "photo.txt": (_png(), "不是文本文件"),
        "random.pdf": (rng.randbytes(4096), "不是有效的 PDF"),
        "random.docx": (rng.randbytes(4096), "不是有效的 .docx"),
        "empty.txt": (b"", "文件为空"),
        "blank.md": (b"  \n\t\n\r\n   \n", "没有可读取的正文"),
        "corrupt.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage without xref", "PDF 文件已损坏"),
        "bomb.docx": (bomb, "压缩炸弹"),
        "big.txt": ((POLICIES / "hubei-2023.txt").read_bytes() * 200, "文件过大"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    _encrypted_pdf(folder / "locked.pdf", tmp)
    return {name: word for name, (_, word) in files.items()} | {"locked.pdf": "加密"}


@pytest.fixture()
def small_limit(monkeypatch):
    """A 4 MB file size limit (the bomb is 3 MB on disk; big.txt is 4.5 MB)."""
    monkeypatch.setenv("IPQA_MAX_FILE_MB", "4")


# --- files ----------------------------------------------------------------------------------


def test_each_bad_file_is_refused_with_its_name_and_a_chinese_reason(tmp_path, gigabyte_bomb, small_limit):
    folder = tmp_path / "bad"
    folder.mkdir()
    expected = _bad_files(folder, gigabyte_bomb, tmp_path)
    for name, word in expected.items():
        with pytest.raises(UnsupportedDocument) as err:
            load_document(folder / name)
        assert err.value.name == name
        assert word in err.value.reason, (name, err.value.reason)
        assert err.value.user_message.startswith(f"文件「{name}」无法导入：")


def test_a_folder_of_bad_files_still_indexes_the_good_ones(tmp_path, gigabyte_bomb, small_limit):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in GOOD:
        (folder / name).write_bytes((POLICIES / name).read_bytes())
    expected = _bad_files(folder, gigabyte_bomb, tmp_path)
    report = index_sources(tmp_path / "ix", collections=[], folders=[folder], embedder="hash")
    reasons = {f.name: f.reason for f in report.failures}
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
        assert f"无法导入：{name}：" in report.summary()
    assert sorted(report.added) == ["hubei-2023", "wuhai-2022"]
    ix = open_index(tmp_path / "ix")
    try:
        assert {d.doc_id for d in ix.documents()} == {"hubei-2023", "wuhai-2022"}
        hubei = ix.search("知识产权质押融资", k=3, mode="bm25", filters=None)
        assert hubei and hubei[0].chunk.doc_id in {"hubei-2023", "wuhai-2022"}
        wuhai = ix.search("乌海市 高价值发明专利", k=3, mode="bm25")
        assert wuhai[0].chunk.doc_id == "wuhai-2022"
    finally:
        ix.close()


def test_zip_bomb_is_refused_from_its_headers_without_inflating(tmp_path, gigabyte_bomb):
    path = tmp_path / "bomb.docx"
    path.write_bytes(gigabyte_bomb)
    assert len(gigabyte_bomb) < 10 * 1024 * 1024
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(UnsupportedDocument, match="压缩炸弹"):
            load_document(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 5 * len(gigabyte_bomb)  # the file itself, never the gigabyte


def test_zip_bomb_that_lies_about_its_size_is_cut_off(tmp_path):
    """Headers claiming 4 KB for a 100 MB member pass the size/ratio check; the loader then inflates
    each member a chunk at a time, stops at the claimed 4 KB and refuses the file on its bad CRC
    (python-docx would inflate the whole member in one read)."""
    data = bytearray(_docx_bomb(100 * 1024 * 1024))
    name = b"word/document.xml"
    local = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name.decode()).header_offset
    assert data[local + 30:local + 30 + len(name)] == name
    struct.pack_into("<I", data, local + 22, 4096)  # local header: uncompressed size
    central = data.rfind(b"PK\x01\x02", 0, data.rindex(name))
    assert data[central + 46:central + 46 + len(name)] == name
    struct.pack_into("<I", data, central + 24, 4096)  # central directory: uncompressed size
    path = tmp_path / "liar.docx"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedDocument, match="大小不符，疑似压缩炸弹"):
            load_document(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024


def test_size_limit_is_configurable(tmp_path, monkeypatch):
    from corpus.errors import InvalidSetting
    from corpus.loaders import DEFAULT_MAX_BYTES, max_file_bytes

    monkeypatch.delenv("IPQA_MAX_FILE_MB", raising=False)
    assert max_file_bytes() == DEFAULT_MAX_BYTES == 20 * 1024 * 1024
    path = tmp_path / "hubei.txt"
    path.write_bytes((POLICIES / "hubei-2023.txt").read_bytes())
    assert load_document(path).doc_id == "hubei"
    monkeypatch.setenv("IPQA_MAX_FILE_MB", "0.01")
    with pytest.raises(UnsupportedDocument) as err:
        load_document(path)
    assert "文件过大" in err.value.reason and "上限为 0.01 MB" in err.value.reason
    assert "IPQA_MAX_FILE_MB" in err.value.reason
    for bad in ["abc", "0", "-3", "nan"]:
        monkeypatch.setenv("IPQA_MAX_FILE_MB", bad)
        with pytest.raises(InvalidSetting) as err:
            max_file_bytes()
        assert "IPQA_MAX_FILE_MB" in err.value.user_message and "无效" in err.value.user_message


def _ipqa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "IPQA_MAX_FILE_MB"}
    full.update({"IPQA_EMBEDDER": "hash", **(env or {})})
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=full)


def test_cli_add_with_odd_names_and_a_small_size_limit(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / GOOD[0]).write_bytes((POLICIES / GOOD[0]).read_bytes())
    ix = str(tmp_path / "ix")
    assert _ipqa("index", "--corpus", str(good), "--index-dir", ix, "--quiet").returncode == 0
    odd = tmp_path / "odd"
    (odd / "sub").mkdir(parents=True)
    text = (POLICIES / "wuhai-2022.txt").read_text(encoding="utf-8")
    names = {"<script>.md": "-script-", "two\nlines.txt": "two_lines", ".hidden.md": ".hidden",
             "很长的文件名" * 13 + ".txt": "很长的文件名" * 13}
    for i, name in enumerate(names):
        (odd / name).write_text(f"第{i}版\n" + text, encoding="utf-8")  # different content: not duplicates
    (odd / "passwd.txt").write_text("第九版\n" + text, encoding="utf-8")
    big = odd / "big.txt"
    big.write_bytes((POLICIES / "hubei-2023.txt").read_bytes() * 3)
    traversal = str(odd / "sub" / ".." / ".." / "odd" / "passwd.txt")
    added = _ipqa("docs", "add", *[str(odd / n) for n in names], traversal, str(big), "--index-dir", ix,
                  "--quiet", "--max-file-mb", "0.05")
    assert added.returncode == 1, added.stderr  # one file failed
    assert "新增 5 个文档" in added.stdout
    assert "无法导入：big.txt：文件过大" in added.stdout and "上限为 0.05 MB" in added.stdout
    docs = {d.doc_id for d in open_index(ix).documents()}
    assert docs == {"hubei-2023", "passwd", *names.values()}
    for doc_id in docs:
        assert "/" not in doc_id and "<" not in doc_id and "\n" not in doc_id
    refused = _ipqa("docs", "add", str(big), "--index-dir", ix, "--max-file-mb", "abc")
    assert refused.returncode == 2 and "--max-file-mb" in refused.stderr and "大于 0 的数字" in refused.stderr
    bad_env = _ipqa("docs", "add", str(big), "--index-dir", ix, env={"IPQA_MAX_FILE_MB": "lots"})
    assert bad_env.returncode == 2 and "IPQA_MAX_FILE_MB" in bad_env.stderr and "无效" in bad_env.stderr


def test_same_file_twice_in_one_add_is_stored_once(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / GOOD[0]).write_bytes((POLICIES / GOOD[0]).read_bytes())
    ix = tmp_path / "ix"
    index_sources(ix, collections=[], folders=[good], embedder="hash")
    wuhai = tmp_path / "wuhai-2022.txt"
    wuhai.write_bytes((POLICIES / "wuhai-2022.txt").read_bytes())
    copy = tmp_path / "wuhai-copy.txt"
    copy.write_bytes(wuhai.read_bytes())
    report = add_files([wuhai, wuhai, copy], ix)
    assert report.added == ["wuhai-2022"] and report.failures == []
    assert report.duplicates == [("wuhai-copy", "wuhai-2022")]
    index = open_index(ix)
    try:
        assert sorted(d.doc_id for d in index.documents()) == ["hubei-2023", "wuhai-2022"]
        hits = index.search("乌海市 高价值发明专利", k=20, mode="bm25")
        assert len({h.chunk.chunk_id for h in hits}) == len(hits)  # no chunk stored twice
    finally:
        index.close()


def test_document_without_headings_is_indexed_and_answerable(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "意见.txt").write_text(
        "关于加强知识产权保护的若干意见\n各单位要加强专利保护工作，对侵权行为依法查处。\n"
        "对获得发明专利授权的小微企业，每件给予3000元奖励。\n本意见自发布之日起施行。\n", encoding="utf-8")
    doc = load_document(folder / "意见.txt")
    assert doc.clauses and "每件给予3000元奖励" in doc.clauses[0].text
    index_sources(tmp_path / "ix", collections=[], folders=[folder], embedder="hash")
    ix = open_index(tmp_path / "ix")
    try:
        hits = ix.search("小微企业发明专利授权奖励", k=3, mode="bm25")
        assert hits[0].chunk.doc_id == "意见" and "3000元" in hits[0].chunk.text
    finally:
        ix.close()


# --- the app's upload path -------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_inert(fragment: str, *, markdown: bool = False) -> None:
    """``fragment`` (rendered as the chat renders it when ``markdown``) runs nothing and links nowhere."""
    if markdown:
        from markdown_it import MarkdownIt

        fragment = MarkdownIt("commonmark", {"html": True}).render(fragment)
    parser = _Tags()
    parser.feed(fragment)
    for tag, attrs in parser.tags:
        assert tag not in ("script", "img", "iframe", "object", "embed", "svg", "style"), (tag, fragment)
        for key, value in attrs.items():
            assert not key.startswith("on"), (tag, key, fragment)
            if key in ("href", "src"):
                assert value == "javascript:void(0)", (tag, key, value)  # our own "open" links only
    assert "javascript:alert" not in "".join(str(a) for _, a in parser.tags)


def _evil_policy() -> str:
    return ("某市知识产权资助办法\n一、专利资助\n对获得发明专利授权的企业" + EVIL_MARKUP[0]
            + "，每件资助5000元。" + "".join(EVIL_MARKUP[2:4]) + "\n二、附则\n本办法" + EVIL_MARKUP[4] + "自发布之日起施行。\n")


@pytest.fixture()
def backend(tmp_path):
    from assistant.service import Assistant
    from ui.backend import Backend

    good = tmp_path / "good"
    good.mkdir()
    (good / GOOD[0]).write_bytes((POLICIES / GOOD[0]).read_bytes())
    ix = tmp_path / "data" / "index"
    index_sources(ix, collections=[], folders=[good], embedder="hash")
    b = Backend(ix, data_dir=tmp_path / "data", assistant=Assistant(open_index(ix), llm=None))
    yield b
    b.assistant.close()


def test_upload_odd_names_stay_in_the_uploads_folder(tmp_path, backend, gigabyte_bomb):
    incoming = tmp_path / "incoming"
    (incoming / "a" / "b").mkdir(parents=True)
    text = (POLICIES / "wuhai-2022.txt").read_text(encoding="utf-8")
    names = ["<script>.md", "two\nlines.txt", ".hidden.md", "很长" * 41 + ".txt", "\u202egnp.txt"]
    paths = []
    for i, name in enumerate(names):
        p = incoming / name
        p.write_text(f"第{i}版\n" + text, encoding="utf-8")
        paths.append(p)
    # A browser may send a name with directories in it; Gradio keeps it as the last part.
    paths.append(incoming / "a" / "b" / ".." / ".." / "passwd.txt")
    paths[-1].write_text("第九版\n" + text, encoding="utf-8")
    (incoming / "bomb.docx").write_bytes(gigabyte_bomb)
    (incoming / "setup.exe").write_bytes(b"MZ\x90\x00")
    paths += [incoming / "bomb.docx", incoming / "setup.exe"]
    changed = backend.add(paths)
    assert not changed.ok  # two files failed …
    assert len(changed.added) == 6  # … and six were added
    assert "文件「bomb.docx」无法导入" in changed.message and "压缩炸弹" in changed.message
    assert "文件「setup.exe」无法导入：不支持的文件类型" in changed.message
    uploads = backend.uploads_dir.resolve()
    stored = sorted(p for p in uploads.rglob("*") if p.is_file())
    assert all(p.parent == uploads for p in stored)
    assert not any(p.name.startswith(".") or "\n" in p.name or "<" in p.name for p in stored)
    assert all(len(p.name.encode("utf-8")) <= 255 for p in stored)
    assert "passwd.txt" in {p.name for p in stored}
    assert not (tmp_path / "passwd.txt").exists() and not (tmp_path / "data" / "passwd.txt").exists()


def test_uploaded_markup_is_shown_escaped(tmp_path, backend):
    from ui.render import document_html, preview_html, sources_html

    path = tmp_path / "evil.txt"
    path.write_text(_evil_policy(), encoding="utf-8")
    previews = backend.preview([path])
    assert previews[0].error is None and "<script>" in previews[0].document.text  # kept as text …
    for html in (preview_html(previews), document_html(previews[0].document, focus="evil:一、")):
        assert_inert(html)  # … and shown as text
        assert "&lt;script&gt;alert&#40;1&#41;&lt;/script&gt;" in html
    assert backend.add([path]).ok
    answer = backend.ask("某市对获得发明专利授权的企业每件资助多少？")
    hit = next(h for h in answer.hits if h.chunk.doc_id == "evil")
    assert "<script>" in hit.chunk.text
    panel = sources_html(answer, lambda _: "")
    assert_inert(panel)
    assert_inert(preview_html([type(previews[0])(name="<img src=x onerror=alert(1)>.txt", error="x")]))


# --- questions: fast checks (no model) -------------------------------------------------------


@pytest.mark.parametrize("question, reason", [
    ("", "问题为空"), ("   \n\t ", "问题为空"), ("专" * 20000, "问题太长（20000 字）"), ("专" * 501, "问题太长（501 字）"),
    ("\x00\x1b[31m\u202e\u200b\ufeff\x1b[0m", "只有控制字符或不可见字符"),
])
def test_unusable_questions_are_refused_quickly(question, reason):
    from assistant.service import check_question

    started = time.perf_counter()
    with pytest.raises(InvalidQuestion, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_question(question)
    assert time.perf_counter() - started < 0.1


def test_question_cleaning():
    from assistant.service import check_question, clean_question

    dirty = "荆门\x00高新区\x1b[31m对通过\x1b[0m贯标\u202e认证\u200b的企业\u2066有奖励吗？\r\n"
    assert clean_question(dirty) == "荆门高新区对通过贯标认证的企业有奖励吗？"
    assert clean_question("到２０２５年ＰＣＴ申请量😀（件）") == "到2025年PCT申请量😀（件）"
    assert check_question("  专利 " + "\u200b" * 1000) == "专利"  # invisible padding does not count


def test_cli_refuses_a_huge_question_before_opening_any_index(tmp_path):
    started = time.perf_counter()
    result = _ipqa("ask", "专" * 20000, "--index-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert "问题太长（20000 字）" in result.stderr and "还没有建立索引" not in result.stderr
    assert "Traceback" not in result.stderr
    assert time.perf_counter() - started < 60


# --- questions and the chat: real model --------------------------------------------------------

from tests.test_assistant import assistant  # noqa: E402,F401  (the real-index fixture)

JINGMEN = "荆门高新区对通过贯标认证的企业有奖励吗？"
JINGMEN_CLAUSE = "jingmen-hitech-2023:四、/(四)/15."


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    "荆门\x00高新区\x1b[31m对通过\x1b[0m贯标\u202e认证\u200b的企业\u2066有奖励吗？",  # control/bidi/zero-width
    "荆门高新区对通过贯标认证的企业有奖励吗？😀🙏",  # emoji
    "<script>alert(1)</script>荆门高新区对通过贯标认证的企业有奖励吗？",  # markup in the question
    "[x](javascript:alert(1)) 荆门高新区对通过贯标认证的企业有奖励吗？<img src=x onerror=alert(1)>",
])
def test_odd_questions_get_the_same_answer(assistant, question):
    answer = assistant.ask(question)
    assert not answer.abstained and [c.clause_id for c in answer.citations] == [JINGMEN_CLAUSE]
    assert "\x00" not in answer.question and "\x1b" not in answer.question and "\u202e" not in answer.question


@pytest.mark.slow
def test_mixed_scripts_and_full_width(assistant):
    answer = assistant.ask("荆门高新区到２０２５年ＰＣＴ专利 annual 年申请量要达到多少？")
    assert "PCT专利年申请量达到80件以上" in answer.text


@pytest.mark.slow
def test_chat_shows_injected_markup_as_text(assistant, tmp_path):
    """The chatbot gets the user's bubble and the answer as escaped HTML/Markdown (ui/app.py's
    respond, driven directly), and the sources panel beside it."""
    from ui.app import App
    from ui.backend import Backend
    from ui.render import answer_markdown, sources_html

    app = App(Backend(tmp_path / "ix", data_dir=tmp_path, assistant=assistant))
    for evil in EVIL_MARKUP:
        steps = list(app.respond(evil + JINGMEN, [], [], {}, None, None, None))
        chat, sources = steps[-1][1], steps[-1][4]
        assert [m["role"] for m in chat] == ["user", "assistant"]
        for message in chat:
            assert_inert(message["content"], markdown=True)
        assert_inert(sources)
        assert "贯标认证" in chat[1]["content"]
    answer = assistant.ask(EVIL_MARKUP[2] + JINGMEN)
    assert_inert(answer_markdown(answer), markdown=True)
    assert_inert(sources_html(answer, lambda _: ""))


# --- issue 15: readers never sink a batch ------------------------------------------------------


def _aes_pdf(path: Path, tmp: Path, *, user_password: str) -> None:
    """A PDF encrypted with AES-256 (the usual kind); an empty user password means anyone may open it."""
    from pypdf import PdfReader, PdfWriter

    plain = tmp / f"plain-{path.stem}.pdf"
    _write_pdf(["某市专利资助办法", "第一条 每件发明专利资助五千元。", "第二条 本办法自发布之日起施行。",
                "第三条 本办法由市知识产权局负责解释。"], plain)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    with open(path, "wb") as fh:
        writer.write(fh)
    plain.unlink()


def test_aes_encrypted_pdfs_get_a_reason_and_never_sink_the_batch(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in GOOD:
        (folder / name).write_bytes((POLICIES / name).read_bytes())
    _aes_pdf(folder / "locked-aes.pdf", tmp_path, user_password="secret")
    _aes_pdf(folder / "open-aes.pdf", tmp_path, user_password="")  # owner password only: readable
    report = load_folder(folder)
    assert {d.doc_id for d in report.documents} == {"hubei-2023", "wuhai-2022", "open-aes"}
    assert [(f.name, f.reason) for f in report.failures] == [
        ("locked-aes.pdf", "PDF 已加密，需要密码才能读取；请先用密码打开并另存为不加密的 PDF")]
    opened = next(d for d in report.documents if d.doc_id == "open-aes")
    assert "每件发明专利资助五千元" in opened.text

    listed = _ipqa("docs", "list", "--corpus", str(folder), "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    out = json.loads(listed.stdout)
    assert {d["doc_id"] for d in out["documents"]} == {"hubei-2023", "wuhai-2022", "open-aes"}
    assert out["failures"] == [{"file": "locked-aes.pdf", "reason": report.failures[0].reason}]
    ix = tmp_path / "ix"
    added = _ipqa("docs", "add", *map(str, sorted(folder.iterdir())), "--index-dir", str(ix), "--quiet")
    assert added.returncode == 1  # one file failed ...
    assert "新增 3 个文档" in added.stdout and "无法导入：locked-aes.pdf：PDF 已加密，需要密码" in added.stdout
    indexed = _ipqa("index", "--corpus", str(folder), "--index-dir", str(tmp_path / "ix2"), "--quiet")
    assert indexed.returncode == 0 and "新增 3 个文档" in indexed.stdout  # ... and the good ones are in


def test_a_reader_bug_on_one_file_is_a_reason_not_a_traceback(tmp_path, monkeypatch):
    """Whatever a parser raises becomes that file's reason; the rest of the folder loads."""
    import corpus.loaders

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / GOOD[0]).write_bytes((POLICIES / GOOD[0]).read_bytes())
    (folder / "page.html").write_text("<html><body><p>第一条 测试。</p></body></html>", encoding="utf-8")

    def broken(html):
        raise LookupError("parser bug")

    monkeypatch.setattr(corpus.loaders, "html_to_text", broken)  # a dependency failing, not the code under test
    report = load_folder(folder)
    assert [d.doc_id for d in report.documents] == ["hubei-2023"]
    assert [(f.name, f.reason) for f in report.failures] == [("page.html", "无法读取或解析（LookupError）")]


def test_limits_fit_the_work_and_refuse_early(tmp_path, monkeypatch):
    """A 50 MB text is refused by its size, a long text by its length, before any parsing."""
    from corpus.loaders import MAX_TEXT_CHARS

    monkeypatch.delenv("IPQA_MAX_FILE_MB", raising=False)
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MB on paper
    with pytest.raises(UnsupportedDocument, match=r"文件过大（50\.0 MB），上限为 20\.0 MB"):
        load_document(huge)
    long = tmp_path / "long.txt"
    long.write_text("本条为测试文字。\n" * 122_222, encoding="utf-8")  # 1.1 million characters
    assert long.stat().st_size < 20 * 1024 * 1024
    with pytest.raises(UnsupportedDocument, match="文字过多（110 万字），上限为 100 万字") as err:
        load_document(long)
    assert "请拆分" in err.value.reason
    # Every law of the bundled collection and the longest law of LawRefBook (105,000 characters) fit.
    assert max(len(d.text) for d in load_collection_docs("laws")) < MAX_TEXT_CHARS / 5


def load_collection_docs(name: str):
    from corpus import load_collection

    return load_collection(name).documents


def test_gbk_text_typed_without_spaces_is_split_into_articles(tmp_path):
    """"第一条为了…" (no space after 条, as Windows-typed GBK files often have) and a two-article text."""
    text = "某市专利资助办法\r\n第一条为了鼓励发明创造，制定本办法。\r\n第二条本办法适用于本市企业。\r\n"
    (tmp_path / "rules.txt").write_bytes(text.encode("gbk"))
    (tmp_path / "rules-utf8.md").write_text(text, encoding="utf-8")
    for name in ("rules.txt", "rules-utf8.md"):
        doc = load_document(tmp_path / name)
        assert doc.title == "某市专利资助办法"
        assert [c.heading for c in doc.clauses] == ["题注", "第一条", "第二条"], name
    quoted = tmp_path / "refs.txt"  # a line that starts with a reference to an article is body text
    quoted.write_bytes("某市办法\n第一条 总则。\n第二条 范围。\n第三条 程序。\n第一条规定的企业可以申请。\n".encode("gbk"))
    assert [c.heading for c in load_document(quoted).clauses] == ["题注", "第一条", "第二条", "第三条"]


# --- issue 15: batches -----------------------------------------------------------------------


def test_every_batch_answers_its_good_lines_and_names_its_bad_ones(tmp_path, real_index):
    index_dir, _ = real_index
    batch = tmp_path / "questions.jsonl"
    lines = [
        '{"id": 1, "question": "发明专利权的期限是多少年？"}',
        "这一行不是 JSON",
        '{"id": 3}',
        '{"id": 4, "question": "😀🙏"}',
        '["id", 5]',
        '{"id": 6, "question": "商标法第三条"}',
    ]
    data = ("\n".join(lines[:4]) + "\n").encode("utf-8") + b'{"id": 5, "question": "\xff\xfe bad"}\n' + \
        ("\n".join(lines[4:]) + "\n\n").encode("utf-8")
    batch.write_bytes(b"\xef\xbb\xbf" + data)
    for command in ("search", "ask"):
        result = _ipqa(command, "--batch", str(batch), "--index-dir", str(index_dir), env={"IPQA_EMBEDDER": ""})
        assert result.returncode == 1, result.stderr  # some lines failed
        assert "Traceback" not in result.stderr and "5 行未能处理" in result.stderr
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r.get("id") for r in rows] == [1, None, 3, 4, None, None, 6]
        good = [r for r in rows if "error" not in r]
        assert [r["id"] for r in good] == [1, 6]
        assert all(("hits" if command == "search" else "answer") in r for r in good)
        errors = {r.get("line"): r["error"] for r in rows if "error" in r}
        assert errors == {2: "第 2 行不是有效的 JSON（Expecting value，第 1 列）",
                          3: '第 3 行应为含 "id" 和 "question"（文字）的 JSON 对象',
                          4: "问题中没有可以检索的文字（只有表情符号、标点或符号），请用文字描述您的问题",
                          5: "第 5 行不是 UTF-8 编码的文本",
                          6: '第 6 行应为含 "id" 和 "question"（文字）的 JSON 对象'}
    missing = _ipqa("ask", "--batch", str(tmp_path / "nope.jsonl"), "--index-dir", str(index_dir),
                    env={"IPQA_EMBEDDER": ""})
    assert missing.returncode == 2 and "无法读取批量文件" in missing.stderr and "Traceback" not in missing.stderr


# --- issue 15: questions and parameters, the same everywhere --------------------------------


@pytest.mark.parametrize("question", ["😀🙏", "？？？！！", "……", "※★☆", "👍🏻 ✅"])
def test_a_question_without_words_is_refused(question):
    with pytest.raises(InvalidQuestion, match="没有可以检索的文字"):
        check_question(question)


BAD_PARAMETERS = [
    (["-k", "0"], "结果数应为 1 到 100 之间的整数，而不是「0」"),
    (["-k", "-1"], "结果数应为 1 到 100 之间的整数，而不是「-1」"),
    (["-k", "101"], "结果数应为 1 到 100 之间的整数，而不是「101」"),
    (["--year", "2025-2020"], "起始年份 2025 晚于结束年份 2020"),
    (["--year", "1800"], "年份 1800 不在合理范围（1949–2100）内"),
    (["--year", "去年"], "年份应为整数，例如 2021，而不是「去年」"),
    (["--region", "火星"], "收录的文件中没有关于「火星」的文件；可选的地区："),
    (["--doc", "no-such-doc"], "知识库中没有文档「no-such-doc」"),
    (["--kind", "童话"], "没有类型为「童话」的文件；可选的类型："),
    (["--mode", "fuzzy"], "无效的取值 'fuzzy'"),  # argparse's own check of --mode, in Chinese (cli/zh.py)
]


@pytest.mark.parametrize("args, message", BAD_PARAMETERS)
def test_cli_refuses_bad_parameters_as_the_api_does(real_index, args, message):
    result = _ipqa("search", "专利资助", *args, "--index-dir", str(real_index[0]), env={"IPQA_EMBEDDER": ""})
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_api_refuses_the_same_parameters(real_index, tmp_path):
    """One validation: the API gives the same messages as the CLI (with the page's mode labels accepted)."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from tests.servers import serve

    with serve(tmp_path / "srv", index_dir=real_index[0]) as srv:
        client = Client(srv["url"], verbose=False)
        cases = [(("", "", "", None, None, "hybrid", 0), "结果数应为 1 到 100 之间的整数，而不是「0」"),
                 (("", "", "", None, None, "hybrid", 101), "结果数应为 1 到 100 之间的整数，而不是「101」"),
                 (("", "", "", 2025, 2020, "hybrid", 5), "起始年份 2025 晚于结束年份 2020"),
                 (("火星", "", "", None, None, "hybrid", 5), "收录的文件中没有关于「火星」的文件"),
                 (("", "", "", None, None, "fuzzy", 5), "检索方式「fuzzy」无效")]
        for args, message in cases:
            with pytest.raises(AppError, match=message):
                client.predict("专利资助", *args, api_name="/search")
        hits = client.predict("专利资助", "沧州", "", "", None, None, "关键词检索", 3, api_name="/search")["hits"]
        assert len(hits) == 3 and all(h["doc_id"] == "cangzhou-2017" for h in hits)
        with pytest.raises(AppError, match="没有可以检索的文字"):
            client.predict("😀🙏", [], "", "", "", api_name="/ask")
        with pytest.raises(AppError, match="收录的文件中没有关于「火星」的文件"):
            client.predict("专利资助", [], "火星", "", "", api_name="/ask")
        # each refusal is one line in the server's log, not a traceback
        log = srv["log"].read_text(errors="replace")
        assert "Traceback" not in log and log.count("request refused:") >= len(cases) + 2


# --- issue 15: uploads that are refused leave nothing behind; writers never queue behind a big one ---


def _gradio_upload(temp: Path, name: str, data: bytes) -> Path:
    """A file as Gradio stores an upload: its own folder in the app's temporary folder."""
    folder = temp / hashlib.sha1(name.encode() + data[:64]).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


def test_rejected_uploads_are_deleted_and_the_temp_folder_is_bounded(tmp_path, backend, monkeypatch):
    monkeypatch.setenv("IPQA_MAX_FILE_MB", "1")
    temp = backend.temp_dir
    text = (POLICIES / "wuhai-2022.txt").read_text(encoding="utf-8")
    good = _gradio_upload(temp, "新政策.txt", ("新版\n" + text).encode("utf-8"))
    refused = [_gradio_upload(temp, "big.txt", b"x" * (2 * 1024 * 1024)), _gradio_upload(temp, "setup.exe", b"MZ\x90"),
               _gradio_upload(temp, "broken.pdf", b"%PDF-1.7 garbage"), _gradio_upload(temp, "photo.txt", _png())]
    changed = backend.add([good, *refused])
    assert changed.added == ["新政策"] and not changed.ok
    for name in ("big.txt", "setup.exe", "broken.pdf", "photo.txt"):
        assert f"文件「{name}」无法导入" in changed.message
    assert sorted(p.name for p in backend.uploads_dir.iterdir()) == ["新政策.txt"]
    assert list(temp.iterdir()) == []  # every upload and its folder gone from the temp folder

    # A refused file never replaces the kept copy of a document with its name.
    kept = (backend.uploads_dir / "新政策.txt").read_bytes()
    assert not backend.add([_gradio_upload(temp, "新政策.txt", _png())]).ok
    assert (backend.uploads_dir / "新政策.txt").read_bytes() == kept and list(temp.iterdir()) == []
    # Nor does a file whose content duplicates another document.
    other = _gradio_upload(temp, "新政策.txt", (POLICIES / GOOD[0]).read_bytes())
    assert "未重复导入：新政策 与已有文档 hubei-2023 内容相同" in backend.add([other]).message
    assert (backend.uploads_dir / "新政策.txt").read_bytes() == kept

    # Uploads never added (previewed, then abandoned) go after an hour, the oldest first past the size bound.
    now = time.time()
    old = _gradio_upload(temp, "old.txt", b"a" * 1000)
    os.utime(old, (now - 7200, now - 7200))
    young = [_gradio_upload(temp, f"young{i}.txt", bytes([65 + i]) * 400_000) for i in range(3)]
    for i, path in enumerate(young):
        os.utime(path, (now - 300 + i, now - 300 + i))
    assert backend.prune_temp(max_bytes=1_000_000) == 2  # the old one, then the oldest young one
    assert not old.exists() and not young[0].exists() and young[1].exists() and young[2].exists()


def test_a_large_upload_never_makes_a_small_one_wait(tmp_path):
    """Embedding runs before the writers' lock: a small document added while a large one is being
    embedded is in the index before the large one's embedding ends, and readers answer throughout."""
    import threading

    from index.core import KnowledgeIndex, update_index
    from index.embedders import HashEmbedder

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / GOOD[0]).write_bytes((POLICIES / GOOD[0]).read_bytes())
    ix = tmp_path / "ix"
    index_sources(ix, collections=[], folders=[folder], embedder="hash")
    small_done, events = threading.Event(), []

    class SlowEmbedder(HashEmbedder):
        """Embeds the large document only once the small one is in the index (or after 60 s)."""

        def encode_passages(self, texts, *, progress=False):
            events.append("large: embedding")
            small_done.wait(60)
            events.append("large: embedded")
            return super().encode_passages(texts)

    large = load_document(ROOT / "corpus" / "laws" / "专利法实施细则(2023-12-11).md")
    small = load_document(POLICIES / GOOD[1])
    reports = {}
    writer = threading.Thread(target=lambda: reports.__setitem__(
        "large", update_index(ix, add=[(large, "added")], embedder=SlowEmbedder())))
    writer.start()
    while not events:
        time.sleep(0.01)
    reports["small"] = update_index(ix, add=[(small, "added")], embedder=HashEmbedder())
    events.append("small: in the index")
    reader = KnowledgeIndex.open(ix, embedder=HashEmbedder())
    assert {d.doc_id for d in reader.documents()} == {"hubei-2023", "wuhai-2022"}
    assert reader.search("知识产权质押融资", 3)
    reader.close()
    small_done.set()
    writer.join(120)
    assert events == ["large: embedding", "small: in the index", "large: embedded"]
    assert reports["large"].added == [large.doc_id] and reports["small"].added == ["wuhai-2022"]
    reader = KnowledgeIndex.open(ix, embedder=HashEmbedder())
    assert {d.doc_id for d in reader.documents()} == {"hubei-2023", "wuhai-2022", large.doc_id}
    reader.close()


def test_an_index_of_a_model_not_on_this_machine_is_refused_without_the_network(tmp_path):
    """A manifest naming a model this machine lacks: no model hub is asked (a local stand-in for the hub
    counts every connection), and the message names the model and the command that rebuilds the index."""
    import socket
    import threading

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / GOOD[0]).write_bytes((POLICIES / GOOD[0]).read_bytes())
    ix = tmp_path / "ix"
    index_sources(ix, collections=[], folders=[folder], embedder="hash")
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    manifest["embedder"] = {"name": "BAAI/bge-small-zh-v1.5", "dim": 512}
    (ix / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")

    hub, connections = socket.socket(), []
    hub.bind(("127.0.0.1", 0))
    hub.listen()
    hub.settimeout(0.2)

    def count():
        while not stop.is_set():
            try:
                conn, _ = hub.accept()
                connections.append(conn)
                conn.close()
            except OSError:
                pass

    stop = threading.Event()
    watcher = threading.Thread(target=count)
    watcher.start()
    try:
        hub_url = f"http://127.0.0.1:{hub.getsockname()[1]}"
        for command in (["search", "专利"], ["ask", "专利的期限"]):
            result = _ipqa(*command, "--index-dir", str(ix), env={"IPQA_EMBEDDER": "", "HF_ENDPOINT": hub_url,
                                                                   "HF_HUB_OFFLINE": "0"})
            assert result.returncode == 2, result.stderr
            assert "索引由向量模型「BAAI/bge-small-zh-v1.5」建立，本机无法使用该模型" in result.stderr
            assert f"请运行：ipqa index --reembed --index-dir {ix}" in result.stderr  # keeps what it holds
            assert "Traceback" not in result.stderr
    finally:
        stop.set()
        watcher.join()
        hub.close()
    assert connections == []

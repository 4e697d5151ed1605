"""Bad input (issue 8): bad files, odd file names, hostile questions and markup.

Each bad input must give a clear Chinese reason naming the file (or the question),
and never cost the good inputs beside it. The list of inputs tried is in
docs/bad-inputs.md. LLM endpoint failures and prompt injection are in test_assistant.py
(they use its scripted OpenAI-compatible server).
"""

from __future__ import annotations

import io
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
    assert max_file_bytes() == DEFAULT_MAX_BYTES == 200 * 1024 * 1024
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
    full.update(IPQA_EMBEDDER="hash", **(env or {}))
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=ROOT, capture_output=True,
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

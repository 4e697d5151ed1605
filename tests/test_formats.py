"""Every supported format and encoding loads to the same clauses as the .txt source;
bad files are reported by name while their neighbours load."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest

from corpus import UnsupportedDocument, load_document, load_folder
from corpus.clean import compact
from tests.conftest import POLICIES

SEED = POLICIES / "changsha-furong-2017.txt"


def signature(doc, *, ignore_space: bool = False):
    """What must survive a format change: ids, paths and each clause's words."""
    norm = compact if ignore_space else (lambda s: s)
    return [(c.clause_id, tuple(norm(p) for p in c.path), norm(c.text)) for c in doc.clauses]


def metadata(doc):
    return (doc.title, doc.issuer, doc.doc_number, doc.issued, doc.region, doc.period, doc.kind)


@pytest.fixture(scope="module")
def reference():
    return load_document(SEED)


def _same_name(tmp_path: Path, suffix: str) -> Path:
    return tmp_path / f"{SEED.stem}{suffix}"


def test_gbk(tmp_path, reference):
    # NBSP and the bullet "•" (page chrome) have no GBK code.
    text = SEED.read_text(encoding="utf-8").replace("\u00a0", " ").replace("•", "·")
    path = _same_name(tmp_path, ".txt")
    path.write_bytes(text.encode("gbk"))
    doc = load_document(path)
    assert signature(doc) == signature(reference)
    assert metadata(doc) == metadata(reference)
    assert any("GB18030" in n for n in doc.notes)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "gb18030"])
def test_other_encodings(tmp_path, reference, encoding):
    path = _same_name(tmp_path, ".txt")
    path.write_bytes(SEED.read_text(encoding="utf-8").encode(encoding))
    assert signature(load_document(path)) == signature(reference)


def test_docx(tmp_path, reference):
    import docx

    document = docx.Document()
    for line in SEED.read_text(encoding="utf-8").split("\n"):
        document.add_paragraph(line)
    path = _same_name(tmp_path, ".docx")
    document.save(path)
    doc = load_document(path)
    assert doc.source_format == "docx"
    assert signature(doc) == signature(reference)
    assert metadata(doc) == metadata(reference)


def test_docx_automatic_numbering_becomes_headings(tmp_path):
    """Word keeps "1." of numbered lists in numbering.xml; the loader writes it back."""
    import docx

    document = docx.Document()
    document.add_paragraph("某市知识产权工作方案")
    for item in ["强化组织领导。成立领导小组。", "加大资金投入。设立专项资金。"]:
        document.add_paragraph(item, style="List Number")
    path = tmp_path / "numbered.docx"
    document.save(path)
    doc = load_document(path)
    headings = [c.heading for c in doc.clauses if c.number]
    assert headings == ["1.强化组织领导", "2.加大资金投入"]


def _write_pdf(lines: list[str], path: Path, width: int = 36, per_page: int = 42) -> None:
    """A PDF that wraps each paragraph at ``width`` characters and numbers its pages."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    visual = [p[i:i + width] for p in lines if p.strip() for i in range(0, len(p.strip()), width)]
    pdf = canvas.Canvas(str(path))
    for page_start in range(0, len(visual), per_page):
        pdf.setFont("STSong-Light", 11)
        for row, text in enumerate(visual[page_start:page_start + per_page]):
            pdf.drawString(50, 800 - 17 * row, text)
        pdf.drawString(290, 40, f"- {page_start // per_page + 1} -")
        pdf.showPage()
    pdf.save()


@pytest.mark.parametrize("name", ["jingmen-hitech-2023.txt", "changsha-furong-2017.txt"])
def test_pdf(tmp_path, name):
    source = POLICIES / name
    reference = load_document(source)
    lines = [l.strip() for l in source.read_text(encoding="utf-8").split("\n")]
    path = tmp_path / f"{source.stem}.pdf"
    _write_pdf(lines, path)
    doc = load_document(path)
    assert doc.source_format == "pdf"
    # A PDF keeps the words but not the layout: compare without whitespace.
    assert signature(doc, ignore_space=True) == signature(reference, ignore_space=True)
    assert doc.title == reference.title and doc.region == reference.region


HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="{charset}"><title>{title} - 某某区人民政府网</title>
<script>var analytics = "登录";</script><style>p {{ margin: 0 }}</style></head>
<body>
<div class="top"><a href="/login">登录</a> <a href="/reg">注册</a> <a>退出</a></div>
<nav><a href="/">首页</a> &gt; <a>信息公开</a></nav>
<div class="crumb">当前位置: 首页 &gt; 信息公开 &gt; 政策文件</div>
<div class="article">{paragraphs}</div>
<div class="tools">打印 关闭</div>
<footer><p>联系方式:0731-85161658</p><p>版权所有 某某区人民政府</p></footer>
</body></html>"""


def test_html(tmp_path, reference):
    lines = [l for l in SEED.read_text(encoding="utf-8").split("\n") if l.strip()]
    body_end = next(i for i, l in enumerate(lines) if l.endswith(".zip"))
    paragraphs = "\n".join(f"<p>{l.strip()}</p>" for l in lines[:body_end])
    path = _same_name(tmp_path, ".html")
    path.write_text(HTML_PAGE.format(charset="utf-8", title=reference.title, paragraphs=paragraphs), encoding="utf-8")
    doc = load_document(path)
    assert doc.source_format == "html"
    assert signature(doc) == signature(reference)
    assert metadata(doc) == metadata(reference)


def test_html_gbk_with_a_real_table(tmp_path):
    """A GBK page whose indicator table is a real <table>: one line per row, headers folded in."""
    table = (
        "<table><tr><td>指标</td><td>2015年</td><td>2020年</td><td>年均增速</td><td>指标属性</td></tr>"
        "<tr><td>全市年专利申请量(件)</td><td>4026</td><td>6500</td><td>10%以上</td><td>预期性</td></tr>"
        "<tr><td>每万人口发明专利拥有量(件/万人)</td><td>0.64</td><td>8.0以上</td><td>65%以上</td><td>预期性</td></tr>"
        "</table>")
    paragraphs = "<p>沧州市专利事业发展“十三五”规划</p><p>二、发展目标</p><p>——专利创造能力进一步提升。</p>" + table
    html = HTML_PAGE.format(charset="gb2312", title="沧州市专利事业发展“十三五”规划", paragraphs=paragraphs)
    path = tmp_path / "cangzhou.htm"
    path.write_bytes(html.encode("gbk"))
    doc = load_document(path)
    goals = doc.clause("cangzhou:二、")
    assert goals.text.split("\n")[2:4] == [
        "全市年专利申请量(件) | 2015年: 4026 | 2020年: 6500 | 年均增速: 10%以上 | 预期性",
        "每万人口发明专利拥有量(件/万人) | 2015年: 0.64 | 2020年: 8.0以上 | 年均增速: 65%以上 | 预期性",
    ]
    assert doc.region == ("河北省", "沧州市")


def _corrupt_files(folder: Path) -> dict[str, str]:
    """Bad files of several kinds, with the reason each must be reported for."""
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    (folder / "not-a-pdf.pdf").write_bytes(b"hello, I am text")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 this zip is truncated")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0 old word file")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 40)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b"<" + b"a" * (60 * 1024 * 1024) + b">")
    (folder / "bomb.docx").write_bytes(bomb.getvalue())
    return {"corrupt.pdf": "损坏", "not-a-pdf.pdf": "PDF", "broken.docx": ".docx", "empty.txt": "为空",
            "old.doc": ".docx", "binary.txt": "二进制", "bomb.docx": "压缩炸弹"}


def test_bad_files_are_reported_and_neighbours_load(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ["hubei-2023.txt", "wuhai-2022.txt"]:
        (folder / name).write_bytes((POLICIES / name).read_bytes())
    expected = _corrupt_files(folder)
    report = load_folder(folder)
    assert sorted(d.doc_id for d in report.documents) == ["hubei-2023", "wuhai-2022"]
    reasons = {f.name: f.reason for f in report.failures}
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
    assert "无法导入" in report.summary() and "bomb.docx" in report.summary()


def test_single_bad_file_raises_with_name_and_reason(tmp_path):
    path = tmp_path / "notes.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedDocument) as err:
        load_document(path)
    assert err.value.name == "notes.xlsx"
    assert "不受支持" in err.value.user_message and "notes.xlsx" in err.value.user_message


def test_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("第一条 测试。\n" * 20000, encoding="utf-8")
    with pytest.raises(UnsupportedDocument, match="过大"):
        load_document(path, max_bytes=100_000)


def test_encrypted_pdf_is_refused(tmp_path):
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    _write_pdf(["第一条 测试文本。"], plain)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="secret", owner_password="owner")
    locked = tmp_path / "locked.pdf"
    with open(locked, "wb") as fh:
        writer.write(fh)
    with pytest.raises(UnsupportedDocument, match="加密"):
        load_document(locked)


def test_same_stem_in_two_folders_gets_two_ids(tmp_path):
    for sub in ["a", "b"]:
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "plan.txt").write_bytes((POLICIES / "hubei-2023.txt").read_bytes())
    report = load_folder(tmp_path)
    assert sorted(d.doc_id for d in report.documents) == ["a-plan.txt", "b-plan.txt"]


# --- red-header files: the usual shape of a Chinese government document -------------------------

RED_HEADER_NOTICE = [
    "沧州市市场监督管理局文件", "沧市监知〔2023〕12号", "沧州市市场监督管理局关于印发《沧州市专利资助管理办法》的通知",
    "各县（市、区）市场监督管理局，渤海新区、高新区、经开区市场监督管理局：",
    "现将《沧州市专利资助管理办法》印发给你们，请认真贯彻执行。", "沧州市专利资助管理办法",
    "第一条 为鼓励发明创造，根据有关规定，制定本办法。", "第二条 对授权的发明专利，每件资助5000元。",
    "第三条 本办法自发布之日起施行，有效期三年。", "沧州市市场监督管理局", "2023年5月6日"]
RED_HEADER_PLAN = [
    "乌海市知识产权局文件", "签发人：王某某", "乌知发〔2024〕3号", "乌海市2024年知识产权工作要点", "各旗区知识产权局：",
    "为推动知识产权工作高质量发展，制定本要点。", "一、总体目标", "全年专利授权量达到1200件。", "二、主要任务",
    "（一）加强知识产权保护", "开展专项执法行动。", "乌海市知识产权局", "2024年3月1日"]


def _write_red_header_docx(lines: list[str], path: Path, title: str) -> Path:
    """The letterhead big and red, the title in Word's Title style, the rest plain paragraphs."""
    import docx
    from docx.shared import Pt, RGBColor

    d = docx.Document()
    for line in lines:
        if line == title:
            d.add_heading(line, level=0)
            continue
        run = d.add_paragraph().add_run(line)
        if line.endswith("文件"):
            run.font.size, run.font.color.rgb = Pt(26), RGBColor(0xC0, 0, 0)
    d.save(path)
    return path


@pytest.mark.parametrize("fmt", ["docx", "pdf"])
def test_a_red_header_notice_takes_the_title_of_the_policy_it_issues(tmp_path, fmt):
    path = tmp_path / f"红头文件.{fmt}"
    if fmt == "docx":
        _write_red_header_docx(RED_HEADER_NOTICE, path, "沧州市专利资助管理办法")
    else:
        _write_pdf(RED_HEADER_NOTICE, path)
    doc = load_document(path)
    assert doc.title == "沧州市专利资助管理办法"  # not the letterhead 沧州市市场监督管理局文件
    assert (doc.issuer, doc.doc_number, doc.issued) == ("沧州市市场监督管理局", "沧市监知〔2023〕12号",
                                                        dt.date(2023, 5, 6))
    assert doc.region[-1] == "沧州市" and doc.period == (2023, 2026)  # 有效期三年 from 2023-05-06
    # The notice's title is a line of its own: the PDF joiner used to run it into the 主送 line below.
    assert "沧州市市场监督管理局关于印发《沧州市专利资助管理办法》的通知" in doc.text.split("\n")
    assert [c.number for c in doc.clauses if c.number] == ["第1条", "第2条", "第3条"]
    last_article = next(c for c in reversed(doc.clauses) if c.number)
    assert doc.citation(last_article) == "《沧州市专利资助管理办法》（沧市监知〔2023〕12号）第三条"
    # The signature is a clause of its own, not the last article's words.
    assert "监督管理局" not in last_article.text and "2023年5月6日" not in last_article.text
    signature = doc.clauses[-1]
    assert signature.label == "落款" and signature.text.split() == ["沧州市市场监督管理局", "2023年5月6日"]


def test_a_red_header_plan_takes_the_line_below_its_file_marks(tmp_path):
    doc = load_document(_write_red_header_docx(RED_HEADER_PLAN, tmp_path / "要点.docx", "乌海市2024年知识产权工作要点"))
    assert doc.title == "乌海市2024年知识产权工作要点"
    assert (doc.issuer, doc.doc_number) == ("乌海市知识产权局", "乌知发〔2024〕3号")
    assert doc.region[-1] == "乌海市" and doc.kind == "工作要点"
    assert "二、主要任务" in {c.heading for c in doc.clauses}
    assert doc.clauses[-2].text.strip().endswith("开展专项执法行动。") and doc.clauses[-1].label == "落款"

"""Reading files: bytes on disk → plain text, one reader per format.

Every failure raises ``UnsupportedDocument`` naming the file and the reason in
Chinese. Heavy parsers (pypdf, python-docx, BeautifulSoup) are imported only
when a file of their kind is read.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from corpus.clean import format_table_row
from corpus.errors import InvalidSetting, UnsupportedDocument

FORMATS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html",
           ".htm": "html", ".xhtml": "html", ".pdf": "pdf", ".docx": "docx"}
_HINTS = {".doc": "旧版 Word（.doc）格式不受支持，请另存为 .docx 后再导入",
          ".wps": "WPS 格式不受支持，请另存为 .docx 后再导入",
          ".xls": "表格文件不受支持", ".xlsx": "表格文件不受支持",
          ".ofd": "OFD 版式文件不受支持，请导出为 PDF 后再导入",
          ".rtf": "RTF 格式不受支持，请另存为 .docx 后再导入"}
# Per file; IPQA_MAX_FILE_MB (or --max-file-mb) changes it. A policy is rarely over 2 MB and the
# longest law of the 3,475 in LawRefBook is 313 KB; PDF and .docx files carry images too.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Characters of text once read: ten times the longest law (105,000 characters). A longer text is a
# compilation or a data dump that would hold the index writer for minutes; it is refused at once.
MAX_TEXT_CHARS = 1_000_000
# A .docx is a zip: refuse archives that would inflate far beyond their size.
MAX_UNZIPPED_BYTES = 300 * 1024 * 1024
MAX_ZIP_RATIO = 200


@dataclass(frozen=True)
class RawText:
    text: str
    format: str  # txt md html pdf docx
    content_hash: str
    encoding: str | None = None
    title_hint: str | None = None  # <title> of a page, title of a PDF


def supported_suffixes() -> list[str]:
    return sorted(FORMATS)


def max_file_bytes() -> int:
    """The per-file size limit: IPQA_MAX_FILE_MB (MB, may be fractional) or 20 MB."""
    value = os.environ.get("IPQA_MAX_FILE_MB", "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        mb = float(value)
    except ValueError:
        mb = math.nan
    if not (mb > 0 and math.isfinite(mb)):
        raise InvalidSetting("IPQA_MAX_FILE_MB", value, "应为大于 0 的数字（单位 MB），例如 200")
    return max(1, int(mb * 1024 * 1024))


def _mb(n: int) -> str:
    mb = n / 1048576
    return f"{mb:.1f}" if mb >= 1 else f"{mb:.3g}"


def read_file(path: str | Path, *, max_bytes: int | None = None) -> RawText:
    """Read one file into text. Raises UnsupportedDocument with a Chinese reason.

    ``max_bytes`` defaults to ``max_file_bytes()`` (IPQA_MAX_FILE_MB, else 20 MB); the text read
    may hold at most ``MAX_TEXT_CHARS`` characters."""
    path = Path(path)
    max_bytes = max_bytes or max_file_bytes()
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UnsupportedDocument(path, "文件不存在或不是普通文件")
    size = path.stat().st_size
    if size == 0:
        raise UnsupportedDocument(path, "文件为空")
    if size > max_bytes:
        raise UnsupportedDocument(
            path, f"文件过大（{_mb(size)} MB），上限为 {_mb(max_bytes)} MB"
                  "（可用 --max-file-mb 或环境变量 IPQA_MAX_FILE_MB 调整）")
    if suffix not in FORMATS:
        hint = _HINTS.get(suffix, f"不支持的文件类型「{suffix or '无扩展名'}」")
        raise UnsupportedDocument(path, f"{hint}；支持的类型：{'、'.join(supported_suffixes())}")
    data = path.read_bytes()
    raw = _read_format(data, _sniff(data, FORMATS[suffix], path), path)
    if len(raw.text) > MAX_TEXT_CHARS:
        raise UnsupportedDocument(path, f"文字过多（{len(raw.text) / 10000:.0f} 万字），上限为 {MAX_TEXT_CHARS // 10000} 万字；"
                                        "一部法律或一份政策通常不超过 10 万字，请拆分成单独的文件后再导入")
    return raw


def _read_format(data: bytes, fmt: str, path: Path) -> RawText:
    digest = hashlib.sha256(data).hexdigest()
    if fmt == "pdf":
        text, title = _read_pdf(data, path)
        return RawText(text, "pdf", digest, None, title)
    if fmt == "docx":
        return RawText(_read_docx(data, path), "docx", digest)
    if fmt in ("txt", "md", "html") and len(data) > 4 * MAX_TEXT_CHARS:  # more characters than allowed in any encoding
        raise UnsupportedDocument(path, f"文字过多（文件 {_mb(len(data))} MB），上限为 {MAX_TEXT_CHARS // 10000} 万字；"
                                        "请拆分成单独的文件后再导入")
    text, encoding = decode_text(data, path)
    if fmt == "html":
        body, title = html_to_text(text)
        return RawText(body, "html", digest, encoding, title)
    return RawText(text, fmt, digest, encoding)


def _sniff(data: bytes, declared: str, path: Path) -> str:
    """The real format from the first bytes; a mismatch with the extension is tolerated
    when the content is a format we read, and refused otherwise."""
    head = data[:1024]
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if declared == "docx" or b"word/" in data[:65536]:
            return "docx"
        raise UnsupportedDocument(path, "文件是压缩包而不是文档")
    if declared == "pdf":
        raise UnsupportedDocument(path, "不是有效的 PDF 文件（文件头损坏或扩展名错误）")
    if declared == "docx":
        raise UnsupportedDocument(path, "不是有效的 .docx 文件（文件已损坏或扩展名错误）")
    if declared in ("txt", "md") and re.match(rb"\s*(<!doctype html|<html)", head, re.I):
        return "html"
    return declared


# --- text encodings -------------------------------------------------------------

_BOMS = [(b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")]


def decode_text(data: bytes, path: str | Path = "<bytes>") -> tuple[str, str]:
    """Decode bytes of a text file: BOMs, UTF-8, GB18030 (covers GBK/GB2312), UTF-16, then detection."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as exc:
                raise UnsupportedDocument(path, f"文本编码损坏（{enc}）") from exc
    if b"\x00" in data[:4096]:
        # UTF-16 without BOM: the NUL bytes of its ASCII characters (digits, newlines) all sit on
        # one side of each 2-byte unit; mostly-Chinese text has few of them, binary files scatter them.
        even, odd = data[0:4096:2].count(0), data[1:4096:2].count(0)
        enc = "utf-16-le" if odd > even else "utf-16-be"
        if len(data) % 2 == 0 and min(even, odd) <= 0.25 * max(even, odd):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                text = ""
            if _looks_like_text(text) and _mostly_cjk_or_ascii(text):
                return text, enc
        raise UnsupportedDocument(path, "不是文本文件（含二进制内容）")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
        if _looks_like_text(text):
            return text, "gb18030"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None and _looks_like_text(str(best)):
        return str(best), best.encoding
    raise UnsupportedDocument(path, "无法识别文本编码（支持 UTF-8、GBK/GB18030、UTF-16）")


def _mostly_cjk_or_ascii(text: str) -> bool:
    """Text a Chinese policy could be: ASCII, CJK ideographs and CJK/full-width punctuation."""
    sample = text[:20000]
    ok = sum(1 for ch in sample if ch < "\x7f" or "\u3000" <= ch <= "\u303f" or "\u4e00" <= ch <= "\u9fff"
             or "\uff00" <= ch <= "\uffef" or "\u2010" <= ch <= "\u206f" or "\u3400" <= ch <= "\u4dbf")
    return bool(sample) and ok / len(sample) > 0.9


def _looks_like_text(text: str) -> bool:
    if not text:
        return False
    bad = sum(1 for ch in text[:20000] if (ord(ch) < 32 and ch not in "\n\r\t\f") or 0xE000 <= ord(ch) <= 0xF8FF)
    return bad / min(len(text), 20000) < 0.01


# --- HTML --------------------------------------------------------------------------

_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
               "section", "article", "header", "footer", "blockquote", "pre", "dd", "dt", "dl", "hr",
               "center", "form", "main"}
_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "head", "nav", "aside",
              "button", "select", "input", "textarea", "object", "embed", "canvas"]


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of a page, one block per line; tables become one row per line."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for table in soup.find_all("table"):
        if table.find("table"):
            continue  # layout tables that hold tables: their inner tables are handled
        rows = [[c.get_text(" ", strip=True) for c in tr.find_all(["td", "th"])] for tr in table.find_all("tr")]
        rows = [r for r in rows if any(r)]
        block = soup.new_tag("div")
        for line in table_lines(rows):
            row = soup.new_tag("p")
            row.string = line
            block.append(row)
        table.replace_with(block)
    parts: list[str] = []
    _walk(soup, parts)
    text = "".join(parts)
    return re.sub(r"\n{2,}", "\n", text), title


def _walk(node, parts: list[str]) -> None:
    from bs4 import NavigableString, Tag
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    for child in node.children:
        if isinstance(child, (Comment, Declaration, Doctype, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            # Newlines inside HTML text are only source layout.
            parts.append(re.sub(r"[\r\n\t]+", " ", str(child)))
            continue
        if isinstance(child, Tag):
            block = child.name in _BLOCK_TAGS
            if block:
                parts.append("\n")
            _walk(child, parts)
            if block:
                parts.append("\n")


def table_lines(rows: list[list[str]]) -> list[str]:
    """A table as lines: header cells folded into every row (see clean.format_table_row)."""
    if not rows:
        return []
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    if len(rows) == 1 or width == 1:
        return [" | ".join(c for c in r if c) for r in rows]
    header, body = rows[0], rows[1:]
    return [format_table_row(header, r) for r in body]


# --- PDF ---------------------------------------------------------------------------

_PAGE_NUMBER = re.compile(r"^\s*(?:[-—–]\s*\d+\s*[-—–]|第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?|\d+\s*/\s*\d+|\d{1,4})\s*$")
_HEAD_LINES = 8  # a notice's title is among the first lines of a file
_TITLE_LINE = re.compile(r"关于.+的(?:通知|决定|意见|批复|通报|公告|报告)$")
_PARA_END = re.compile(r"[。！？；：:!?;」”』）)]$")


def _open_pdf(data: bytes, path: Path):
    """A PdfReader, decrypted when it is encrypted without a user password (owner-only protection)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    reader = PdfReader(io.BytesIO(data))
    if not reader.is_encrypted:
        return reader
    try:
        ok = reader.decrypt("")
    except DependencyError as exc:  # AES without the cryptography package
        raise UnsupportedDocument(path, "PDF 使用 AES 加密，缺少解密组件（请安装 cryptography）") from exc
    except NotImplementedError as exc:
        raise UnsupportedDocument(path, f"PDF 使用了不支持的加密方式（{exc}）") from exc
    if not ok:
        raise UnsupportedDocument(path, "PDF 已加密，需要密码才能读取；请先用密码打开并另存为不加密的 PDF")
    return reader


def _read_pdf(data: bytes, path: Path) -> tuple[str, str | None]:
    from pypdf.errors import PyPdfError

    try:
        reader = _open_pdf(data, path)
        pages = [page.extract_text() or "" for page in reader.pages]
        title = None
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip() or None
    except UnsupportedDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise UnsupportedDocument(path, f"PDF 文件已损坏，无法解析（{type(exc).__name__}）") from exc
    text = pdf_pages_to_text(pages)
    if not text.strip():
        raise UnsupportedDocument(path, "PDF 中没有可提取的文字（可能是扫描件，需要先做文字识别）")
    return text, title


def pdf_pages_to_text(pages: list[str]) -> str:
    """Join PDF page texts into paragraphs.

    PDF text comes as visual lines. Running headers/footers (the same line on
    most pages) and page numbers go; a line that ends a paragraph is one that
    ends with closing punctuation or is clearly shorter than a full line.
    """
    page_lines = [[l.strip() for l in p.split("\n") if l.strip()] for p in pages]
    counts: dict[str, int] = {}
    for lines in page_lines:
        for l in set(lines[:2] + lines[-2:]):
            counts[l] = counts.get(l, 0) + 1
    repeated = {l for l, n in counts.items() if len(pages) >= 3 and n >= 0.6 * len(pages)}
    lines = [l for pl in page_lines for l in pl if l not in repeated and not _PAGE_NUMBER.match(l)]
    if not lines:
        return ""
    widths = sorted(len(l) for l in lines)
    full = widths[int(0.9 * (len(widths) - 1))]
    from corpus.structure import find_headings

    paragraphs: list[str] = []
    current = ""
    for i, line in enumerate(lines):
        starts_heading = bool(find_headings(line, articles=False) or find_headings(line, articles=True))
        if current and starts_heading:
            paragraphs.append(current)
            current = ""
        current += line
        if _PARA_END.search(line) or len(line) < 0.8 * full or _is_head_title(current, i):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return "\n".join(paragraphs)


def _is_head_title(paragraph: str, position: int) -> bool:
    """Whether the paragraph so far, ending at line ``position``, is a notice's title near the top of
    the file (沧州市市场监督管理局关于印发《…》的通知): a line of its own, often the longest, so the
    length test would run it into the 主送 line below."""
    return (position < _HEAD_LINES and bool(_TITLE_LINE.search(paragraph))
            and paragraph.count("《") == paragraph.count("》"))


# --- DOCX --------------------------------------------------------------------------


def _check_docx_archive(data: bytes, path: Path) -> None:
    """Refuse a .docx that is no zip, lacks its document part, or inflates past the limits (a zip bomb)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            packed = sum(i.compress_size for i in infos) or 1
            if total > MAX_UNZIPPED_BYTES or total / packed > MAX_ZIP_RATIO:
                raise UnsupportedDocument(path, "文件解压后过大，疑似压缩炸弹，已拒绝")
            if "word/document.xml" not in zf.namelist():
                raise UnsupportedDocument(path, "不是有效的 .docx 文件（缺少 word/document.xml）")
            # The sizes above are what the archive claims. Inflate every member once, a chunk at a
            # time: zipfile stops at the claimed size and a member that holds more fails its CRC, so
            # a lying archive is refused here instead of being inflated whole by python-docx.
            for info in infos:
                try:
                    with zf.open(info) as member:
                        while member.read(1 << 16):
                            pass
                except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                    raise UnsupportedDocument(
                        path, "文件解压后的内容与压缩包记录的大小不符，疑似压缩炸弹或已损坏，已拒绝") from exc
                except NotImplementedError as exc:  # an unusual compression method or encryption
                    raise UnsupportedDocument(path, f".docx 文件使用了不支持的压缩方式（{exc}）") from exc
    except zipfile.BadZipFile as exc:
        raise UnsupportedDocument(path, "不是有效的 .docx 文件（压缩包已损坏）") from exc


def _read_docx(data: bytes, path: Path) -> str:
    _check_docx_archive(data, path)

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UnsupportedDocument(path, f".docx 文件已损坏，无法解析（{type(exc).__name__}）") from exc
    except Exception as exc:  # lxml raises XMLSyntaxError for broken XML parts
        raise UnsupportedDocument(path, f".docx 文件内容损坏（{type(exc).__name__}）") from exc
    numbering = _Numbering(document)
    lines: list[str] = []
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = docx.text.paragraph.Paragraph(child, document)
            text = para.text
            if text.strip():
                lines.append(numbering.prefix(child, para.style) + text)
        elif tag == "tbl":
            table = docx.table.Table(child, document)
            rows = []
            for row in table.rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = " ".join(p.text.strip() for p in cell.paragraphs if p.text.strip())
                    if not cells or cell._tc is not getattr(row.cells[len(cells) - 1], "_tc", None):
                        cells.append(value)
                rows.append(cells)
            lines.extend(table_lines([r for r in rows if any(r)]))
    return "\n".join(lines)


class _Numbering:
    """Automatic list numbers of Word paragraphs ("一、", "（一）", "1.") rebuilt as text.

    Word stores "1." of a numbered list in numbering.xml, not in the paragraph;
    without it a policy's headings would vanish.
    """

    _FORMATS = {"decimal", "chineseCounting", "chineseCountingThousand", "ideographTraditional",
                "decimalEnclosedCircle", "decimalEnclosedCircleChinese", "decimalFullWidth",
                "lowerLetter", "upperLetter", "japaneseCounting"}

    def __init__(self, document) -> None:
        self.levels: dict[tuple[str, int], tuple[str, str, int]] = {}  # (numId, ilvl) -> (fmt, text, start)
        self.counters: dict[str, list[int]] = {}
        try:
            part = document.part.numbering_part
        except (NotImplementedError, KeyError, AttributeError):
            return
        ns = {"w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main"}
        root = part.element
        w = "{%s}" % ns["w"]
        abstract: dict[str, dict[int, tuple[str, str, int]]] = {}
        for an in root.findall("w:abstractNum", ns):
            lv: dict[int, tuple[str, str, int]] = {}
            for lvl in an.findall("w:lvl", ns):
                ilvl = int(lvl.get(w + "ilvl", "0"))
                fmt = lvl.find("w:numFmt", ns)
                txt = lvl.find("w:lvlText", ns)
                start = lvl.find("w:start", ns)
                lv[ilvl] = (fmt.get(w + "val") if fmt is not None else "decimal",
                            txt.get(w + "val") if txt is not None else "",
                            int(start.get(w + "val")) if start is not None else 1)
            abstract[an.get(w + "abstractNumId")] = lv
        for num in root.findall("w:num", ns):
            ref = num.find("w:abstractNumId", ns)
            if ref is None:
                continue
            for ilvl, spec in abstract.get(ref.get(w + "val"), {}).items():
                self.levels[(num.get(w + "numId"), ilvl)] = spec

    def prefix(self, p, style=None) -> str:
        """The list number Word would draw before paragraph ``p`` ("" if none)."""
        from corpus.numerals import int_to_cn

        w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
        num_pr = p.find(f"{w}pPr/{w}numPr")
        # List styles ("List Number") carry the numbering in the style, not the paragraph.
        while num_pr is None and style is not None:
            num_pr = style.element.find(f"{w}pPr/{w}numPr")
            style = style.base_style
        if num_pr is None or not self.levels:
            return ""
        num_id_el, ilvl_el = num_pr.find(w + "numId"), num_pr.find(w + "ilvl")
        num_id = num_id_el.get(w + "val") if num_id_el is not None else None
        ilvl = int(ilvl_el.get(w + "val")) if ilvl_el is not None else 0
        spec = self.levels.get((num_id, ilvl))
        if spec is None or spec[0] not in self._FORMATS:
            return ""
        counters = self.counters.setdefault(num_id, [0] * 9)
        counters[ilvl] = counters[ilvl] + 1 if counters[ilvl] else spec[2]
        for deeper in range(ilvl + 1, 9):
            counters[deeper] = 0

        def render(level: int) -> str:
            fmt = self.levels.get((num_id, level), ("decimal", "", 1))[0]
            n = counters[level] or 1
            if fmt in ("chineseCounting", "chineseCountingThousand", "ideographTraditional", "japaneseCounting"):
                return int_to_cn(n)
            if fmt.startswith("decimalEnclosedCircle") and n <= 20:
                return "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"[n - 1]
            if fmt in ("lowerLetter", "upperLetter"):
                letter = chr(ord("a") + (n - 1) % 26)
                return letter.upper() if fmt == "upperLetter" else letter
            return str(n)

        return re.sub(r"%(\d)", lambda m: render(int(m.group(1)) - 1), spec[1])

"""From a file (or a folder of files) to ``Document`` records."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from corpus.clean import clean_text, parse_date
from corpus.errors import UnsupportedDocument
from corpus.loaders import RawText, max_file_bytes, read_file
from corpus.metadata import extract_metadata
from corpus.structure import build_clauses, is_article_structured
from corpus.types import Document

log = logging.getLogger(__name__)

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n?", re.S)
_LAWREFBOOK_MARK = "<!-- INFO END -->"


def make_doc_id(path: str | Path) -> str:
    """A stable id from the file name: its stem, with spaces and path-unsafe characters replaced."""
    stem = Path(path).stem.strip()
    stem = re.sub(r"\s+", "_", stem)
    stem = re.sub(r'[\\/:*?"<>|#]', "-", stem)
    return stem or "document"


def _version_date(stem: str):
    m = re.search(r"[(（](\d{4}-\d{2}-\d{2})[)）]$", stem)
    return parse_date(m.group(1)) if m else None


def document_from_text(raw: RawText, *, path: str | Path, doc_id: str | None = None,
                       collection: str = "", folder_hints: tuple[str, ...] = ()) -> Document:
    """Clean, describe and structure already-extracted text."""
    text = _FRONT_MATTER.sub("", raw.text)
    curated_law = raw.format == "md" and _LAWREFBOOK_MARK in text
    cleaned = clean_text(text, web_page=not curated_law)
    if not cleaned.text.strip():
        raise UnsupportedDocument(path, "文件没有可读取的正文")
    lines = cleaned.text.split("\n")
    articles = is_article_structured(lines)
    meta = extract_metadata(cleaned.text, articles=articles, published=cleaned.published,
                            title_hint=raw.title_hint or Path(path).stem, folder_hints=folder_hints,
                            version_hint=_version_date(Path(path).stem), law_source=curated_law)
    doc_id = doc_id or make_doc_id(path)
    clauses = build_clauses(doc_id, cleaned.text, title=meta.title, articles=articles)
    notes = list(cleaned.notes)
    if raw.encoding and raw.encoding not in ("utf-8", "utf-8-sig"):
        notes.append(f"按 {raw.encoding.upper()} 编码读取")
    return Document(
        doc_id=doc_id, title=meta.title, text=cleaned.text, clauses=clauses, kind=meta.kind,
        issuer=meta.issuer, doc_number=meta.doc_number, issued=meta.issued, region=meta.region,
        region_aliases=meta.region_aliases, period=meta.period, revisions=meta.revisions,
        collection=collection, source_path=str(path), source_format=raw.format,
        content_hash=raw.content_hash, notes=tuple(notes),
    )


def load_document(path: str | Path, *, doc_id: str | None = None, collection: str = "",
                  max_bytes: int | None = None) -> Document:
    """Load one file. Raises ``UnsupportedDocument`` (file name + Chinese reason) on any failure."""
    path = Path(path)
    # Collections such as LawRefBook file texts by category (行政法规/, 司法解释/ …).
    folder_hints = tuple(p.name for p in path.resolve().parents)[:4]
    try:
        raw = read_file(path, max_bytes=max_bytes)
        return document_from_text(raw, path=path, doc_id=doc_id, collection=collection, folder_hints=folder_hints)
    except UnsupportedDocument:
        raise
    except MemoryError as exc:
        raise UnsupportedDocument(path, "文件太大，内存不足以读取") from exc
    except Exception as exc:  # a reader or parser bug on one odd file must not stop the others
        log.exception("failed to read %s", path)
        raise UnsupportedDocument(path, f"无法读取或解析（{type(exc).__name__}）") from exc


@dataclass
class LoadReport:
    """Result of loading a folder: the documents, and every file that failed with its reason."""

    documents: list[Document] = field(default_factory=list)
    failures: list[UnsupportedDocument] = field(default_factory=list)

    def summary(self) -> str:
        text = f"已加载 {len(self.documents)} 个文件"
        if self.failures:
            text += f"，{len(self.failures)} 个文件无法导入：\n" + "\n".join(
                f"  - {f.name}：{f.reason}" for f in self.failures)
        return text


def list_files(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Candidate files of a folder in a stable order (hidden files and Hugo section indexes skipped)."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    files = []
    for p in sorted(folder.glob(pattern)):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.name == "_index.md":  # Hugo/LawRefBook section index: front matter only
            continue
        files.append(p)
    return files


def load_one(args: tuple[Path, str, str, int | None]) -> Document | UnsupportedDocument:
    path, doc_id, collection, max_bytes = args
    try:
        return load_document(path, doc_id=doc_id, collection=collection, max_bytes=max_bytes)
    except UnsupportedDocument as exc:
        return exc


def load_folder(folder: str | Path, *, collection: str = "", recursive: bool = True,
                max_bytes: int | None = None, workers: int | None = None) -> LoadReport:
    """Load every file of a folder; a bad file is reported and the others still load.

    Files with unsupported extensions are reported too, so a user sees why a
    file is missing. ``workers`` > 1 parses in parallel processes (worth it for
    hundreds of files).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UnsupportedDocument(folder, "文件夹不存在")
    max_bytes = max_bytes or max_file_bytes()  # a bad IPQA_MAX_FILE_MB stops here, before any file
    files = list_files(folder, recursive=recursive)
    ids = _unique_ids(files, folder)
    jobs = [(p, ids[p], collection, max_bytes) for p in files]
    if workers is None:
        workers = 1 if len(jobs) < 200 else min(4, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(load_one, jobs, chunksize=16))
    else:
        results = [load_one(j) for j in jobs]
    report = LoadReport()
    for result in results:
        if isinstance(result, Document):
            report.documents.append(result)
        else:
            log.warning("skipped %s", result)
            report.failures.append(result)
    return report


def _unique_ids(files: list[Path], folder: Path) -> dict[Path, str]:
    """doc ids from file stems; where stems clash, the relative folder and extension are added."""
    counts = Counter(make_doc_id(p) for p in files)
    ids: dict[Path, str] = {}
    used: set[str] = set()
    for p in files:
        doc_id = make_doc_id(p)
        if counts[doc_id] > 1:
            parts = [make_doc_id(x) for x in p.relative_to(folder).parent.parts]
            doc_id = "-".join(parts + [f"{doc_id}.{p.suffix.lstrip('.').lower()}"])
        candidate, n = doc_id, 1
        while candidate in used:
            n += 1
            candidate = f"{doc_id}~{n}"
        used.add(candidate)
        ids[p] = candidate
    return ids

"""What the web app does, without the web: one open assistant shared by every session,
index changes that swap it atomically, uploads, feedback and eval runs.

Handlers call this; it calls only the ``assistant`` and ``eval`` public APIs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant import (Filters, IndexNotBuilt, IndexReembedded, UnsupportedDocument, add_documents, index_location,
                       index_sources, location_label, open_index, read_file, remove_documents)
from assistant.indexing import ALL_BUNDLED
from assistant.records import answer_json
from assistant.service import Assistant
from corpus.types import Answer, Document, Hit

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".ipqa")  # uploads, exports and feedback of an app on a shared database

UPLOAD_TYPES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
# The app's own temporary upload folder (Gradio's): files not added are deleted after an hour, and the
# oldest go first once the folder holds more than this.
TEMP_MAX_AGE = 3600.0
TEMP_MAX_BYTES = 512 * 1024 * 1024
APP_DATASETS = ("policies_qa", "laws_qa")  # asked over the app's own knowledge base (STARD needs its own index)
_UNSAFE = re.compile(r"[^\w\u3400-\u9fff（）()《》\-. ]+")


def safe_file_name(name: str) -> str:
    """A file name that stays inside the uploads folder: no directories, no dot files,
    only word characters, CJK and a few punctuation marks."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", base)
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = ext.strip(" ")[:10]
    stem = stem[:80]
    while len(stem.encode("utf-8")) > 200:  # file systems allow 255 bytes; some \w letters take 4
        stem = stem[:-1]
    stem = stem.strip(" .") or "upload"
    return f"{stem}.{ext.lower()}" if ext else stem


@dataclass
class Preview:
    """What an upload would add: the parsed document, or why it cannot be read."""

    name: str
    document: Document | None = None
    error: str | None = None
    duplicate_of: str | None = None  # doc_id of an indexed document with the same content


@dataclass
class Changed:
    """The outcome of adding or removing documents, for the page."""

    message: str
    ok: bool
    added: list[str] = field(default_factory=list)  # added or updated
    updated: list[str] = field(default_factory=list)  # of those, the ones that replaced a document
    removed: list[str] = field(default_factory=list)


class Backend:
    """The app's state: the index directory, the open assistant, and the app's own folders."""

    def __init__(self, index_dir: str | Path | None = None, *, data_dir: str | Path | None = None,
                 assistant: Assistant | None = None):
        self.index_dir = index_location(index_dir)  # a folder, or a shared PostgreSQL database's URL
        self.data_dir = Path(data_dir) if data_dir else (
            self.index_dir.parent if isinstance(self.index_dir, Path) else DEFAULT_DATA_DIR)
        self.uploads_dir = self.data_dir / "uploads"
        self.temp_dir = self.data_dir / "tmp"  # this app's own Gradio upload folder (GRADIO_TEMP_DIR)
        self.exports_dir = self.data_dir / "exports"
        self.feedback_file = self.data_dir / "feedback.jsonl"
        self._assistant = assistant
        self._reload_lock = threading.Lock()
        self._feedback_lock = threading.Lock()
        self._eval_lock = threading.Lock()

    # --- start-up ---

    @classmethod
    def start(cls, index_dir: str | Path | None = None, *, data_dir: str | Path | None = None,
              progress: bool = True, warm_up: bool = True) -> "Backend":
        """Open the index (building it over the bundled knowledge base on first run) and load the model."""
        backend = cls(index_dir, data_dir=data_dir)
        try:
            assistant = Assistant.open(backend.index_dir)
        except IndexNotBuilt:
            log.info("no index in %s yet: building it over the bundled knowledge base", location_label(backend.index_dir))
            if progress:
                print(f"首次运行：正在为内置知识库建立索引（{location_label(backend.index_dir)}），约需一分钟……", flush=True)
            report = index_sources(backend.index_dir, progress=progress)
            if progress:
                print(report.summary(), flush=True)
            assistant = Assistant.open(backend.index_dir)
        backend._assistant = assistant
        if warm_up:
            assistant.warm_up()
        return backend

    @property
    def assistant(self) -> Assistant:
        """The open assistant; reopened first when another process (``ipqa docs add``, another app
        server on the same database) changed the knowledge base."""
        if self._assistant is None:
            raise RuntimeError("Backend not started")
        if self._assistant.index.is_stale():
            log.info("%s changed elsewhere: reopening it", self._assistant.index.location)
            self._reload()
        return self._assistant

    def _reload(self) -> None:
        """Open the index again after a change and swap it in; requests under way keep the old one."""
        with self._reload_lock:
            old = self._assistant
            index = open_index(self.index_dir, embedder=old.index.embedder)
            self._assistant = Assistant(index, retrieval=old.retrieval, abstain=old.abstain_settings,
                                        llm=old.llm.settings if old.llm else None)
        # The old catalog is not closed here: a request may still be reading it; it closes when collected.

    # --- asking and searching ---

    def ask(self, question: str, history: Sequence[dict] = (), filters: Filters | None = None) -> Answer:
        return self._reopening(lambda a: a.ask(question, history, filters=filters))

    def ask_stream(self, question: str, history: Sequence[dict] = (),
                   filters: Filters | None = None) -> Iterator[tuple[str, Answer | None]]:
        try:
            yield from self.assistant.ask_stream(question, history, filters=filters)
        except IndexReembedded:  # raised before the first piece: nothing was shown yet
            self._reload()
            yield from self.assistant.ask_stream(question, history, filters=filters)

    def search(self, query: str, *, filters: Filters | None = None, mode: str = "hybrid", k: int = 20) -> list[Hit]:
        return self._reopening(lambda a: a.search(query, k=k, mode=mode, filters=filters))

    def _reopening(self, call):
        """``call(assistant)``, once more after reopening when another process re-embedded the
        knowledge base within the last second (before this server noticed the new version)."""
        try:
            return call(self.assistant)
        except IndexReembedded:
            self._reload()
            return call(self.assistant)

    # --- documents ---

    def documents(self):
        """Uploaded documents first (a new one is in sight at the top), then the bundled policies and laws."""
        return sorted(self.assistant.index.documents(), key=lambda d: (d.collection != "uploads",
                                                                       d.collection != "policies", d.collection,
                                                                       d.doc_id))

    def document(self, doc_id: str) -> Document | None:
        return self.assistant.index.document(doc_id)

    def doc_info(self, doc_id: str):
        try:
            return self.assistant.index.doc_info(doc_id)
        except KeyError:
            return None

    def places(self) -> list[str]:
        """Region names a user can filter by, most specific last in each chain, without repeats."""
        seen: list[str] = []
        for d in self.documents():
            for name in d.region:
                if name not in seen:
                    seen.append(name)
        return seen

    def kinds(self) -> list[str]:
        return sorted({d.kind for d in self.documents() if d.kind})

    def preview(self, paths: Sequence[str | Path]) -> list[Preview]:
        """Parse uploaded files without indexing them."""
        self.prune_temp()
        by_hash = {d.content_hash: d.doc_id for d in self.documents()}
        out = []
        for path in paths:
            name = Path(path).name
            try:
                doc = self._read_upload(Path(path))
            except UnsupportedDocument as exc:
                out.append(Preview(name=name, error=exc.user_message))
                continue
            out.append(Preview(name=name, document=doc, duplicate_of=by_hash.get(doc.content_hash)))
        return out

    def _read_upload(self, path: Path) -> Document:
        """The document an upload becomes, with the id and source path of its copy in the uploads folder."""
        if path.suffix.lower() not in UPLOAD_TYPES:
            raise UnsupportedDocument(path, f"不支持的文件类型（支持 {' '.join(UPLOAD_TYPES)}）")
        target = self.uploads_dir / safe_file_name(path.name)
        if target.resolve().parent != self.uploads_dir.resolve():  # belt and braces
            raise UnsupportedDocument(path, "文件名不合法")
        return replace(read_file(path, stored_as=target), source_path=str(target))

    def add(self, paths: Sequence[str | Path], on_progress: Callable[[int, int], None] | None = None) -> Changed:
        """Add uploaded files to the index (a file with an indexed name replaces that document).

        Only the files that became documents are kept (copied into the uploads folder); the
        uploaded copies in the app's temporary folder are deleted either way."""
        if not paths:
            return Changed("请先选择要上传的文件。", ok=False)
        paths = [Path(p) for p in paths]
        read, errors = {}, []  # doc_id -> (upload, document)
        try:
            for p in paths:
                try:
                    doc = self._read_upload(p)
                except UnsupportedDocument as exc:
                    errors.append(exc.user_message)
                    continue
                read[doc.doc_id] = (p, doc)
            report = add_documents([doc for _, doc in read.values()], self.index_dir,
                                   on_progress=on_progress) if read else None
            kept = (report.added + report.updated) if report else []
            for doc_id in kept:
                self._keep(*read[doc_id])
        finally:
            self._discard(paths)
        if kept:
            self._reload()
        return self._changed(report, errors)

    def _changed(self, report, errors: list[str]) -> Changed:
        lines = []
        if report:
            lines += [f"已加入：{d}" for d in report.added] + [f"已更新：{d}" for d in report.updated]
            lines += [f"未重复导入：{skipped} 与已有文档 {kept} 内容相同" for skipped, kept in report.duplicates]
            lines += [f.user_message for f in report.failures]
            lines += [f"内容未变：{d}" for d in report.unchanged]
        lines += errors
        ok = bool(report and (report.added or report.updated)) and not errors and not (report and report.failures)
        return Changed("\n".join(lines) or "没有可导入的文件。", ok=ok,
                       added=(report.added + report.updated) if report else [],
                       updated=list(report.updated) if report else [])

    def _keep(self, upload: Path, doc: Document) -> None:
        """Copy an added upload to where its document says it is stored."""
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(upload, doc.source_path)

    def _discard(self, paths: Sequence[Path]) -> None:
        """Delete uploads that sit in the app's temporary folder (and their emptied folders)."""
        temp = self.temp_dir.resolve()
        for p in paths:
            p = p.resolve()
            if p.is_relative_to(temp) and p.is_file():
                p.unlink(missing_ok=True)
                if p.parent != temp and not any(p.parent.iterdir()):
                    p.parent.rmdir()

    def prune_temp(self, *, max_age: float = TEMP_MAX_AGE, max_bytes: int = TEMP_MAX_BYTES) -> int:
        """Bound the app's temporary folder: delete files older than ``max_age`` seconds, then the
        oldest until it holds at most ``max_bytes``. Returns the number of files deleted."""
        if not self.temp_dir.is_dir():
            return 0
        files = []
        for p in self.temp_dir.rglob("*"):
            try:
                if p.is_file():
                    st = p.stat()
                    files.append((st.st_mtime, st.st_size, p))
            except OSError:
                continue
        total, now, deleted = sum(f[1] for f in files), time.time(), 0
        for mtime, size, p in sorted(files):
            if now - mtime <= max_age and total <= max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size
            deleted += 1
        for d in sorted((d for d in self.temp_dir.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            if not any(d.iterdir()):
                d.rmdir()
        if deleted:
            log.info("deleted %d old uploads from %s", deleted, self.temp_dir)
        return deleted

    def remove(self, doc_ids: Sequence[str]) -> Changed:
        doc_ids = [d for d in doc_ids if d]
        if not doc_ids:
            return Changed("请先选择要删除的文档。", ok=False)
        unknown = [d for d in doc_ids if self.doc_info(d) is None]
        if unknown:
            return Changed(f"知识库中没有文档：{'、'.join(unknown)}", ok=False)
        report = remove_documents(doc_ids, self.index_dir)
        self._reload()
        return Changed("\n".join(f"已删除：{d}" for d in report.removed) or "没有删除任何文档。",
                       ok=bool(report.removed), removed=list(report.removed))

    def removal_plan(self, doc_ids: Sequence[str]) -> str:
        """What removing ``doc_ids`` takes out, in Chinese, to confirm before it is done."""
        infos = [i for i in (self.doc_info(d) for d in doc_ids if d) if i is not None]
        if not infos:
            return ""
        lines = [f"将从知识库中删除以下 {len(infos)} 个文件："]
        lines += [f"·《{i.title}》（{i.doc_id}，{i.clauses} 个条款）" for i in infos]
        bundled = [i for i in infos if i.origin in {f"collection:{c}" for c in ALL_BUNDLED}]
        if bundled:
            lines.append(f"其中 {len(bundled)} 个是内置文件：删除后可随时用「恢复内置文件」找回。")
        uploaded = len(infos) - len(bundled)
        if uploaded:
            lines.append(f"其余 {uploaded} 个删除后需重新上传才能找回。" if bundled else "删除后需重新上传才能找回。")
        return "\n".join(lines)

    def restore_bundled(self) -> Changed:
        """Put back the bundled documents that were removed (only they are embedded again)."""
        before = {d.doc_id for d in self.documents()}
        report = index_sources(self.index_dir)
        self._reload()
        back = [d for d in report.added if d not in before]
        if not back:
            return Changed("内置文件都在知识库中，无需恢复。", ok=True)
        return Changed("\n".join(f"已恢复：{d}" for d in back), ok=True, added=back)

    # --- feedback ---

    def record_feedback(self, rating: str, question: str, answer: Answer | dict, *, history: Sequence[dict] = ()) -> dict:
        """Append one rated exchange to feedback.jsonl; returns the record written."""
        if isinstance(answer, Answer):
            answer = answer_json(answer, hits=0)
        record = {"time": dt.datetime.now().isoformat(timespec="seconds"), "rating": rating, "question": question,
                  "history": list(history), **{k: answer.get(k) for k in
                                               ("rewritten_query", "answer", "abstained", "citations")}}
        line = json.dumps(record, ensure_ascii=False)
        with self._feedback_lock:
            self.feedback_file.parent.mkdir(parents=True, exist_ok=True)
            with self.feedback_file.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        return record

    # --- eval ---

    def evaluate(self, datasets: Sequence[str], *, baselines: bool = False):
        """Run eval datasets against the open index (one run at a time)."""
        from eval.api import evaluate

        if not self._eval_lock.acquire(blocking=False):
            raise RuntimeError("另一项评测正在运行，请稍后再试")
        try:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            datasets = list(datasets) or list(APP_DATASETS)
            return evaluate(datasets, modes=("hybrid",), index=self.assistant.index,
                            out_dir=self.data_dir / "eval" / stamp, progress=False, baselines=baselines)
        finally:
            self._eval_lock.release()

    def export_path(self, prefix: str, suffix: str, content: str) -> Path:
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(content.encode("utf-8")).hexdigest()[:8]
        path = self.exports_dir / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}-{digest}{suffix}"
        path.write_text(content, encoding="utf-8-sig")  # BOM: Excel opens Chinese CSV correctly
        return path


__all__ = ["Backend", "Changed", "Preview", "UPLOAD_TYPES", "safe_file_name"]

"""Faults: a damaged index is refused at start-up, and a writer killed (SIGKILL) in the middle
of a change leaves the previous index intact for the next run to finish the job.

Indexes here are built with the deterministic ``HashEmbedder`` (``IPQA_EMBEDDER=hash`` for the
CLI) over the five bundled policies copied to a temporary folder; the kills are real SIGKILLs
of ``python -m assistant.cli`` processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assistant import index_sources
from corpus import load_document
from corpus.errors import IndexDamaged, IndexMismatch, IpqaError
from index.core import KnowledgeIndex, update_index
from index.embedders import HashEmbedder
from tests.conftest import LAWS, POLICIES, ROOT

QUESTION = "知识产权质押融资风险补偿基金"
TOP_CLAUSE = "jingmen-hitech-2023:四、/(二)/9."
NEW_LAW = LAWS / "专利法实施细则(2023-12-11).md"
NEW_DOC = "专利法实施细则(2023-12-11)"
ENV = dict(os.environ, IPQA_EMBEDDER="hash")


def ipqa(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def corpus_copy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in POLICIES.glob("*.txt"):
        shutil.copy(path, folder)
    return folder


def search(index_dir: Path, query: str = QUESTION) -> list[tuple[str, float]]:
    ix = KnowledgeIndex.open(index_dir, embedder=HashEmbedder())
    try:
        return [(h.chunk.chunk_id, round(h.score, 9)) for h in ix.search(query, 5)]
    finally:
        ix.close()


def doc_ids(index_dir: Path) -> set[str]:
    ix = KnowledgeIndex.open(index_dir, embedder=HashEmbedder())
    try:
        return {d.doc_id for d in ix.documents()}
    finally:
        ix.close()


def leftovers(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.parent.iterdir()
                  if p.name.startswith(index_dir.name + ".tmp-") or p.name == index_dir.name + ".old")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """An index over a folder of the five policies, built once; tests damage copies of it."""
    base = tmp_path_factory.mktemp("faults")
    index_dir = base / "index"
    index_sources(index_dir, collections=[], folders=[corpus_copy(base / "corpus")], embedder="hash")
    return index_dir


@pytest.fixture()
def index_copy(pristine, tmp_path) -> Path:
    index_dir = tmp_path / "index"
    shutil.copytree(pristine, index_dir)
    return index_dir


def truncate(path: Path, fraction: float = 0.5) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(int(path.stat().st_size * fraction))


def overwrite_middle(path: Path, size: int = 4096) -> None:
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\xa5" * size)


# --- damaged files -----------------------------------------------------------------------


DAMAGES = {
    "truncated-faiss": ("vectors.faiss", truncate),
    "corrupt-sqlite": ("store.sqlite", overwrite_middle),
    "half-sqlite": ("store.sqlite", truncate),
    "damaged-bm25": ("bm25/bm25s/data.csc.index.npy", overwrite_middle),
}


def test_the_pristine_index_opens_and_records_digests(pristine):
    manifest = json.loads((pristine / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["files"]
    assert {"store.sqlite", "vectors.faiss", "bm25/ids.npy", "bm25/tokens.jsonl",
            "bm25/bm25s/data.csc.index.npy"} <= set(files)
    for rel, info in files.items():
        assert (pristine / rel).stat().st_size == info["size"] and len(info["sha256"]) == 64
    assert search(pristine)[0][0].startswith(TOP_CLAUSE)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_file_is_refused_on_open(pristine, index_copy, damage):
    file, harm = DAMAGES[damage]
    harm(index_copy / file)
    with pytest.raises(IndexDamaged) as err:
        KnowledgeIndex.open(index_copy, embedder=HashEmbedder())
    exc = err.value
    assert isinstance(exc, IndexMismatch) and isinstance(exc, IpqaError)
    assert exc.file == file
    message = exc.user_message
    assert f"索引文件「{file}」已损坏" in message
    # The command rebuilds the same sources with the same embedder.
    assert message.endswith(f"请运行：ipqa index --rebuild --index-dir {index_copy} "
                            f"--corpus {pristine.parent / 'corpus'} --embedder hash-bigram-256")
    # An update refuses it too instead of building on it (or calling it unchanged).
    with pytest.raises(IndexDamaged):
        update_index(index_copy, add=[(load_document(NEW_LAW), "added")], embedder=HashEmbedder())
    assert not leftovers(index_copy)


def test_the_rebuild_command_in_the_message_repairs_the_index(index_copy):
    truncate(index_copy / "vectors.faiss")
    with pytest.raises(IndexDamaged) as err:
        KnowledgeIndex.open(index_copy, embedder=HashEmbedder())
    command = shlex.split(err.value.command)
    assert command[:3] == ["ipqa", "index", "--rebuild"]
    rebuilt = ipqa(*command[1:], "--quiet")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "新增 5 个文档" in rebuilt.stdout
    assert search(index_copy)[0][0].startswith(TOP_CLAUSE)


def test_the_message_names_files_a_rebuild_does_not_bring_back(index_copy):
    update_index(index_copy, add=[(load_document(NEW_LAW), "added")], embedder=HashEmbedder())
    overwrite_middle(index_copy / "bm25" / "tokens.jsonl")
    with pytest.raises(IndexDamaged) as err:
        KnowledgeIndex.open(index_copy, embedder=HashEmbedder())
    assert err.value.file == "bm25/tokens.jsonl"
    assert err.value.user_message.endswith("另有 1 个文件是用 ipqa docs add 单独加入的，重建后请重新加入")


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_cli_search_refuses_a_damaged_index(index_copy, damage):
    file, harm = DAMAGES[damage]
    harm(index_copy / file)
    result = ipqa("search", QUESTION, "--index-dir", str(index_copy), "--json")
    assert result.returncode == 2
    assert result.stdout == ""  # no hits printed from the damaged index
    assert f"错误：索引无法使用：索引文件「{file}」已损坏" in result.stderr
    assert f"ipqa index --rebuild --index-dir {index_copy}" in result.stderr


@pytest.mark.parametrize("command", [("ask", QUESTION), ("serve", "--port", "0", "--quiet")])
def test_ask_and_serve_refuse_a_damaged_index(index_copy, tmp_path, command):
    truncate(index_copy / "vectors.faiss")
    result = ipqa(*command, "--index-dir", str(index_copy), *(("--data-dir", str(tmp_path / "data"))
                                                                 if command[0] == "serve" else ()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "索引文件「vectors.faiss」已损坏" in result.stderr and "--rebuild" in result.stderr
    assert "已就绪" not in result.stdout


def test_index_written_without_digests_still_opens_and_gets_them_on_update(index_copy):
    manifest_path = index_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["files"]  # as written before digests were recorded
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    assert search(index_copy)[0][0].startswith(TOP_CLAUSE)
    update_index(index_copy, add=[(load_document(NEW_LAW), "added")], embedder=HashEmbedder())
    assert "files" in json.loads(manifest_path.read_text(encoding="utf-8"))
    assert NEW_DOC in doc_ids(index_copy)


@pytest.mark.parametrize("file, harm", [("vectors.faiss", truncate), ("store.sqlite", overwrite_middle),
                                        ("bm25/ids.npy", truncate)])
def test_index_without_digests_still_refuses_unreadable_files(index_copy, file, harm):
    """Without digests the loaders' own errors (faiss, SQLite quick_check, numpy) are caught."""
    manifest_path = index_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["files"]
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    harm(index_copy / file)
    with pytest.raises(IndexDamaged) as err:
        KnowledgeIndex.open(index_copy, embedder=HashEmbedder())
    assert err.value.file == ("bm25/" if file.startswith("bm25/") else file)
    assert "--rebuild" in err.value.user_message


def test_verification_cost_on_a_40mb_index(index_copy):
    """Opening checks every file's sha256: well under 0.5 s for a 40 MB index."""
    import numpy as np

    from index.core import file_digests, verify_files
    from index.stores import FaissStore

    store = FaissStore.load(index_copy)
    rng = np.random.default_rng(0)
    extra = 40_000_000 // (4 * store.dim) - len(store)
    vectors = rng.standard_normal((extra, store.dim)).astype(np.float32)
    store.add(np.arange(10**6, 10**6 + extra), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    store.save(index_copy)
    manifest_path = index_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["files"] = file_digests(index_copy)
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    total = sum(info["size"] for info in manifest["files"].values())
    assert total > 40_000_000
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        assert verify_files(manifest, index_copy)
        timings.append(time.perf_counter() - started)
    print(f"verify {total / 1e6:.1f} MB: best {min(timings) * 1000:.0f} ms")
    assert min(timings) < 0.5


# --- killed writers ------------------------------------------------------------------------


def _lock_is_free(index_dir: Path) -> bool:
    with open(index_dir.parent / f".{index_dir.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


def _kill_while_staging(args: list[str], index_dir: Path, *, after: float = 0.0) -> Path:
    """Start ``ipqa *args``, SIGKILL it ``after`` seconds once its staging copy exists; the copy's path."""
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged = index_dir.with_name(f"{index_dir.name}.tmp-{proc.pid}")
    deadline = time.monotonic() + 120
    while not staged.exists():
        assert proc.poll() is None, "the command ended before it started writing"
        assert time.monotonic() < deadline, "no staging copy appeared"
        time.sleep(0.002)
    time.sleep(after)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the command finished before it was killed"
    return staged


def test_sigkill_during_ipqa_index_keeps_the_old_index_and_the_next_run_finishes(tmp_path):
    corpus, index_dir = corpus_copy(tmp_path / "corpus"), tmp_path / "index"
    built = ipqa("index", "--corpus", str(corpus), "--index-dir", str(index_dir), "--quiet")
    assert built.returncode == 0, built.stderr
    before, manifest_before = search(index_dir), (index_dir / "manifest.json").read_bytes()
    assert before[0][0].startswith(TOP_CLAUSE)

    shutil.copy(NEW_LAW, corpus)
    staged = _kill_while_staging(["index", "--corpus", str(corpus), "--index-dir", str(index_dir), "--quiet"],
                                 index_dir)
    assert staged.exists()  # the killed writer's copy is left behind ...
    assert _lock_is_free(index_dir)  # ... but not its lock
    assert (index_dir / "manifest.json").read_bytes() == manifest_before
    assert search(index_dir) == before  # the old index answers exactly as before
    assert NEW_DOC not in doc_ids(index_dir)

    again = ipqa("index", "--corpus", str(corpus), "--index-dir", str(index_dir), "--quiet", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "新增 1 个文档" in again.stdout and "未变 5 个" in again.stdout
    assert NEW_DOC in doc_ids(index_dir)
    assert search(index_dir, "专利法实施细则 国务院专利行政部门")[0][0].startswith(NEW_DOC)
    assert search(index_dir)[0][0].startswith(TOP_CLAUSE)
    assert not leftovers(index_dir)


def test_sigkill_during_docs_add_keeps_the_old_index_and_the_next_run_finishes(tmp_path):
    corpus, index_dir = corpus_copy(tmp_path / "corpus"), tmp_path / "index"
    index_sources(index_dir, collections=[], folders=[corpus], embedder="hash")
    before = search(index_dir)

    # Killed a little later than the index test: past the copy, while chunking and tokenising.
    staged = _kill_while_staging(["docs", "add", str(NEW_LAW), "--index-dir", str(index_dir), "--quiet"],
                                 index_dir, after=0.2)
    assert staged.exists() and _lock_is_free(index_dir)
    assert search(index_dir) == before
    assert NEW_DOC not in doc_ids(index_dir)
    cli = ipqa("search", QUESTION, "--index-dir", str(index_dir), "--json")
    assert cli.returncode == 0 and json.loads(cli.stdout)["hits"][0]["clause_id"] == TOP_CLAUSE

    again = ipqa("docs", "add", str(NEW_LAW), "--index-dir", str(index_dir), "--quiet", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "新增 1 个文档" in again.stdout
    assert NEW_DOC in doc_ids(index_dir)
    assert search(index_dir)[0][0].startswith(TOP_CLAUSE)
    assert not leftovers(index_dir)


# --- a swap cut between its two renames -------------------------------------------------------

_KILL_ON_SECOND_RENAME = textwrap.dedent("""
    import os, signal, sys
    from corpus import load_document
    from index.core import update_index
    from index.embedders import HashEmbedder

    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # _swap: index -> index.old done, staged -> index next
            os.kill(os.getpid(), signal.SIGKILL)
        real_rename(src, dst)

    os.rename = rename
    update_index(sys.argv[1], add=[(load_document(sys.argv[2]), "added")], embedder=HashEmbedder())
""")


def test_sigkill_between_the_two_renames_of_the_swap_is_recovered(index_copy):
    before = search(index_copy)
    proc = subprocess.run([sys.executable, "-c", _KILL_ON_SECOND_RENAME, str(index_copy), str(NEW_LAW)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    old = index_copy.with_name("index.old")
    assert not index_copy.exists() and old.is_dir()  # killed with the index renamed away
    assert any(name.startswith("index.tmp-") for name in leftovers(index_copy))

    # The next reader puts the previous index back and answers as before.
    assert search(index_copy) == before
    assert not leftovers(index_copy) and NEW_DOC not in doc_ids(index_copy)
    # The next writer does the job.
    report = update_index(index_copy, add=[(load_document(NEW_LAW), "added")], embedder=HashEmbedder())
    assert report.added == [NEW_DOC] and NEW_DOC in doc_ids(index_copy)
    assert not leftovers(index_copy)


def _new_version(index_dir: Path, name: str) -> Path:
    """A copy of the index with the new law added, beside it under ``name``."""
    scratch = index_dir.with_name("scratch")
    shutil.copytree(index_dir, scratch)
    update_index(scratch, add=[(load_document(NEW_LAW), "added")], embedder=HashEmbedder())
    return scratch.rename(index_dir.with_name(name))


def test_swap_killed_after_both_renames_keeps_the_new_index(index_copy):
    """The new version in place and the previous one still at ``.old``: the new one stays."""
    new = _new_version(index_copy, "new")
    index_copy.rename(index_copy.with_name("index.old"))
    new.rename(index_copy)
    assert NEW_DOC in doc_ids(index_copy)
    assert not leftovers(index_copy)


def test_reader_waits_for_a_writer_between_renames(index_copy):
    """A reader must not undo a swap that a live writer is doing: it waits for the second rename."""
    old, staged = index_copy.with_name("index.old"), _new_version(index_copy, "index.tmp-1")
    failures = []
    with open(index_copy.parent / ".index.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a writer at work ...
        os.rename(index_copy, old)  # ... between its two renames

        def finish():
            try:
                time.sleep(0.5)
                os.rename(staged, index_copy)
                shutil.rmtree(old)
            except OSError as exc:
                failures.append(exc)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

        writer = threading.Thread(target=finish)
        writer.start()
        try:
            assert NEW_DOC in doc_ids(index_copy)  # the writer's new version, opened after the wait
        finally:
            writer.join()
    assert not failures and not leftovers(index_copy)

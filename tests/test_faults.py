"""Faults: a damaged index is refused at start-up, and a writer killed (SIGKILL) in the middle
of a change leaves the previous index intact for the next run to finish the job.

Indexes here are built with the deterministic ``HashEmbedder`` (``IPQA_EMBEDDER=hash`` for the
CLI) over the five bundled policies copied to a temporary folder; the kills are real SIGKILLs
of ``python -m cli`` processes.
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
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
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
    """Staging copies and the previous version a writer left beside the index."""
    return sorted(p.name for p in index_dir.parent.iterdir()
                  if p.name.startswith(f".{index_dir.name}.ipqa-staging-") or p.name == f".{index_dir.name}.ipqa-previous")


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
    "damaged-bm25": ("bm25/base.rows.npy", overwrite_middle),
}


def test_the_pristine_index_opens_and_records_digests(pristine):
    manifest = json.loads((pristine / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["files"]
    assert {"store.sqlite", "vectors.faiss", "vectors.ids.npy", "bm25/base.ids.npy", "bm25/base.terms.json",
            "bm25/base.rows.npy"} <= set(files)
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
    overwrite_middle(index_copy / "bm25" / "base.terms.json")
    with pytest.raises(IndexDamaged) as err:
        KnowledgeIndex.open(index_copy, embedder=HashEmbedder())
    assert err.value.file == "bm25/base.terms.json"
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
                                        ("bm25/base.ids.npy", truncate)])
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
#
# Each writing command is killed with SIGKILL at five points (IPQA_FAILPOINT, index/folder.py):
# after embedding (before the lock) or just after taking the lock, after the staging copy, after
# the stores are written, between the two renames of the swap, and after both. Each time nothing
# is lost: the index opens, answers exactly as before (or, killed after the swap, as after the
# change), the next reader or writer clears what was left, and running the command again finishes.

KILL_POINTS = {
    "index": ["prepared", "staged", "stored", "swap-between-renames", "swap-after-renames"],
    "docs add": ["prepared", "staged", "stored", "swap-between-renames", "swap-after-renames"],
    "docs remove": ["locked", "staged", "stored", "swap-between-renames", "swap-after-renames"],
}
REMOVED = "wuhai-2022"


def _lock_is_free(index_dir: Path) -> bool:
    with open(index_dir.parent / f".{index_dir.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


def _state(index_dir: Path) -> tuple[set[str], list]:
    return doc_ids(index_dir), search(index_dir)


def _writing_command(command: str, tmp_path: Path) -> tuple[list[str], Path]:
    """The CLI arguments of ``command`` against a fresh index of the policies folder, and the index."""
    corpus, index_dir = corpus_copy(tmp_path / "corpus"), tmp_path / "index"
    index_sources(index_dir, collections=[], folders=[corpus], embedder="hash")
    if command == "index":
        shutil.copy(NEW_LAW, corpus)
        return ["index", "--corpus", str(corpus), "--index-dir", str(index_dir), "--quiet"], index_dir
    if command == "docs add":
        return ["docs", "add", str(NEW_LAW), "--index-dir", str(index_dir), "--quiet"], index_dir
    return ["docs", "remove", REMOVED, "--index-dir", str(index_dir)], index_dir


@pytest.mark.parametrize("command, point", [(c, p) for c, points in KILL_POINTS.items() for p in points])
def test_sigkill_at_any_point_of_a_write_loses_nothing(tmp_path, command, point):
    args, index_dir = _writing_command(command, tmp_path)
    docs_before, hits_before = _state(index_dir)
    assert REMOVED in docs_before and NEW_DOC not in docs_before

    killed = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=180, env=dict(ENV, IPQA_FAILPOINT=point))
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    assert _lock_is_free(index_dir)

    docs_now, hits_now = _state(index_dir)  # a reader repairs what was left and opens a whole index
    done = docs_now != docs_before
    if point == "swap-after-renames":
        assert done  # the new version was in place when the writer died
    else:
        assert not done and hits_now == hits_before  # the previous version, answering exactly as before
    if done and command == "docs remove":
        assert docs_now == docs_before - {REMOVED}
    elif done:
        assert docs_now == docs_before | {NEW_DOC} and hits_now == hits_before
    assert not [name for name in leftovers(index_dir) if "previous" in name]

    again = ipqa(*args)
    if done and command == "docs remove":  # nothing left to do: said so, not done twice
        assert again.returncode == 2 and f"索引中没有这些文档：{REMOVED}" in again.stderr
    else:
        assert again.returncode == 0, again.stderr
    assert doc_ids(index_dir) == (docs_before - {REMOVED} if command == "docs remove" else docs_before | {NEW_DOC})
    if command != "docs remove":
        assert search(index_dir) == hits_before
    assert not leftovers(index_dir)


def test_a_killed_writers_staging_copy_is_left_for_the_next_writer(tmp_path):
    """Killed after its staging copy: the copy is ours (marked), so the next writer deletes it."""
    args, index_dir = _writing_command("docs add", tmp_path)
    killed = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
                            timeout=180, env=dict(ENV, IPQA_FAILPOINT="stored"))
    assert killed.returncode == -signal.SIGKILL
    staged = [name for name in leftovers(index_dir) if "staging" in name]
    assert len(staged) == 1 and (index_dir.parent / staged[0] / "ipqa-staging.json").is_file()
    assert ipqa(*args).returncode == 0
    assert not leftovers(index_dir) and NEW_DOC in doc_ids(index_dir)


def _new_version(index_dir: Path, name: str) -> Path:
    """A copy of the index with the new law added, beside it under ``name``."""
    scratch = index_dir.with_name("scratch")
    shutil.copytree(index_dir, scratch)
    update_index(scratch, add=[(load_document(NEW_LAW), "added")], embedder=HashEmbedder())
    return scratch.rename(index_dir.with_name(name))


def test_reader_waits_for_a_writer_between_renames(index_copy):
    """A reader must not undo a swap that a live writer is doing: it waits for the second rename."""
    previous = index_copy.with_name(".index.ipqa-previous")
    staged = _new_version(index_copy, ".index.ipqa-staging-1")
    failures = []
    with open(index_copy.parent / ".index.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a writer at work ...
        os.rename(index_copy, previous)  # ... between its two renames

        def finish():
            try:
                time.sleep(0.5)
                os.rename(staged, index_copy)
                shutil.rmtree(previous)
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

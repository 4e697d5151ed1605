"""The index folder on disk: who owns it, one writer at a time, and atomic swaps.

An index lives in one folder (``<parent>/<name>``). ipqa writes only where nothing is, or where
a manifest says the folder is an ipqa index: a folder holding anything else is refused with
``NotAnIndex`` and never touched. Changes are made in a staging copy and swapped in with two
renames; the staging copy and the previous version have names nobody else uses, beside the index:

    <parent>/.<name>.ipqa-staging-<pid>   a writer's copy (``ipqa-staging.json`` inside says whose)
    <parent>/.<name>.ipqa-previous        the previous version, between the two renames of a swap
    <parent>/.<name>.lock                 the writers' lock (flock; the kernel drops it when its holder dies)

A leftover of a killed writer is deleted (or put back) only when its marker or manifest says it is
ours. ``failpoint`` lets the fault tests SIGKILL a real writer at a named point.
"""

from __future__ import annotations

import fcntl
import glob
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from corpus.errors import IndexNotBuilt, NotAnIndex

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STAGING_MARK = "ipqa-staging.json"
GENERATOR = "ipqa"  # the manifest's "generator": what makes a folder ours
DATA_FILES = ("store.sqlite", "vectors.faiss")  # an ipqa index with an unreadable manifest still has these
SWAP_WAIT_SECONDS = 10.0


def failpoint(name: str) -> None:
    """SIGKILL this process here when IPQA_FAILPOINT names this point (fault tests only)."""
    if os.environ.get("IPQA_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def staging_path(index_dir: Path, pid: int | None = None) -> Path:
    return index_dir.with_name(f".{index_dir.name}.ipqa-staging-{pid or os.getpid()}")


def previous_path(index_dir: Path) -> Path:
    return index_dir.with_name(f".{index_dir.name}.ipqa-previous")


def lock_path(index_dir: Path) -> Path:
    return index_dir.with_name(f".{index_dir.name}.lock")


def is_ipqa_manifest(manifest: object) -> bool:
    """A manifest ipqa wrote: its generator (or, before it was recorded, its own keys)."""
    if not isinstance(manifest, dict):
        return False
    if manifest.get("generator") == GENERATOR:
        return True
    return {"format_version", "embedder", "documents"} <= set(manifest)


def _manifest_of(folder: Path) -> object:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_ours(folder: Path) -> bool:
    """A folder ipqa made: an index (by its manifest) or a staging copy (by its marker)."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    if is_ipqa_manifest(_manifest_of(folder)):
        return True
    try:
        mark = json.loads((folder / STAGING_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(mark, dict) and mark.get("generator") == GENERATOR


def _contents(folder: Path, limit: int = 3) -> str:
    names = sorted(p.name for p in folder.iterdir())
    shown = "、".join(names[:limit])
    return f"其中有 {shown} 等 {len(names)} 项" if len(names) > limit else f"其中有 {shown}"


def check_index_dir(index_dir: Path) -> bool:
    """Whether ``index_dir`` already holds an index (True) or is free for a new one (False: absent
    or an empty folder). Anything else raises ``NotAnIndex`` naming what is there."""
    index_dir = Path(index_dir)
    if index_dir.is_symlink() and not index_dir.exists():
        raise NotAnIndex(index_dir, "这是一个指向不存在位置的链接")
    if not index_dir.exists():
        return False
    if not index_dir.is_dir():
        raise NotAnIndex(index_dir, "这是一个文件，不是文件夹")
    if (index_dir / MANIFEST).exists():
        if is_ipqa_manifest(_manifest_of(index_dir)):
            return True
        if any((index_dir / f).exists() for f in DATA_FILES):
            return True  # ours, with a damaged manifest: opening it says so (IndexDamaged)
        raise NotAnIndex(index_dir, f"其中的 {MANIFEST} 不是 ipqa 的索引清单")
    try:
        if any(index_dir.iterdir()):
            raise NotAnIndex(index_dir, _contents(index_dir))
    except FileNotFoundError:  # renamed away this instant by a writer's swap: no index there now
        pass
    return False


def require_index(index_dir: Path) -> None:
    """For readers: ``IndexNotBuilt`` where no index is yet, ``NotAnIndex`` where something else is."""
    if not check_index_dir(index_dir):
        raise IndexNotBuilt(index_dir)


# --- one writer at a time -------------------------------------------------------------------


@contextmanager
def locked(index_dir: Path) -> Iterator[None]:
    """Hold the writers' lock of ``index_dir`` (created beside it, with its parent)."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(index_dir), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def recover_for_reader(index_dir: Path) -> None:
    """``recover`` when no writer is at work; otherwise wait for a writer that is between the two
    renames of its swap (a reader must not undo a swap under way). Creates nothing where no index is."""
    previous = previous_path(index_dir)
    if not (is_ours(index_dir) or is_ours(previous)):  # no index, or a stranger's folder: nothing of ours to repair
        return
    try:
        lock = open(lock_path(index_dir), "a")
    except OSError:  # a read-only place: nothing to repair
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            deadline = time.monotonic() + SWAP_WAIT_SECONDS
            while between_renames(index_dir) and time.monotonic() < deadline:
                time.sleep(0.02)
            return
        try:
            recover(index_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def between_renames(index_dir: Path) -> bool:
    """A writer (or a killed one) is between the two renames of a swap: the index is at
    ``.ipqa-previous`` and nothing is at ``index_dir`` yet."""
    return not index_dir.exists() and previous_path(index_dir).exists()


def recover(index_dir: Path) -> None:
    """Undo what a killed writer left behind; call it holding the lock.

    A swap cut between its two renames left the previous index at ``.ipqa-previous`` and nothing
    at ``index_dir``: it is put back (the next run redoes the change). A swap cut after both
    renames left the previous version beside the new index: it is deleted. Staging copies of dead
    writers are deleted (under the lock no writer is alive). Only folders that are ours are touched.
    """
    previous = previous_path(index_dir)
    if previous.exists() and not is_ours(previous):
        log.warning("leaving %s alone: it is not an ipqa index", previous)
    elif not index_dir.exists() and previous.exists():
        log.info("restoring %s: a writer was killed in the middle of swapping in a new version", index_dir)
        os.rename(previous, index_dir)
    elif previous.exists():
        shutil.rmtree(previous, ignore_errors=True)
    prefix = staging_path(index_dir, 1).name[:-1]
    for stale in index_dir.parent.glob(glob.escape(prefix) + "*"):
        if stale.name[len(prefix):].isdigit() and is_ours(stale):
            log.info("deleting %s, left by a writer that was killed", stale)
            shutil.rmtree(stale, ignore_errors=True)


# --- staging and swapping ----------------------------------------------------------------------


def new_staging(index_dir: Path, *, copy: bool) -> Path:
    """This writer's staging folder, marked as ours before anything else is written into it;
    with ``copy``, the current index's files copied in."""
    staged = staging_path(index_dir)
    if staged.exists():
        _refuse_if_not_ours(staged)
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    (staged / STAGING_MARK).write_text(json.dumps({"generator": GENERATOR, "index": str(index_dir.resolve()),
                                                   "pid": os.getpid()}), encoding="utf-8")
    if copy:
        shutil.copytree(index_dir, staged, dirs_exist_ok=True, copy_function=_link_or_copy)
    failpoint("staged")
    return staged


LINK_MIN_BYTES = 1 << 20


def _link_or_copy(source: str, target: str) -> None:
    """A staging copy of one file. A large file is hard-linked: the stores never write into a file
    they did not just create (``index.keywords.unlinked``), so the link is replaced, not changed, and
    adding one document to a large index does not copy gigabytes. SQLite changes its file in
    place, so it is copied, and so are small files (the manifest)."""
    if os.path.getsize(source) >= LINK_MIN_BYTES and not source.endswith((".sqlite", ".sqlite-journal", ".sqlite-wal")):
        try:
            os.link(source, target)
            return
        except OSError:  # a file system without hard links
            pass
    shutil.copy2(source, target)


def discard(staged: Path) -> None:
    if is_ours(staged):
        shutil.rmtree(staged, ignore_errors=True)


def unmark(staged: Path) -> None:
    """Drop the staging marker: from now on the manifest says the folder is ours."""
    (staged / STAGING_MARK).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(index_dir: Path, staged: Path) -> None:
    """Make ``staged`` the index: two renames, then the previous version is deleted."""
    previous = previous_path(index_dir)
    if previous.exists():  # recover() ran under the lock: what is left there is not ours
        _refuse_if_not_ours(previous)
        shutil.rmtree(previous)
    moved = index_dir.exists()
    if moved:
        if not is_ours(index_dir) and any(index_dir.iterdir()):  # checked again: never move a stranger's folder
            raise NotAnIndex(index_dir, _contents(index_dir))
        os.rename(index_dir, previous)
    failpoint("swap-between-renames")
    os.rename(staged, index_dir)
    _fsync_dir(index_dir.parent)
    failpoint("swap-after-renames")
    if moved and is_ours(previous):
        shutil.rmtree(previous, ignore_errors=True)
    elif moved:  # an empty folder the user made for the index
        previous.rmdir()


def _refuse_if_not_ours(path: Path) -> None:
    """ipqa's own working names (staging copy, previous version) taken by something else: refuse."""
    if not is_ours(path):
        raise NotAnIndex(path, _contents(path) if path.is_dir() else "这是一个文件",
                         advice="ipqa 更新索引时要用这个名字暂存文件，请把它移到别处后再试")

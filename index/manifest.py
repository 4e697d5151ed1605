"""An index folder's manifest: what was built with what, and the digest of every file.

Reading it refuses a folder that is not an index (``NotAnIndex``), an index of another format
or embedder (``IndexMismatch``) and a damaged one (``IndexDamaged``, naming the file and the
command that rebuilds it).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shlex
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from corpus.errors import IndexDamaged, IndexMismatch, IpqaError
from index.embedders import DEFAULT_EMBEDDER, PRESETS
from index.folder import GENERATOR, MANIFEST, STAGING_MARK, require_index
from index.text import dictionary_hash

FORMAT_VERSION = 2  # 2: sentence vectors (sentences.faiss)
DIGEST = "sha256"  # hashlib name; ~1.5 GB/s with the CPU's SHA extensions: 26 ms for 40 MB here


LOCAL_STORE = {"catalog": "sqlite", "vectors": "faiss", "keywords": "bm25-segments"}  # a folder's stores, by name
RENAMED_STORES = {"bm25s": "bm25-segments"}  # a store's earlier name: its files are read and rewritten


def new_manifest(embedder_name: str, dim: int, chunker: dict, created_at: str) -> dict:
    """A new knowledge base's manifest (a folder's; index.pg_write records the database's stores)."""
    return {"generator": GENERATOR, "format_version": FORMAT_VERSION, "embedder": {"name": embedder_name, "dim": dim},
            "chunker": chunker, "dictionary_hash": dictionary_hash(), "created_at": created_at, "documents": {},
            "store": dict(LOCAL_STORE)}


def read_manifest(index_dir: Path) -> dict:
    """The manifest of the index in ``index_dir``: ``IndexNotBuilt`` where no index is yet,
    ``NotAnIndex`` where a folder holds something else."""
    index_dir = Path(index_dir)
    require_index(index_dir)
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexDamaged(MANIFEST, f"无法读取（{type(exc).__name__}）", index_dir) from exc
    if not isinstance(manifest, dict):
        raise IndexDamaged(MANIFEST, "内容不是索引清单", index_dir)
    return manifest


def rebuild_arguments(manifest: dict) -> tuple[str, str]:
    """The ``ipqa index --rebuild`` arguments that bring back the same sources and embedder,
    and a Chinese note on what they do not bring back (files added one by one)."""
    origins = [v.get("origin", "") for v in manifest.get("documents", {}).values() if isinstance(v, dict)]
    args = []
    for origin in dict.fromkeys(origins):
        kind, _, value = origin.partition(":")
        if kind == "collection":
            args.append(f"--collection {shlex.quote(value)}")
        elif kind == "folder":
            args.append(f"--corpus {shlex.quote(value)}")
    name = manifest.get("embedder", {}).get("name")
    if name and name != PRESETS[DEFAULT_EMBEDDER].name:
        args.append(f"--embedder {shlex.quote(name)}")
    added = origins.count("added")
    note = f"另有 {added} 个文件是用 ipqa docs add 单独加入的，重建后请重新加入" if added else ""
    return "".join(" " + a for a in args), note


def damaged(manifest: dict, index_dir: Path, file: str, detail: str) -> IndexDamaged:
    extra, note = rebuild_arguments(manifest)
    return IndexDamaged(file, detail, index_dir, extra=extra, note=note)


def _digest(path: Path, *, sync: bool = False) -> str:
    h = hashlib.new(DIGEST)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
        if sync:
            os.fsync(fh.fileno())
    return h.hexdigest()


def file_digests(folder: Path, *, sync: bool = False, previous: Path | None = None,
                 recorded: dict | None = None) -> dict[str, dict]:
    """Size and digest of every file of an index directory but the manifest (and a staging
    marker), keyed by relative path (``sync``: also flush each file to disk). A file that is the
    same file as in ``previous`` (a staging copy's hard link to the index's) keeps the digest
    ``recorded`` for it there: it was not written, and a damage since is still seen at opening."""
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in (MANIFEST, STAGING_MARK):
            continue
        kept = (recorded or {}).get(rel)
        if kept and previous is not None and _same_file(path, previous / rel) and kept.get("size") == path.stat().st_size:
            files[rel] = {**kept, "mtime_ns": path.stat().st_mtime_ns}  # (verified in full before a write)
        else:
            digest = _digest(path, sync=sync)
            stat = path.stat()
            files[rel] = {"size": stat.st_size, DIGEST: digest, "mtime_ns": stat.st_mtime_ns}
    return files


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def verify_files(manifest: dict, index_dir: Path, *, trust_untouched: bool = False) -> bool:
    """Check every data file against the size and digest the manifest recorded when the index
    was written; raise ``IndexDamaged`` naming the first that differs. False when the index was
    written by an older ipqa that recorded none (nothing is checked then).

    ``trust_untouched`` (a writer about to change the index): a file whose size and modification
    time are still those recorded is not read again, as git trusts its index's stat data. Opening
    an index always reads every file."""
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        return False
    index_dir = Path(index_dir)
    for rel, want in recorded.items():
        try:
            stat = (index_dir / rel).stat()
            size = stat.st_size
            if trust_untouched and size == want.get("size") and stat.st_mtime_ns == want.get("mtime_ns"):
                continue
            digest = _digest(index_dir / rel) if size == want.get("size") else None
        except FileNotFoundError:  # (also gone between the two calls: a writer swapped the folder)
            raise damaged(manifest, index_dir, rel, "文件缺失") from None
        if size != want.get("size"):
            raise damaged(manifest, index_dir, rel,
                          f"大小为 {size} 字节，建立索引时为 {want.get('size')} 字节，文件可能被截断或改写")
        if digest != want.get(DIGEST):
            raise damaged(manifest, index_dir, rel, "内容与建立索引时记录的校验值不符")
    return True


# What a damaged file makes the loaders raise: faiss (RuntimeError), sqlite, numpy and pickle
# (ValueError, EOFError, UnpicklingError), json (ValueError), a missing file (OSError), bm25s (KeyError...).
LOAD_ERRORS = (RuntimeError, sqlite3.DatabaseError, ValueError, OSError, EOFError, KeyError, IndexError,
               TypeError, pickle.UnpicklingError)


@contextmanager
def reading(index_dir: Path, manifest: dict, file: str):
    """Turn a low-level error while reading ``file`` into ``IndexDamaged``."""
    try:
        yield
    except IpqaError:
        raise
    except LOAD_ERRORS as exc:
        raise damaged(manifest, index_dir, file, f"无法读取：{type(exc).__name__}") from exc


def check_manifest(manifest: dict, index_dir: Path, embedder_name: str | None = None) -> None:
    """Refuse an index of another format or embedder, naming the command that fixes it."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(f"索引格式版本为 {manifest.get('format_version')}，当前程序需要 {FORMAT_VERSION}", index_dir)
    built_with = manifest.get("embedder", {}).get("name")
    if embedder_name and built_with != embedder_name:
        raise IndexMismatch(f"索引由向量模型「{built_with}」建立，而不是「{embedder_name}」", index_dir,
                            extra=f" --embedder {embedder_name}", action="reembed")
    if manifest.get("dictionary_hash") != dictionary_hash():
        raise IndexMismatch("索引建立时使用的关键词词典与当前版本不同", index_dir)

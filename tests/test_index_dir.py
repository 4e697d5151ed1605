"""A folder that is not an index is never touched (issue 15).

ipqa writes an index only where nothing is (or an empty folder) or where a manifest says the folder
is an ipqa index; anything else is refused with a message naming what is there, before a lock file,
staging copy or backup is made. Its own staging and backup folders have names nobody else uses and
are deleted only when they are ours. Real CLI processes (hash embedder) on real files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import index_sources
from corpus.errors import NotAnIndex
from index.core import KnowledgeIndex
from index.embedders import HashEmbedder
from index.folder import check_index_dir, recover
from tests.conftest import LAWS, POLICIES, ROOT

ENV = dict(os.environ, IPQA_EMBEDDER="hash")
POLICY = POLICIES / "hubei-2023.txt"


def ipqa(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=dict(ENV, PYTHONPATH=str(ROOT)))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (and the folder's siblings' names) with its bytes."""
    return {str(p.relative_to(folder.parent)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.parent.rglob("*"))}


def user_folder(tmp_path: Path) -> Path:
    mydir = tmp_path / "mydir"
    (mydir / "notes").mkdir(parents=True)
    (mydir / "important.txt").write_text("不要删除我\n", encoding="utf-8")
    (mydir / "notes" / "a.md").write_text("# 笔记\n", encoding="utf-8")
    return mydir


@pytest.mark.parametrize("command", [
    ["docs", "add", str(POLICY)],
    ["index", "--collection", "policies"],
    ["index", "--rebuild", "--collection", "policies"],
])
def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path, command):
    mydir = user_folder(tmp_path)
    before = snapshot(mydir)
    result = ipqa(*command, "--index-dir", str(mydir), "--quiet" if command[0] != "docs" else "--quiet")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"「{mydir}」不是 ipqa 的索引目录（其中有 important.txt、notes）" in result.stderr
    assert "没有做任何改动" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(mydir) == before  # not a byte changed, no lock file, no staging copy beside it


def test_a_copy_of_the_laws_given_as_index_dir_is_refused(tmp_path):
    """`--index-dir laws_copy` where `--corpus laws_copy` was meant."""
    laws_copy = tmp_path / "laws_copy"
    laws_copy.mkdir()
    for path in sorted(LAWS.glob("*.md")):
        shutil.copy(path, laws_copy)
    before = snapshot(laws_copy)
    result = ipqa("index", "--collection", "policies", "--index-dir", str(laws_copy), "--quiet")
    assert result.returncode == 2
    assert f"「{laws_copy}」不是 ipqa 的索引目录（其中有" in result.stderr and f"等 {len(before) - 1} 项" in result.stderr
    assert snapshot(laws_copy) == before


def test_a_file_given_as_index_dir_is_refused_not_renamed(tmp_path):
    path = tmp_path / "index"
    path.write_text("这是一个文件\n", encoding="utf-8")
    for command in (["docs", "add", str(POLICY)], ["index", "--collection", "policies"]):
        result = ipqa(*command, "--index-dir", str(path), "--quiet")
        assert result.returncode == 2 and "这是一个文件，不是文件夹" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    assert path.read_text(encoding="utf-8") == "这是一个文件\n"


def test_a_folder_with_someone_elses_manifest_is_refused(tmp_path):
    webapp = tmp_path / "webapp"
    webapp.mkdir()
    (webapp / "manifest.json").write_text(json.dumps({"name": "PWA", "start_url": "/"}), encoding="utf-8")
    with pytest.raises(NotAnIndex, match="manifest.json 不是 ipqa 的索引清单"):
        check_index_dir(webapp)
    result = ipqa("docs", "add", str(POLICY), "--index-dir", str(webapp), "--quiet")
    assert result.returncode == 2 and "不是 ipqa 的索引目录" in result.stderr
    assert sorted(p.name for p in webapp.iterdir()) == ["manifest.json"]


def test_nothing_there_or_an_empty_folder_becomes_an_index(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for index_dir in (empty, tmp_path / "new" / "index"):
        result = ipqa("docs", "add", str(POLICY), "--index-dir", str(index_dir), "--quiet")
        assert result.returncode == 0, result.stderr
        assert "新增 1 个文档" in result.stdout
        manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["generator"] == "ipqa" and list(manifest["documents"]) == ["hubei-2023"]


def test_siblings_with_similar_names_are_never_touched(tmp_path):
    """`proj.old` and `proj.tmp-123` (the names older versions used for their backup and staging copy)
    survive builds, updates, removals and a reader's recovery."""
    index_dir = tmp_path / "proj"
    strangers = [tmp_path / "proj.old", tmp_path / "proj.tmp-123", tmp_path / "proj.bak"]
    for folder in strangers:
        folder.mkdir()
        (folder / "keep.txt").write_text("用户的文件\n", encoding="utf-8")
    index_sources(index_dir, collections=[], folders=[POLICIES], embedder="hash")
    assert ipqa("docs", "add", str(LAWS / "商标法(2019-04-23).md"), "--index-dir", str(index_dir),
                "--quiet").returncode == 0
    assert ipqa("docs", "remove", "hubei-2023", "--index-dir", str(index_dir)).returncode == 0
    recover(index_dir)
    KnowledgeIndex.open(index_dir, embedder=HashEmbedder()).close()
    for folder in strangers:
        assert (folder / "keep.txt").read_text(encoding="utf-8") == "用户的文件\n", folder


@pytest.mark.parametrize("name", [".proj.ipqa-previous", ".proj.ipqa-staging-999"])
def test_a_strangers_folder_under_ipqas_working_names_is_kept(tmp_path, name):
    """Even a folder named like ipqa's backup or a dead writer's staging copy is deleted only when
    its manifest or marker says it is ipqa's; taking the backup name blocks writes, with a message."""
    index_dir = tmp_path / "proj"
    index_sources(index_dir, collections=[], folders=[POLICIES], embedder="hash")
    stranger = tmp_path / name
    stranger.mkdir()
    (stranger / "keep.txt").write_text("用户的文件\n", encoding="utf-8")
    result = ipqa("docs", "add", str(LAWS / "商标法(2019-04-23).md"), "--index-dir", str(index_dir), "--quiet")
    if "previous" in name:
        assert result.returncode == 2 and f"「{stranger}」不是 ipqa 的索引目录（其中有 keep.txt）" in result.stderr
        assert "请把它移到别处后再试" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
    KnowledgeIndex.open(index_dir, embedder=HashEmbedder()).close()
    assert (stranger / "keep.txt").read_text(encoding="utf-8") == "用户的文件\n"


@pytest.mark.parametrize("command", [["search", "专利"], ["ask", "专利的期限"], ["docs", "list"]])
def test_read_only_commands_leave_nothing_beside_a_missing_index(tmp_path, command):
    result = ipqa(*command, "--index-dir", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "还没有建立索引" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no .nope.lock, no folder


def test_read_only_commands_on_a_folder_of_other_files(tmp_path):
    mydir = user_folder(tmp_path)
    before = snapshot(mydir)
    for command in (["search", "专利"], ["docs", "list"], ["serve", "--port", "0"]):
        result = ipqa(*command, "--index-dir", str(mydir))
        assert result.returncode == 2 and "不是 ipqa 的索引目录" in result.stderr, command
    assert snapshot(mydir) == before

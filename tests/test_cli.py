"""The ``ipqa docs`` commands, run as a user would run them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def ipqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_docs_list_prints_bundled_documents_with_metadata():
    result = ipqa("docs", "list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "文档ID" in out and "条款数" in out
    for expected in ["changsha-furong-2017", "芙政办发〔2017〕33号", "2017-08-03", "芙蓉区",
                     "wuhai-2022", "乌市监知字〔2022〕169号", "2021–2025", "专利法(2020-10-17)", "中华人民共和国专利法"]:
        assert expected in out, expected
    assert "已加载 17 个文件" in out


def test_docs_list_json_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("某区知识产权工作方案\n一、目标\n到2025年专利授权量达到100件。\n", encoding="utf-8")
    (tmp_path / "b.pdf").write_bytes(b"not a pdf")
    result = ipqa("docs", "list", "--corpus", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["doc_id"] for d in data["documents"]] == ["a"]
    assert data["documents"][0]["clauses"] == 2
    assert data["failures"][0]["file"] == "b.pdf"


def test_docs_show_and_errors():
    result = ipqa("docs", "show", "专利法(2020-10-17)")
    assert result.returncode == 0
    assert "第七章 专利权的保护" in result.stdout and "第七十一条" in result.stdout
    missing = ipqa("docs", "show", "no-such-doc")
    assert missing.returncode == 2 and "找不到文档" in missing.stderr
    bad = ipqa("docs", "list", "--collection", "nope")
    assert bad.returncode == 2 and "没有名为「nope」的文档集" in bad.stderr


def test_importing_the_service_stays_light():
    code = ("import sys, assistant, corpus; "
            "heavy = [m for m in ('torch', 'faiss', 'gradio', 'sentence_transformers', 'docx', 'pypdf', 'bs4') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr

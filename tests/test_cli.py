"""The ``ipqa docs`` commands, run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata

import pytest

from tests.conftest import ROOT


def ipqa(*args: str, columns: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"COLUMNS": str(columns)} if columns else {})}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def _columns(line: str) -> int:
    """Terminal columns a line takes (wide CJK characters count two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def test_docs_list_prints_bundled_documents_with_metadata():
    wide = ipqa("docs", "list", columns=300)  # a table where it fits
    assert wide.returncode == 0, wide.stderr
    assert "文档ID" in wide.stdout and "条款数" in wide.stdout
    narrow = ipqa("docs", "list", columns=100)  # else one record per document, wrapped, never cut
    assert "文档ID" not in narrow.stdout
    assert all(_columns(line) <= 100 for line in narrow.stdout.splitlines() if not line.startswith(
        ("最高人民法院", "集成电路")))  # (a long id keeps its own line whole)
    for out in (wide.stdout, narrow.stdout):
        for expected in ["changsha-furong-2017", "芙政办发〔2017〕33号", "2017-08-03", "芙蓉区", "wuhai-2022",
                         "乌市监知字〔2022〕169号", "2021–2025", "专利法(2020-10-17)", "中华人民共和国专利法",
                         "最高人民法院关于审理侵害知识产权民事案件适用惩罚性赔偿的解释(2021-03-02)"]:
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


def test_index_search_add_remove_commands(tmp_path):
    """The index commands end to end (hash embedder: the real model has its own test)."""
    import os

    env = dict(os.environ, IPQA_EMBEDDER="hash")
    index_dir = str(tmp_path / "ix")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env=env)

    built = run("index", "--collection", "policies", "--index-dir", index_dir, "--quiet")
    assert built.returncode == 0, built.stderr
    assert "新增 5 个文档" in built.stdout and "片段/秒" in built.stdout

    result = run("search", "知识产权质押融资风险补偿基金", "-k", "3", "--index-dir", index_dir, "--json")
    data = json.loads(result.stdout)
    assert data["query"] == "知识产权质押融资风险补偿基金"
    first = data["hits"][0]
    assert set(first) >= {"rank", "chunk_id", "clause_id", "doc_id", "title", "clause_path", "text", "score"}
    assert first["clause_id"] == "jingmen-hitech-2023:四、/(二)/9." and first["rank"] == 1
    assert first["text"].startswith("9. 深化知识产权金融服务\n健全园区知识产权质押融资风险分担机制")

    region = run("search", "质押融资", "--region", "沧州", "--mode", "bm25", "--index-dir", index_dir, "--json")
    assert {h["doc_id"] for h in json.loads(region.stdout)["hits"]} == {"cangzhou-2017"}

    batch = tmp_path / "q.jsonl"
    batch.write_text('{"id": "q1", "question": "乌海市知识产权服务机构"}\n{"id": "q2", "question": "专利导航"}\n',
                     encoding="utf-8")
    out = run("search", "--batch", str(batch), "-k", "2", "--index-dir", index_dir)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2"] and all(len(r["hits"]) == 2 for r in rows)

    law = str(ROOT / "corpus" / "laws" / "专利法(2020-10-17).md")
    added = run("docs", "add", law, "--index-dir", index_dir, "--quiet")
    assert "新增 1 个文档" in added.stdout
    again = run("docs", "add", law, "--index-dir", index_dir, "--quiet")
    assert "新增 0 个文档" in again.stdout and "未变 1 个" in again.stdout
    listed = run("docs", "list", "--index-dir", index_dir)
    assert "专利法(2020-10-17)" in listed.stdout and "索引中共有 6 个文档" in listed.stdout
    removed = run("docs", "remove", "专利法(2020-10-17)", "--index-dir", index_dir)
    assert "删除 1 个" in removed.stdout
    missing = run("search", "专利", "--index-dir", str(tmp_path / "none"))
    assert missing.returncode == 2 and "还没有建立索引" in missing.stderr


def test_help_and_usage_errors_are_in_chinese():
    bad = ipqa("search", "--mode", "nope")
    assert bad.returncode == 2 and "无效的取值 'nope'" in bad.stderr and "invalid choice" not in bad.stderr
    unknown = ipqa("ask", "问题", "--nope")
    assert unknown.returncode == 2 and "无法识别的参数：--nope" in unknown.stderr
    top = ipqa("--help")
    assert "位置参数" in top.stdout and "positional arguments" not in top.stdout and "显示本帮助并退出" in top.stdout
    ask = ipqa("ask", "--help")
    assert ask.stdout.startswith("用法：ipqa ask") and "提问：给出带条款出处的回答" in ask.stdout
    assert "示例：" in ask.stdout and "ipqa ask 专利资助有哪些 --region 沧州" in ask.stdout and "--region" in ask.stdout


@pytest.mark.slow
def test_ask_prints_the_articles_a_quoted_clause_cites_whole(real_index):
    # "违反本法第六条、第九条规定…五百万元以下的赔偿": the terminal shows 第九条 in full under the source.
    index_dir, _ = real_index
    out = ipqa("ask", "侵犯商业秘密最多赔多少钱？", "--index-dir", str(index_dir))
    assert out.returncode == 0, out.stderr
    sources = out.stdout.split("出处：", 1)[1]
    assert sources.index("[1] 《中华人民共和国反不正当竞争法》第十七条") < sources.index(
        "本条引用 《中华人民共和国反不正当竞争法》第九条：")
    ninth = sources.split("第九条：", 1)[1]
    assert "电子侵入" in ninth and "视为侵犯商业秘密" in ninth  # the article's last sentence too


def test_reembed_command_swaps_the_model_and_refuses_what_it_cannot_do(tmp_path):
    index_dir = str(tmp_path / "ix")
    built = ipqa("index", "--collection", "policies", "--index-dir", index_dir, "--embedder", "hash", "--quiet")
    assert built.returncode == 0, built.stderr
    mixed = ipqa("index", "--reembed", "--rebuild", "--index-dir", index_dir)
    assert mixed.returncode == 2 and "不能与 --rebuild" in mixed.stderr
    nothing = ipqa("index", "--reembed", "--index-dir", str(tmp_path / "none"))
    assert nothing.returncode != 0 and "Traceback" not in nothing.stderr
    done = ipqa("index", "--reembed", "--index-dir", index_dir, "--embedder", "hash-bigram-128", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "已重新向量化 5 个文档" in done.stdout
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"] == {"name": "hash-bigram-128", "dim": 128}
    found = ipqa("search", "质押融资风险补偿基金", "--index-dir", index_dir, "--mode", "dense", "--json")
    assert found.returncode == 0, found.stderr
    assert "质押融资" in json.loads(found.stdout)["hits"][0]["text"]  # the new vectors answer

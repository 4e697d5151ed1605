"""A change to an index folder is written as a change (issue 18: adding one document to a large
index must not copy or rewrite it): the BM25 postings and the vectors keep a base plus what
changed since, the staging copy hard-links what it does not change, and none of it may alter
what a search returns. All on the bundled laws' real chunks."""

import json
import os
import shutil

import bm25s
import numpy as np
import pytest

from corpus import load_document
from index.build import update_index
from index.chunking import chunk_document
from index.core import KnowledgeIndex
from index.embedders import HashEmbedder
from index.keywords import BM25Store, Segment
from index.manifest import file_digests
from index.stores import FaissStore
from index.text import tokenize
from tests.conftest import ROOT

NEW_LAW = ROOT / "corpus" / "stard_laws" / "产品质量法(2018-12-29).md"  # not in the bundled knowledge base
QUERIES = ["发明专利权的期限", "商标注册 续展 宽展期", "著作权 保护期 作者 死亡", "侵犯 商业秘密 赔偿",
           "植物新品种 品种权 申请", "海关 扣留 侵权嫌疑货物 担保"]


@pytest.fixture(scope="module")
def law_tokens(laws):
    chunks = [c for d in laws.values() for c in chunk_document(d)]
    return [tokenize(c.indexed_text) for c in chunks]


def _bm25s_scores(ids, tokens, query):
    """bm25s's own scores over the same rows: what the store must give."""
    retriever = bm25s.BM25()
    retriever.index([t or ["\u2205"] for t in tokens], show_progress=False)
    known = [w for w in query if w in retriever.vocab_dict]
    scores = retriever.get_scores(known) if known else np.zeros(len(ids))
    return dict(zip(ids, scores))


def _assert_same_scores(store, ids, tokens):
    for q in QUERIES:
        query = tokenize(q)
        got_ids, got = store.scores(query)
        want = _bm25s_scores(list(ids), tokens, query)
        assert sorted(got_ids.tolist()) == sorted(ids)
        assert got == pytest.approx(np.array([want[i] for i in got_ids.tolist()]), rel=1e-5, abs=1e-6)


def test_bm25_scores_are_bm25s_scores_through_adds_deletes_and_reloads(law_tokens, tmp_path):
    n = len(law_tokens)
    store = BM25Store()
    store.add(np.arange(n - 20), law_tokens[:-20])
    store.save(tmp_path)  # the base
    loaded = BM25Store.load(tmp_path)
    loaded.add(np.arange(n - 20, n), law_tokens[-20:])  # a delta
    gone = np.arange(0, n, 50)
    loaded.delete(gone)
    loaded.add(np.array([5000 + n]), [law_tokens[3]])  # and a new id holding an old chunk's words
    keep = [i for i in range(n) if i % 50]
    ids, tokens = keep + [5000 + n], [law_tokens[i] for i in keep] + [law_tokens[3]]
    _assert_same_scores(loaded, ids, tokens)

    loaded.save(tmp_path)
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "bm25").glob("*.terms.json")) == ["base", "delta"]
    again = BM25Store.load(tmp_path)
    _assert_same_scores(again, ids, tokens)
    freqs, total = again.document_frequencies(["专利", "不在词表里的词"])
    assert total == len(ids) and set(freqs) == {"专利"}
    assert freqs["专利"] == sum("专利" in t for t in tokens)


def test_bm25_merges_into_a_new_base_past_a_fifth_and_drops_dead_words(law_tokens, tmp_path):
    n = len(law_tokens)
    store = BM25Store()
    store.add(np.arange(n), law_tokens)
    store.save(tmp_path)
    base_rows = (tmp_path / "bm25" / "base.rows.npy").stat().st_ino
    store.delete(np.arange(0, n // 10))
    store.save(tmp_path)  # a tenth: a deletion list, the base kept
    assert (tmp_path / "bm25" / "base.rows.npy").stat().st_ino == base_rows
    assert len(np.load(tmp_path / "bm25" / BM25Store.DELETED)) == n // 10
    store.delete(np.arange(n // 10, n // 2))
    store.save(tmp_path)  # half: merged
    assert not (tmp_path / "bm25" / BM25Store.DELETED).exists()
    merged = Segment.load(tmp_path / "bm25", "base")
    assert len(merged.ids) == n - n // 2
    left = {w for t in law_tokens[n // 2:] for w in t}
    assert set(merged.terms) == left  # words only deleted chunks held are gone
    _assert_same_scores(BM25Store.load(tmp_path), list(range(n // 2, n)), law_tokens[n // 2:])


def test_a_legacy_bm25_layout_is_read_and_rewritten(law_tokens, tmp_path):
    """An index written before segments kept its tokens in bm25/tokens.jsonl."""
    folder = tmp_path / "bm25"
    folder.mkdir()
    with open(folder / "tokens.jsonl", "w", encoding="utf-8") as fh:
        for i, t in enumerate(law_tokens[:300]):
            fh.write(json.dumps([i, " ".join(t)], ensure_ascii=False) + "\n")
    store = BM25Store.load(tmp_path)
    _assert_same_scores(store, list(range(300)), law_tokens[:300])
    store.save(tmp_path)
    assert not (folder / "tokens.jsonl").exists() and Segment.exists(folder, "base")


def _vectors(laws):
    chunks = [c for d in laws.values() for c in chunk_document(d)]
    emb = HashEmbedder()
    return emb, emb.encode_passages([c.indexed_text for c in chunks]), emb.encode_queries(QUERIES)


def test_vectors_written_as_changes_search_as_one_index(laws, tmp_path):
    emb, vectors, queries = _vectors(laws)
    n = len(vectors)
    store = FaissStore(emb.dim)
    store.add(np.arange(n - 50), vectors[:-50])
    store.save(tmp_path)
    base = (tmp_path / FaissStore.FILE).stat()
    changed = FaissStore.load(tmp_path, lazy=True)
    changed.add(np.arange(n - 50, n), vectors[-50:])
    changed.delete(np.arange(0, 40))
    changed.add(np.array([7]), vectors[[n - 1]])  # an id given again, with another vector
    changed.save(tmp_path)
    assert changed._flat is None  # nothing large was read
    assert (tmp_path / FaissStore.FILE).stat().st_mtime_ns == base.st_mtime_ns
    assert len(np.load(tmp_path / "vectors.delta-ids.npy")) == 51

    expected = FaissStore(emb.dim)  # the same content, built in one go
    keep = np.array([i for i in range(n) if i >= 40])
    expected.add(np.concatenate([keep, [7]]), np.vstack([vectors[keep], vectors[[n - 1]]]))
    for lazy in (True, False):
        loaded = FaissStore.load(tmp_path, lazy=lazy)
        assert len(loaded) == len(expected) and sorted(loaded.ids().tolist()) == sorted(keep.tolist() + [7])
        for q in queries:
            _same_hits(loaded.search(q, 10), expected.search(q, 10))
            _same_hits(loaded.search(q, 5, allowed=np.arange(0, 100)), expected.search(q, 5, allowed=np.arange(0, 100)))


def _same_hits(got, want):
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)


def test_the_graph_is_not_rewritten_for_a_small_change(laws, tmp_path):
    emb, vectors, queries = _vectors(laws)
    n = len(vectors)
    store = FaissStore(emb.dim, approx_threshold=500)
    store.add(np.arange(n - 30), vectors[:-30])
    store.save(tmp_path)
    graph = (tmp_path / FaissStore.HNSW_FILE).stat().st_mtime_ns
    writer = FaissStore.load(tmp_path, lazy=True)
    writer.approx_threshold = 500
    writer.add(np.arange(n - 30, n), vectors[-30:])
    writer.delete(np.arange(0, 10))
    writer.save(tmp_path)
    assert writer._graph is None and writer._flat is None  # neither the graph nor the base was read
    assert (tmp_path / FaissStore.HNSW_FILE).stat().st_mtime_ns == graph

    reader = FaissStore.load(tmp_path)
    assert len(reader._outside) == 30 and reader._stale == set(range(10))
    for i in (n - 1, n - 15):  # an added chunk's own words find it through the graph's side list
        assert reader.search(vectors[i], 1)[0][0] == i
    assert not {i for q in queries for i, _ in reader.search(q, 10)} & set(range(10))


def test_adding_a_document_links_what_it_does_not_change(real_index, tmp_path):
    """The staging copy hard-links the large files; the live index's files are never written
    through a link (a copy kept of them before the change still reads the same after it)."""
    index_dir = tmp_path / "index"
    shutil.copytree(real_index[0], index_dir)
    before = file_digests(index_dir)
    kept = tmp_path / "kept"
    kept.mkdir()
    for rel in before:
        (kept / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(index_dir / rel, kept / rel)  # the same inodes as the live index's files
    emb = KnowledgeIndex.open(index_dir).embedder
    update_index(index_dir, add=[(load_document(NEW_LAW), "added")], embedder=emb)
    assert file_digests(kept) == before  # what the previous version's files hold is untouched
    after = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["files"]
    for rel in ("sentences.faiss", "vectors.faiss"):
        if before[rel]["size"] >= 1 << 20:
            assert os.path.samefile(index_dir / rel, kept / rel)
        assert after[rel]["sha256"] == before[rel]["sha256"]
    assert "vectors.delta.npy" in after and "bm25/delta.terms.json" in after, sorted(after)
    ix = KnowledgeIndex.open(index_dir)
    assert any(h.chunk.doc_id == load_document(NEW_LAW).doc_id for h in ix.search("产品质量 监督抽查", 10))

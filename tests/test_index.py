"""Chunks, stores and the index directory, on the bundled documents.

These use the deterministic ``HashEmbedder`` so they run in seconds; the real
default model is exercised in ``test_index_real_model.py``.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from corpus import IpqaError, load_document
from corpus.errors import IndexMismatch, IndexNotBuilt
from index.chunking import ChunkerSettings, chunk_document
from index.core import Filters, KnowledgeIndex, update_index
from index.embedders import HashEmbedder
from index.stores import STORES, BM25Store, FaissStore
from index.text import tokenize
from tests.conftest import POLICIES


@pytest.fixture(scope="module")
def all_docs(policies, laws):
    return list(policies.values()) + list(laws.values())


# --- chunks ---------------------------------------------------------------------------


def test_one_clause_per_chunk_when_it_fits(policies):
    doc = policies["jingmen-hitech-2023"]
    chunks = chunk_document(doc)
    by_clause = {c.clause_id: c for c in chunks}
    clause = doc.clause("jingmen-hitech-2023:四、/(二)/9.")
    chunk = by_clause[clause.clause_id]
    assert chunk.text == clause.text.strip() and chunk.parts == 1
    assert doc.text[chunk.start:chunk.end] == chunk.text
    # Context names the document, place and heading path; the cited text stays the clause's own.
    assert chunk.context.startswith("《荆门高新区创建湖北省知识产权强省建设示范园区工作方案(2023-2025年)》 荆门高新区 2023–2025")
    assert "(二)促进园区知识产权转移转化" in chunk.context and "《" not in chunk.text


def test_heading_only_clauses_give_no_chunk(patent_law, policies):
    ids = {c.clause_id for c in chunk_document(patent_law)}
    assert "专利法(2020-10-17):第7章" not in ids
    assert "专利法(2020-10-17):第7章/第71条" in ids
    assert "jingmen-hitech-2023:四、" not in {c.clause_id for c in chunk_document(policies["jingmen-hitech-2023"])}


def test_long_clauses_split_at_sentence_ends(all_docs):
    settings = ChunkerSettings(max_chars=200)
    pieces_seen = 0
    for doc in all_docs:
        for chunk in chunk_document(doc, settings):
            assert doc.text[chunk.start:chunk.end] == chunk.text
            assert len(chunk.text) <= settings.max_chars
            clause = doc.clause(chunk.clause_id)
            assert clause.start <= chunk.start and chunk.end <= clause.end
            if chunk.parts > 1 and chunk.part < chunk.parts - 1:
                pieces_seen += 1
                # Never mid-sentence: a piece ends at 。！？；, a comma, or a line end.
                after = doc.text[chunk.end:chunk.end + 1]
                assert re.search(r"[。！？!?；;，,]$", chunk.text) or after == "\n", chunk.chunk_id
    assert pieces_seen > 50


def test_pieces_of_a_clause_cover_it():
    doc = load_document(POLICIES / "cangzhou-2017.txt")
    goals = doc.clause("cangzhou-2017:二、")
    pieces = [c for c in chunk_document(doc) if c.clause_id == goals.clause_id]
    assert len(pieces) > 1
    joined = "".join(p.text for p in pieces)
    assert re.sub(r"\s", "", joined) == re.sub(r"\s", "", goals.text)
    # Table rows stay whole inside a piece.
    row = "实现知识产权质押融资金额 | 5年累计目标: 2亿元以上 | 预期性"
    assert any(row in p.text for p in pieces)


# --- keyword tokens ---------------------------------------------------------------------


def test_jieba_splits_pinned():
    assert tokenize("第十二条") == ["第十", "十二", "二条", "第十二", "十二条", "第十二条"]
    assert tokenize("专利权人") == ["专利", "利权", "专利权", "专利权人"]
    assert tokenize("高价值发明专利") == ["高价", "价值", "发明", "专利", "发明专利", "高价值发明专利"]
    assert tokenize("知识产权质押融资") == ["知识", "产权", "质押", "融资", "知识产权", "质押融资", "知识产权质押融资"]
    assert tokenize("荆门高新区对通过贯标认证的企业有奖励吗？") == [
        "荆门", "高新", "新区", "高新区", "通过", "贯标", "认证", "贯标认证", "企业", "奖励"]
    assert tokenize("那PCT呢？") == ["pct"]


# --- stores: one contract for every store ----------------------------------------------


def _payload(store_name: str, texts: list[str]):
    if store_name == "faiss":
        return HashEmbedder().encode_passages(texts)
    return [tokenize(t) for t in texts]


def _query(store_name: str, text: str):
    return HashEmbedder().encode_queries([text])[0] if store_name == "faiss" else tokenize(text)


def _new(store_name: str):
    return FaissStore(HashEmbedder().dim) if store_name == "faiss" else BM25Store()


@pytest.mark.parametrize("store_name", sorted(STORES))
def test_store_contract(store_name, policies, tmp_path):
    chunks = [c for d in policies.values() for c in chunk_document(d)]
    texts = [c.indexed_text for c in chunks]
    ids = np.arange(100, 100 + len(chunks), dtype=np.int64)
    store = _new(store_name)
    store.add(ids, _payload(store_name, texts))
    assert len(store) == len(chunks)

    target = next(i for i, c in enumerate(chunks) if c.clause_id == "jingmen-hitech-2023:四、/(二)/9.")
    query = _query(store_name, "荆门高新区知识产权质押融资风险补偿基金")
    results = store.search(query, 5)
    assert results[0][0] == ids[target]
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)

    # Filtering by allowed ids keeps only those.
    allowed = ids[[i for i, c in enumerate(chunks) if c.doc_id == "cangzhou-2017"]]
    assert {i for i, _ in store.search(query, 5, allowed)} <= set(allowed.tolist())

    # Delete one document's chunks: they never come back.
    gone = ids[[i for i, c in enumerate(chunks) if c.doc_id == "jingmen-hitech-2023"]]
    store.delete(gone)
    assert len(store) == len(chunks) - len(gone)
    after_delete = store.search(query, 10)
    assert not set(gone.tolist()) & {i for i, _ in after_delete}

    store.save(tmp_path)
    loaded = STORES[store_name].load(tmp_path)
    assert len(loaded) == len(store)
    reloaded = loaded.search(query, 10)
    assert [i for i, _ in reloaded] == [i for i, _ in after_delete]
    assert [s for _, s in reloaded] == pytest.approx([s for _, s in after_delete], rel=1e-5)


def test_faiss_switches_to_hnsw_above_the_threshold(laws, tmp_path):
    """Over the laws' chunks with a low threshold: the graph is built on save, finds what exact
    search finds, skips deleted chunks, survives a reload, and goes away below the threshold."""
    chunks = [c for d in laws.values() for c in chunk_document(d)]
    emb = HashEmbedder()
    vectors = emb.encode_passages([c.indexed_text for c in chunks])
    ids = np.arange(len(chunks), dtype=np.int64)
    store = FaissStore(emb.dim, approx_threshold=500)
    assert len(chunks) > 500
    store.add(ids, vectors)
    store.save(tmp_path)
    assert store.hnsw is not None and (tmp_path / FaissStore.HNSW_FILE).exists()

    queries = emb.encode_queries([c.text[:40] for c in chunks[::25]])
    recall = np.mean([len({i for i, _ in store.search(q, 10)} & {i for i, _ in store.search(q, 10, exact=True)}) / 10
                      for q in queries])
    assert recall >= 0.95

    gone = ids[: len(ids) // 10]
    store.delete(gone)
    assert not set(gone.tolist()) & {i for q in queries for i, _ in store.search(q, 10)}
    store.save(tmp_path)
    loaded = FaissStore.load(tmp_path)
    assert loaded.hnsw is not None and loaded._stale == set(gone.tolist())
    assert [i for i, _ in loaded.search(queries[-1], 10)] == [i for i, _ in store.search(queries[-1], 10)]

    loaded.approx_threshold = 10 ** 9
    loaded.save(tmp_path)
    assert loaded.hnsw is None and not (tmp_path / FaissStore.HNSW_FILE).exists()


# --- the index directory ------------------------------------------------------------------


def _with_origin(docs, origin="collection:test"):
    return [(d, origin) for d in docs]


@pytest.fixture()
def built(tmp_path, policies):
    index_dir = tmp_path / "index"
    report = update_index(index_dir, add=_with_origin(policies.values()), embedder=HashEmbedder())
    return index_dir, report


def test_build_writes_manifest_and_layout(built, policies):
    index_dir, report = built
    assert sorted(report.added) == sorted(policies)
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 2
    assert manifest["store"] == {"catalog": "sqlite", "vectors": "faiss", "keywords": "bm25-segments"}
    assert manifest["embedder"] == {"name": "hash-bigram-256", "dim": 256}
    assert manifest["chunker"]["max_chars"] == 400
    assert len(manifest["dictionary_hash"]) == 16
    assert manifest["documents"]["wuhai-2022"]["content_hash"] == policies["wuhai-2022"].content_hash
    assert manifest["counts"]["chunks"] == report.chunks_embedded
    assert manifest["chunker"]["sentences"] is True and manifest["chunker"]["chunk_vector"] == "embed"
    for name in ["store.sqlite", "vectors.faiss", "vectors.ids.npy", "sentences.faiss", "bm25/base.terms.json", "manifest.json"]:
        assert (index_dir / name).exists()
    assert not list(index_dir.parent.glob(".index.ipqa-*"))


def test_incremental_update_embeds_only_new_documents(built):
    index_dir, first = built
    ix = KnowledgeIndex.open(index_dir)
    before = {d.doc_id: ix.catalog.chunk_ids(d.doc_id) for d in ix.documents()}
    vectors_before = ix.vectors.index.reconstruct_batch(before["hubei-2023"])
    ix.close()

    again = update_index(index_dir, add=_with_origin(load_document(p) for p in sorted(POLICIES.glob("*.txt"))))
    assert again.chunks_embedded == 0 and len(again.unchanged) == 5

    law = load_document(POLICIES.parent / "laws" / "专利法(2020-10-17).md")
    added = update_index(index_dir, add=[(law, "added")])
    assert added.added == [law.doc_id]
    assert added.chunks_embedded == len(chunk_document(law))  # only the new document
    ix = KnowledgeIndex.open(index_dir)
    assert np.array_equal(ix.catalog.chunk_ids("hubei-2023"), before["hubei-2023"])
    assert np.array_equal(ix.vectors.index.reconstruct_batch(before["hubei-2023"]), vectors_before)
    hits = ix.search("发明专利权的期限", 3, mode="bm25")
    assert hits[0].chunk.doc_id == law.doc_id
    ix.close()


def test_same_file_twice_is_stored_once(built, tmp_path):
    index_dir, _ = built
    copy = tmp_path / "copy.txt"
    shutil.copy(POLICIES / "wuhai-2022.txt", copy)
    report = update_index(index_dir, add=[(load_document(copy), "added"), (load_document(copy), "added")])
    assert report.duplicates == [("copy", "wuhai-2022")]
    assert report.chunks_embedded == 0
    ix = KnowledgeIndex.open(index_dir)
    assert len(ix.documents()) == 5
    ix.close()


def test_changed_document_is_replaced_and_missing_one_pruned(built, tmp_path):
    index_dir, _ = built
    changed = tmp_path / "wuhai-2022.txt"
    changed.write_text((POLICIES / "wuhai-2022.txt").read_text(encoding="utf-8").replace(
        "至少培育或引入", "至少培育或引入（修订）"), encoding="utf-8")
    docs = [load_document(p) for p in sorted(POLICIES.glob("*.txt")) if p.stem not in ("wuhai-2022", "hubei-2023")]
    report = update_index(index_dir, add=_with_origin(docs + [load_document(changed)]),
                          prune_origins=["collection:test"])
    assert report.updated == ["wuhai-2022"]
    assert report.removed == ["hubei-2023"]
    assert report.chunks_embedded == len(chunk_document(load_document(changed)))
    ix = KnowledgeIndex.open(index_dir)
    assert "hubei-2023" not in {d.doc_id for d in ix.documents()}
    assert "（修订）" in ix.search("至少培育或引入专利代理", 1, mode="bm25")[0].chunk.text
    ix.close()


def test_remove_document(built):
    index_dir, _ = built
    report = update_index(index_dir, remove=["cangzhou-2017"])
    assert report.removed == ["cangzhou-2017"]
    ix = KnowledgeIndex.open(index_dir)
    for mode in ("dense", "bm25", "hybrid"):
        assert all(h.chunk.doc_id != "cangzhou-2017" for h in ix.search("沧州市专利事业发展", 10, mode=mode))
    ix.close()


def test_mismatched_or_missing_index_is_refused(built, tmp_path):
    index_dir, _ = built

    class Other(HashEmbedder):
        def __init__(self):
            super().__init__(128)

    with pytest.raises(IndexMismatch) as err:
        KnowledgeIndex.open(index_dir, embedder=Other())
    # only the vectors differ: re-embedding with the model asked for keeps every document
    assert "hash-bigram-256" in err.value.user_message
    assert err.value.user_message.endswith(f"请运行：ipqa index --reembed --index-dir {index_dir} --embedder hash-bigram-128")
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    # written by stores this program does not have (index.registry): refused, naming them
    (index_dir / "manifest.json").write_text(json.dumps({**manifest, "store": {**manifest["store"],
                                                         "vectors": "hnswlib"}}), encoding="utf-8")
    with pytest.raises(IndexMismatch) as other_store:
        KnowledgeIndex.open(index_dir)
    assert "vectors=hnswlib" in other_store.value.user_message and "faiss" in other_store.value.user_message
    manifest["format_version"] = 99
    (index_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexMismatch, match="rebuild"):
        KnowledgeIndex.open(index_dir)
    with pytest.raises(IndexNotBuilt) as missing:
        KnowledgeIndex.open(tmp_path / "nothing-here")
    assert "ipqa index" in missing.value.user_message


def test_search_modes_filters_and_hits(built):
    index_dir, _ = built
    ix = KnowledgeIndex.open(index_dir)
    question = "知识产权质押融资风险补偿基金"
    for mode in ("dense", "bm25", "hybrid"):
        hits = ix.search(question, 5, mode=mode)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert hits[0].chunk.clause_id == "jingmen-hitech-2023:四、/(二)/9.", mode
    top = ix.search(question, 1)[0]
    assert set(top.scores) == {"dense", "bm25"}
    assert top.citation == "《荆门高新区创建湖北省知识产权强省建设示范园区工作方案(2023-2025年)》四、(二)9."
    assert top.path[-1] == "9. 深化知识产权金融服务"

    for region in ("沧州", "沧州市", "河北"):
        hits = ix.search("质押融资", 5, filters=Filters(region=region))
        assert hits and {h.chunk.doc_id for h in hits} == {"cangzhou-2017"}
    alias = ix.search("质押融资", 5, filters=Filters(region="掇刀区"))
    assert {h.chunk.doc_id for h in alias} == {"jingmen-hitech-2023"}
    hubei = {h.chunk.doc_id for h in ix.search("知识产权", 30, filters=Filters(region="湖北"))}
    assert hubei == {"hubei-2023", "jingmen-hitech-2023"}
    years = {h.chunk.doc_id for h in ix.search("知识产权", 50, filters=Filters(years=(2024, 2024)))}
    assert years == {"jingmen-hitech-2023", "wuhai-2022"}
    plans = {h.chunk.doc_id for h in ix.search("知识产权", 50, filters=Filters(kinds=("规划",)))}
    assert plans == {"wuhai-2022", "cangzhou-2017"}
    assert ix.search("知识产权", 5, filters=Filters(region="北京")) == []
    with pytest.raises(IpqaError):
        ix.search("   ")
    ix.close()


def test_sentence_units_cut_at_sentence_ends_and_join_short_pieces():
    from index.sentences import MAX_CHARS, sentence_units

    article = ("第六十五条 侵犯专利权的赔偿数额按照权利人因被侵权所受到的实际损失确定；实际损失难以确定的，"
               "可以按照侵权人因侵权所获得的利益确定。权利人的损失难以确定的，参照该专利许可使用费的倍数合理确定。")
    assert sentence_units(article) == [
        "第六十五条 侵犯专利权的赔偿数额按照权利人因被侵权所受到的实际损失确定；实际损失难以确定的，可以按照侵权人因侵权所获得的利益确定。",
        "权利人的损失难以确定的，参照该专利许可使用费的倍数合理确定。"]
    items = "第三条 下列行为属于侵权：\n（一）\n擅自使用他人注册商标的；\n（二）销售侵权商品的。"
    assert sentence_units(items) == ["第三条 下列行为属于侵权：", "（一）擅自使用他人注册商标的；", "（二）销售侵权商品的。"]
    long = "；".join(["本项为一项很长的列举内容用于测试切分"] * 12) + "。"
    assert all(len(u) <= MAX_CHARS for u in sentence_units(long)) and "".join(sentence_units(long)) == long
    assert sentence_units("第五条") == ["第五条"]


def test_sentence_store_scores_a_chunk_by_its_best_sentence(tmp_path):
    from index.sentences import STRIDE, SentenceStore

    emb = HashEmbedder()
    store = SentenceStore(emb.dim)
    first = ["专利权的期限为二十年", "外观设计专利权的期限为十五年"]
    second = ["商标注册的有效期为十年"]
    store.add_chunks(np.asarray([7, 9]), [emb.encode_passages(first), emb.encode_passages(second)])
    query = emb.encode_queries(["外观设计专利权的期限"])[0]
    best = store.best(query, np.asarray([7, 9, 11]))
    assert best[0] == pytest.approx(float(emb.encode_passages([first[1]])[0] @ query))
    assert best[0] > best[1] > 0 and best[2] == 0.0
    assert [c for c, _ in store.search_chunks(query, 2)] == [7, 9]
    assert [c for c, _ in store.search_chunks(query, 2, allowed=np.asarray([9]))] == [9]
    store.save(tmp_path)
    again = SentenceStore.load(tmp_path)
    assert sorted(again.sentence_ids([7, 9]).tolist()) == [7 * STRIDE, 7 * STRIDE + 1, 9 * STRIDE]
    again.delete_chunks(np.asarray([7]))
    assert again.best(query, np.asarray([7]))[0] == 0.0 and len(again) == 1


def test_a_removal_does_not_load_the_model(built):
    """Removing a document embeds nothing, so the model is never loaded (it took 2.8 s of a removal
    from an 800-law index)."""
    index_dir, _ = built

    class Unloadable:  # the index's embedder by name, but unusable
        name = HashEmbedder().name

        def encode_passages(self, texts, *, progress=False):
            raise AssertionError("the model was used")

        @property
        def dim(self):
            raise AssertionError("the model was loaded")

    report = update_index(index_dir, remove=["hubei-2023"], embedder=Unloadable())
    assert report.removed == ["hubei-2023"]
    assert "hubei-2023" not in {d.doc_id for d in KnowledgeIndex.open(index_dir).documents()}


class _Stopped(Exception):
    pass


def _scores(ix, query: str) -> dict[str, tuple[float, float]]:
    """{chunk id: (its cosine to the query, its best sentence's)} over every chunk of the index."""
    ids = ix.doc_chunk_ids([d.doc_id for d in ix.documents()])
    v = ix.query_vector(query)
    chunks = ix.chunks(ids.tolist())
    return {chunks[int(i)].chunk_id: (float(d), float(s))
            for i, d, s in zip(ids, ix.dense_scores(v, ids), ix.sentence_scores(v, ids))}


def test_reembed_gives_the_vectors_a_build_would_keeps_every_document_and_resumes(built, tmp_path, monkeypatch):
    # An index built with one embedder gets another's vectors from its own catalog: the same vectors,
    # sentence vectors and rankings as a build with that embedder, the keyword index untouched, and a
    # document whose file is gone kept. Stopped after its first shard, a second run embeds the rest only.
    import index.reembed as reembed

    index_dir, _ = built
    gone = tmp_path / "上传的文件.txt"
    gone.write_text("关于集成电路布图设计登记费减免的通知\n一、对小微企业的布图设计登记费减半收取。", encoding="utf-8")
    uploaded = load_document(gone)
    update_index(index_dir, add=[(uploaded, "uploads")], embedder=HashEmbedder())
    gone.unlink()
    target, direct = HashEmbedder(384), tmp_path / "direct"
    before = KnowledgeIndex.open(index_dir)
    full = update_index(direct, add=[(before.document(d.doc_id), "x") for d in before.documents()], embedder=target)
    before.close()
    bm25_before = {p.name: p.read_bytes() for p in (index_dir / "bm25").iterdir()}

    monkeypatch.setattr(reembed, "SHARD_TEXTS", 300)
    work = reembed.work_folder(index_dir, target)

    def stop_after_a_shard(done, total):
        if list(work.glob("*.json")):
            raise _Stopped

    with pytest.raises(_Stopped):
        reembed.reembed_index(index_dir, target, on_progress=stop_after_a_shard)
    assert json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["embedder"]["dim"] == 256
    first = sum(np.load(p).shape[0] for p in work.glob("*.npy"))
    report = reembed.reembed_index(index_dir, target)
    assert 0 < first and report.texts_embedded == full.texts_embedded - first  # no text embedded twice
    assert not work.exists()

    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"] == {"name": "hash-bigram-384", "dim": 384}
    assert {p.name: p.read_bytes() for p in (index_dir / "bm25").iterdir()} == bm25_before  # as it was
    a, b = KnowledgeIndex.open(index_dir), KnowledgeIndex.open(direct)
    assert a.embedder.name == "hash-bigram-384" and len(a.documents()) == 6
    for q in ("布图设计登记费", "荆门高新区对通过贯标认证的企业有奖励吗", "质押融资风险补偿基金"):
        got, want = _scores(a, q), _scores(b, q)
        assert got.keys() == want.keys()
        assert all(np.allclose(got[c], want[c], atol=1e-6) for c in want)
        for mode in ("dense", "hybrid", "bm25"):
            assert [h.chunk.chunk_id for h in a.search(q, 10, mode=mode)] == \
                   [h.chunk.chunk_id for h in b.search(q, 10, mode=mode)]
    assert a.search("布图设计登记费减半", 1, mode="dense")[0].chunk.doc_id == uploaded.doc_id
    a.close()
    b.close()

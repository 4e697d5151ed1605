"""One contract for every knowledge-base store: the local folder (FAISS + bm25s + SQLite) and a
shared PostgreSQL database (pgvector + BM25 in SQL), run through the same sequence with the real
embedder on real documents: add, search, filter, delete, reopen, a reader during a write."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from corpus import load_document
from index import core
from index.core import Filters, KnowledgeIndex, update_index
from tests.conftest import LAWS, POLICIES
from tests.pg import new_database, pg_server  # noqa: F401  (a fixture)

FURONG = POLICIES / "changsha-furong-2017.txt"
CIRCUITS = LAWS / "集成电路布图设计保护条例(2001-04-02).md"
SOFTWARE = LAWS / "计算机软件保护条例(2013-01-30).md"
QUESTIONS = ["集成电路布图设计专有权的保护期是多少年", "芙蓉区对专利申请有什么资助", "软件著作权人享有哪些权利",
             "布图设计登记申请", "知识产权强区建设的目标"]


@pytest.fixture(params=["folder", "postgresql"])
def location(request, tmp_path):
    if request.param == "folder":
        return tmp_path / "index"
    return new_database(request.getfixturevalue("pg_server"))


def _docs(*paths):
    return [(load_document(p), "collection:test") for p in paths]


def _top(ix: KnowledgeIndex, question: str, mode: str = "hybrid", **kw) -> list[str]:
    return [h.chunk.chunk_id for h in ix.search(question, 10, mode=mode, **kw)]


@pytest.mark.slow
def test_store_contract(location):
    report = update_index(location, add=_docs(FURONG, CIRCUITS))
    assert sorted(report.added) == sorted([load_document(FURONG).doc_id, load_document(CIRCUITS).doc_id])
    ix = KnowledgeIndex.open(location)
    circuits = load_document(CIRCUITS).doc_id
    # search: each mode finds the clause on the term of protection
    for mode in ("dense", "bm25", "hybrid"):
        hits = ix.search(QUESTIONS[0], 5, mode=mode)
        assert "保护期为10年" in hits[0].chunk.text and hits[0].chunk.doc_id == circuits, mode
    # filter: a place keeps its own document only; a document filter likewise
    by_place = ix.search("专利", 10, filters=Filters(region="芙蓉区"))
    assert by_place and {h.chunk.doc_id for h in by_place} == {"changsha-furong-2017"}
    by_doc = ix.search("专利", 10, mode="bm25", filters=Filters(doc_ids=(circuits,)))
    assert {h.chunk.doc_id for h in by_doc} <= {circuits}
    assert ix.search("专利", 10, filters=Filters(region="深圳")) == []
    # delete: the document's chunks are gone from every search; its text from the catalog
    update_index(location, remove=[circuits])
    ix = KnowledgeIndex.open(location)
    for mode in ("dense", "bm25", "hybrid"):
        assert all(h.chunk.doc_id != circuits for h in ix.search(QUESTIONS[0], 10, mode=mode))
    assert ix.document(circuits) is None and [d.doc_id for d in ix.documents()] == ["changsha-furong-2017"]
    # reopen: the same answers as the open index
    again = KnowledgeIndex.open(location)
    assert all(_top(again, q) == _top(ix, q) for q in QUESTIONS)


@pytest.mark.slow
def test_reader_during_a_write_sees_the_old_or_the_new_knowledge_base(location):
    update_index(location, add=_docs(FURONG))
    reader = KnowledgeIndex.open(location)
    seen, errors, done = set(), [], threading.Event()

    def read():
        while not done.is_set():
            try:
                seen.add(tuple(sorted({h.chunk.doc_id for h in reader.search("著作权 软件", 10, mode="bm25")})))
                KnowledgeIndex.open(location).documents()
            except Exception as exc:  # noqa: BLE001 (any failure of a reader is the finding)
                errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        update_index(location, add=_docs(SOFTWARE))
    finally:
        done.set()
        thread.join()
    if errors:  # the first failure of a reader, as it was raised
        raise errors[0]
    assert seen  # the reader ran during the write
    software = load_document(SOFTWARE).doc_id
    after = KnowledgeIndex.open(location)
    assert software in {h.chunk.doc_id for h in after.search("软件著作权人享有哪些权利", 5)}
    # A reader of a database moves to the new version on its next search (and its document list
    # with it); a reader of a folder keeps the files it opened until it is reopened.
    found = {h.chunk.doc_id for h in reader.search("软件著作权人享有哪些权利", 5)}
    assert (software in found) == reader.shared
    assert (software in {d.doc_id for d in reader.documents()}) == reader.shared


@pytest.mark.slow
def test_an_open_index_notices_every_change_made_elsewhere(location, monkeypatch):
    """What a running app asks before answering: has another process changed the knowledge base?
    Two changes within one second are both noticed (the check is not a time stamp)."""
    monkeypatch.setattr(core, "STALE_CHECK_SECONDS", 0.0)  # the once-a-second throttle, off
    software = load_document(SOFTWARE).doc_id
    update_index(location, add=_docs(FURONG))
    reader = KnowledgeIndex.open(location)
    assert not reader.is_stale()
    update_index(location, add=_docs(SOFTWARE))
    assert reader.is_stale()
    reopened = KnowledgeIndex.open(location)
    assert not reopened.is_stale() and software in {d.doc_id for d in reopened.documents()}
    update_index(location, remove=[software])
    update_index(location, add=_docs(SOFTWARE))  # the same content back, within the same second
    assert reopened.is_stale()


@pytest.mark.slow
def test_both_stores_rank_alike(tmp_path, pg_server):  # noqa: F811
    """The same documents in a folder and in PostgreSQL give the same top 10 in every mode."""
    docs = _docs(FURONG, CIRCUITS, SOFTWARE)
    url = new_database(pg_server)
    update_index(tmp_path / "index", add=docs)
    update_index(url, add=docs)
    local, shared = KnowledgeIndex.open(tmp_path / "index"), KnowledgeIndex.open(url)
    assert shared.shared and not local.shared
    assert (local.manifest["store"]["vectors"], shared.manifest["store"]["vectors"]) == ("faiss", "pgvector")
    for question in QUESTIONS:
        for mode in ("dense", "bm25", "hybrid"):
            assert _top(local, question, mode) == _top(shared, question, mode), (question, mode)
        tokens = ["软件", "著作权", "著作权"]
        ids_l, s_l = local.keyword_scores(tokens)
        ids_s, s_s = shared.keyword_scores(tokens)
        by_id = dict(zip(ids_l.tolist(), s_l.tolist()))
        assert len(ids_s) and all(abs(by_id[i] - s) < 1e-4 for i, s in zip(ids_s.tolist(), s_s.tolist()))
        assert {i for i, s in by_id.items() if s > 0} == set(ids_s.tolist())
    # The candidates' BM25, with and without feedback weights, in one database query: the same ids and scores
    weights = {"软件": 1.0, "著作权": 2.0, "许可": 0.4, "登记": 0.3}
    every = np.asarray(sorted(ids_l.tolist()), dtype=np.int64)
    for allowed in (None, every[::2]):
        # ids the dense searches found (within the filter), and one that holds no word of either query
        among = np.concatenate([(every if allowed is None else allowed)[:5], [10 ** 6]])
        ids_l, s_l = local.keyword_candidates(tokens, weights, 8, allowed, among)
        ids_s, s_s = shared.keyword_candidates(tokens, weights, 8, allowed, among)
        assert ids_l.tolist() == ids_s.tolist() and len(ids_l) > len(among)
        assert np.allclose(s_l, s_s, rtol=1e-4, atol=1e-5)
        top = ids_l[np.lexsort((ids_l, -s_l[:, 1]))][:8]
        assert allowed is None or set(top.tolist()) - set(among.tolist()) <= set(allowed.tolist())
    # Where each document and each clause stands (the law map, the scope model): the same vectors, unit length
    docs_l, centroids_l = local.document_centroids()
    docs_s, centroids_s = shared.document_centroids()
    assert docs_l == docs_s == sorted(d.doc_id for d, _ in docs) and np.allclose(centroids_l, centroids_s, atol=1e-4)
    assert np.allclose(np.linalg.norm(centroids_l, axis=1), 1.0, atol=1e-5)
    assert local.document_centroids([docs_l[1]])[0] == [docs_l[1]]
    clause = local.search(QUESTIONS[0], 1)[0].chunk.clause_id
    assert np.allclose(local.clause_vector(clause), shared.clause_vector(clause), atol=1e-4)
    assert local.clause_vector("no such clause") is None and shared.clause_vector("no such clause") is None

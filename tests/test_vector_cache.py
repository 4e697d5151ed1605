"""The vector cache (index/vector_cache.py): a text a model embedded once is not embedded again by a
later build, into any store; a build stopped midway keeps what it embedded."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import load_document
from index.build import BuildReport, prepare, text_plan
from index.chunking import ChunkerSettings, chunk_document
from index.embedders import get_embedder
from index.vector_cache import CACHE_ENV, VectorCache
from tests.conftest import POLICIES

FURONG = POLICIES / "changsha-furong-2017.txt"


def _texts(n: int) -> list[str]:
    doc = load_document(FURONG)
    plan = text_plan([(doc, "t", chunk_document(doc))], ChunkerSettings())
    assert len(plan.texts) >= n
    return plan.texts[:n]


def test_lookup_returns_what_was_added_and_names_the_rest(tmp_path):
    texts = _texts(40)
    vectors = get_embedder("hash").encode_passages(texts)  # real vectors of the texts, from a real embedder
    cache = VectorCache(tmp_path / "m", dim=vectors.shape[1])
    cache.add(texts[:25], vectors[:25])
    got, missing = cache.lookup(texts[10:] + ["一段从未见过的文字"])
    assert missing == list(range(15, 31))
    assert np.array_equal(got[:15], vectors[10:25]) and not got[15:].any()
    # another cache object over the same folder (another process) sees the shard too
    again, none_missing = VectorCache(tmp_path / "m", dim=vectors.shape[1]).lookup(texts[:25])
    assert none_missing == [] and np.array_equal(again, vectors[:25])


def test_a_shard_without_its_keys_or_damaged_is_ignored(tmp_path):
    texts = _texts(10)
    vectors = get_embedder("hash").encode_passages(texts)
    cache = VectorCache(tmp_path / "m", dim=vectors.shape[1])
    cache.add(texts[:5], vectors[:5])
    cache.add(texts[5:], vectors[5:])
    first, second = sorted(cache.folder.glob("*.keys.npy"))  # named by the time they were written
    first.unlink()  # a writer killed between its two files leaves vectors without keys
    second.write_bytes(b"not numpy")
    _, missing = cache.lookup(texts)
    assert missing == list(range(10))  # embedded again, never a wrong vector


def test_the_oldest_shards_go_past_the_size_limit(tmp_path):
    texts = _texts(30)
    vectors = get_embedder("hash").encode_passages(texts)
    one_shard = vectors[:10].nbytes + 10 * 16 + 2 * 128  # vectors, keys and the two .npy headers
    cache = VectorCache(tmp_path / "m", dim=vectors.shape[1], limit_bytes=2 * one_shard)
    for start in (0, 10, 20):
        cache.add(texts[start:start + 10], vectors[start:start + 10])
    assert len(list(cache.folder.glob("*.keys.npy"))) == 2
    assert cache.lookup(texts)[1] == list(range(10))  # the first shard, the oldest, was dropped


@pytest.mark.slow
def test_a_second_build_of_the_same_document_takes_its_vectors_from_the_cache(tmp_path, monkeypatch):
    # The real default model (the hash embedders are not cached: they cost nothing).
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    embedder = get_embedder().load()
    doc = load_document(FURONG)
    first, second = BuildReport(), BuildReport()
    built = prepare([(doc, "a")], embedder, ChunkerSettings(), first)
    assert first.texts_embedded > 0 and first.texts_cached == 0
    again = prepare([(doc, "b")], embedder, ChunkerSettings(), second)
    assert second.texts_embedded == 0 and second.texts_cached == first.texts_embedded
    assert "取自向量缓存" in second.summary()
    assert all(np.array_equal(a.vectors, b.vectors) for a, b in zip(built, again))
    assert all(np.array_equal(x, y) for a, b in zip(built, again) for x, y in zip(a.sentence_vectors, b.sentence_vectors))
    # turned off, or a model not worth caching: no cache
    assert VectorCache.for_embedder(get_embedder("hash")) is None
    monkeypatch.setenv(CACHE_ENV, "off")
    assert VectorCache.for_embedder(embedder) is None


def test_the_naive_baselines_chunks_are_embedded_once_across_evals(tmp_path, monkeypatch):
    """Every eval run builds the naive LangChain baseline over the knowledge base: its chunks come from
    the model's vector cache after the first run (about a minute of the model per run before)."""
    from eval.baselines import NaiveLangChainPipeline, naive_chunks
    from index.vector_cache import passage_vectors

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    embedder = get_embedder().load()
    doc = load_document(FURONG)
    texts = [c.text for c in naive_chunks(doc)]
    first = NaiveLangChainPipeline([doc], embedder)
    cache = VectorCache.for_embedder(embedder)
    shards = cache._shards()
    cached, missing = cache.lookup(texts)
    assert shards and not missing and np.array_equal(cached, embedder.encode_passages(texts))
    second = NaiveLangChainPipeline([doc], embedder)
    assert cache._shards() == shards  # nothing embedded again
    question = "芙蓉区对专利申请有什么资助？"
    assert second.ranked_clauses(question) == first.ranked_clauses(question)
    # a changed text is embedded, the others are not
    assert np.array_equal(passage_vectors(embedder, texts[:3] + ["芙蓉区新增的一段文字。"])[:3], cached[:3])
    assert len(cache._shards()) == len(shards) + 1

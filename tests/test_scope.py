"""The scope model (assistant/scope.py): trained on the data in the repo, and its fitting sound. The
assistant-level behaviour (out-of-scope public questions refused, colloquial IP questions answered)
is in tests/test_assistant.py."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from assistant.scope import FEATURES, SCOPE_FILE, bundled_scope, fit, scope_for


def test_the_scope_model_was_trained_on_the_data_in_the_repo():
    """A dataset changed without retraining is caught here: run python -m eval.train_scope."""
    from eval.train_scope import MAX_REFUSED, data_hash

    info = json.loads((resources.files("assistant") / "data" / SCOPE_FILE).read_text(encoding="utf-8"))
    assert info["data_hash"] == data_hash()
    assert tuple(info["features"]) == FEATURES
    rows, refused = info["rows"], info["out_of_fold_refused"]
    assert rows["dev, own knowledge base"] > 100 and rows["STARD train, its laws"] > 500
    # Out of fold: few in-scope questions refused, most of the public questions outside the KB refused.
    assert refused["dev, own knowledge base"] <= MAX_REFUSED and refused["STARD train, its laws"] <= 2 * MAX_REFUSED
    assert refused["STARD train, own knowledge base"] > 0.5


def test_the_model_is_used_only_over_the_embedder_it_was_trained_with():
    from index.embedders import get_embedder

    default = get_embedder().name  # no weights are loaded for the name
    assert scope_for(default) is bundled_scope() and bundled_scope().embedder == default
    assert scope_for("hash") is None  # another model's cosines mean other things


def test_fit_recovers_the_boundary_it_is_given():
    """Labels drawn from the committed model over its own feature ranges: a refit agrees with it."""
    model = bundled_scope()
    rng = np.random.default_rng(7)
    x = model.mean + model.scale * rng.normal(size=(3000, len(FEATURES)))
    p = np.array([model.probability(row) for row in x])
    y = (rng.random(len(x)) < p).astype(np.float64)
    refit = fit(x, y, l2=1.0)
    q = np.array([refit.probability(row) for row in x])
    assert np.mean((q > 0.5) == (p > 0.5)) > 0.95
    assert np.allclose(fit(x, y, l2=1.0).weights, refit.weights)  # deterministic

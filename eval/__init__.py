"""eval: datasets of sample questions, retrieval metrics, baselines, reports and a regression gate.

Public API::

    evaluate(datasets=(), modes=("hybrid",), index_dir=None, out_dir=...) -> EvalOutcome
"""

from eval.api import EvalOutcome, evaluate
from eval.questions import bundled_datasets, load_dataset

__all__ = ["EvalOutcome", "bundled_datasets", "evaluate", "load_dataset"]

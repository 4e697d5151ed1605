"""eval: datasets of sample questions, retrieval metrics, baselines, reports and a regression gate.

Public API::

    evaluate(datasets=(), modes=("hybrid",), index_dir=None, out_dir=...) -> EvalOutcome
    check_report(report_path, baseline_file=None) -> list[str]   # the gate on a report already written
"""

from eval.api import EvalOutcome, check_report, evaluate
from eval.questions import bundled_datasets, load_dataset

__all__ = ["EvalOutcome", "bundled_datasets", "check_report", "evaluate", "load_dataset"]

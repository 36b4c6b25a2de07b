"""Evaluation: metrics, BCa bootstrap intervals, paired permutation tests, reports and plots.

`compute_metrics` builds the `metrics.json` structure; `write_report` (in `report`, which imports
matplotlib) writes it with a Markdown report and PNG plots.
"""

from skinkeras.evaluation.bootstrap import BootstrapResult, bootstrap_ci
from skinkeras.evaluation.metrics import METRICS_KEYS, compute_metrics
from skinkeras.evaluation.operating_point import (
    metrics_at_threshold,
    operating_point,
    threshold_for_sensitivity,
)
from skinkeras.evaluation.permutation import PermutationResult, paired_permutation_test

__all__ = [
    "METRICS_KEYS",
    "BootstrapResult",
    "PermutationResult",
    "bootstrap_ci",
    "compute_metrics",
    "metrics_at_threshold",
    "operating_point",
    "paired_permutation_test",
    "threshold_for_sensitivity",
]

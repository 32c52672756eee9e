"""Honest evaluation: full-catalogue ranking and pure vectorised ranking metrics."""

from behaviorlm.evaluate.artifacts import evaluate_artifact
from behaviorlm.evaluate.compare import (
    Comparison,
    Difference,
    compare_to_first,
    paired_difference,
    paired_table,
)
from behaviorlm.evaluate.metrics import (
    coverage,
    hit_rate,
    mean_popularity,
    mrr,
    ndcg,
    recall,
    relevance,
)
from behaviorlm.evaluate.results import (
    SHOWN_METRICS,
    EvalResult,
    cutoff_notes,
    cutoff_table,
    error_notes,
    markdown_table,
    masking_notes,
    nearest_cutoff,
)
from behaviorlm.evaluate.runner import DEFAULT_KS, evaluate

__all__ = [
    "DEFAULT_KS",
    "SHOWN_METRICS",
    "Comparison",
    "Difference",
    "EvalResult",
    "compare_to_first",
    "coverage",
    "cutoff_notes",
    "cutoff_table",
    "error_notes",
    "evaluate",
    "evaluate_artifact",
    "hit_rate",
    "markdown_table",
    "masking_notes",
    "mean_popularity",
    "mrr",
    "ndcg",
    "nearest_cutoff",
    "paired_difference",
    "paired_table",
    "recall",
    "relevance",
]

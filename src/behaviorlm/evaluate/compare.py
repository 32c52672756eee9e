"""Paired comparison of two models evaluated on the same users.

Two models ranked for the same users are compared user by user: the mean of the per-user
differences has a standard error far below either model's own (a user easy for one model is
mostly easy for the other), so differences that the models' separate errors cannot tell apart
often stand out here. :func:`paired_difference` needs the per-user values that
:func:`behaviorlm.evaluate.evaluate` keeps in memory (not in saved JSON).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from behaviorlm.evaluate.results import EvalResult, nearest_cutoff
from behaviorlm.schema import Int

#: ``EvalResult.extra`` key of the digest of the evaluated targets: equal digests, same users.
TARGETS_DIGEST = "targets_digest"


def targets_digest(target_offsets: Int, targets: Int, target_event_ids: Int) -> str:
    """A short digest of the evaluated rows and their targets, to tell whether two results
    measured the same users on the same targets.

    Examples
    --------
    >>> a = targets_digest(np.array([0, 1]), np.array([3]), np.array([7]))
    >>> a == targets_digest(np.array([0, 1]), np.array([3]), np.array([8]))
    False
    """
    h = hashlib.blake2b(digest_size=8)
    for part in (target_offsets, targets, target_event_ids):
        h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Difference:
    """``b - a`` of a metric's mean over the same users, with its paired standard error.

    Attributes
    ----------
    metric : str
        ``"NDCG@10"`` and the like.
    difference : float
        Mean over users of b's value minus a's.
    error : float
        Standard error of that mean (sample standard deviation of the per-user differences /
        sqrt(users)).
    """

    metric: str
    difference: float
    error: float

    @property
    def z(self) -> float:
        """The difference in standard errors (inf where the error is 0 and they differ)."""
        if self.error > 0:
            return self.difference / self.error
        return 0.0 if self.difference == 0 else math.copysign(math.inf, self.difference)

    @property
    def clear(self) -> bool:
        """Whether the difference is more than twice its standard error."""
        return abs(self.z) > 2


def paired_difference(a: EvalResult, b: EvalResult, metric: str, k: int) -> Difference:
    """``b - a`` of ``metric@k`` over the users both were evaluated on, paired by user.

    Raises ValueError where either result has no per-user values (one read back from JSON)
    or the two did not measure the same users and targets.

    Examples
    --------
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> from behaviorlm.schema import EvalSet, Sequences
    >>> from behaviorlm.evaluate import evaluate
    >>> train = Sequences.from_lists([[1, 2, 2], [2, 3]], n_items=3)
    >>> data = EvalSet(Sequences.from_lists([[1], [3]], n_items=3), np.array([0, 1, 2]),
    ...                np.array([2, 1]), np.array([0, 1]))
    >>> pop = evaluate(Pop(PopConfig()).fit(train), data, ks=(1,))
    >>> d = paired_difference(pop, pop, "HR", 1)
    >>> (d.difference, d.error, d.clear)
    (0.0, 0.0, False)
    """
    for r in (a, b):
        if (metric, k) not in r.per_user:
            raise ValueError(
                f"{r.model} has no per-user {metric}@{k}: compare results of evaluate() run "
                "in this process (saved results keep the means only)"
            )
    if a.extra.get(TARGETS_DIGEST) != b.extra.get(TARGETS_DIGEST) or (
        a.exclude_seen != b.exclude_seen
    ):
        raise ValueError(
            f"{a.model} and {b.model} were evaluated on other users or targets: a paired "
            "comparison needs the same data set, split and filters"
        )
    delta = b.per_user[metric, k] - a.per_user[metric, k]
    n = len(delta)
    error = float(delta.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return Difference(f"{metric}@{k}", float(delta.mean()) if n else 0.0, error)


def paired_table(
    results: Sequence[EvalResult], metrics: Sequence[str] = ("HR", "NDCG"), k: int = 10
) -> str | None:
    """A Markdown table of each result after the first against the first, paired by user, at
    the evaluated cut-off nearest ``k``; None where no two results can be paired.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {}, True, 0.0)
    >>> paired_table([r, r]) is None  # read back from JSON: no per-user values
    True
    """
    if len(results) < 2:
        return None
    first = results[0]
    cut = nearest_cutoff(first.ks, k)
    lines = []
    for other in results[1:]:
        try:
            diffs = [paired_difference(first, other, m, cut) for m in metrics]
        except ValueError:
            continue
        cells = [
            f"{d.difference:+.4f} ± {d.error:.4f}{'' if d.clear else ' (not clear)'}" for d in diffs
        ]
        lines.append(f"| {other.model} | " + " | ".join(cells) + " |")
    if not lines:
        return None
    head = f"| against {first.model} | " + " | ".join(f"{m}@{cut}" for m in metrics) + " |"
    return "\n".join([head, "|---|" + "---:|" * len(metrics), *lines])

"""Paired comparison of two trained models evaluated on the same users.

Two models ranked for the same users are compared user by user: the mean of the per-user
differences has a standard error far below either model's own (a user easy for one model is
mostly easy for the other), so differences that the models' separate errors cannot tell apart
often stand out here. The test is about these two trained models on these users: it does not
cover the randomness of training, so two seeds of one config can differ clearly; compare
configs over several seeds. :func:`paired_difference` needs the per-user values that
:func:`behaviorlm.evaluate.evaluate` keeps (in saved JSON only where written with them,
``EvalResult.to_dict(per_user=True)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from behaviorlm.evaluate.results import SEEN_ACTIONS, EvalResult, markdown_text, nearest_cutoff
from behaviorlm.schema import Int

#: ``EvalResult.extra`` key of the digest of the evaluated targets: equal digests, same users.
TARGETS_DIGEST = "targets_digest"
#: A difference is clear below this two-sided p-value.
CLEAR_P = 0.05


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
    users : int
        Users compared.
    p_value : float
        Two-sided p-value of a paired t-test (a sign test where every user differs alike).

    Examples
    --------
    >>> d = Difference("HR@10", 0.01, 0.004, 2000, 0.012)
    >>> d.clear
    True
    """

    metric: str
    difference: float
    error: float
    users: int
    p_value: float

    @property
    def clear(self) -> bool:
        """Whether the difference is unlikely to come from which users were sampled alone
        (p below 0.05; it says nothing of another training run)."""
        return self.p_value < CLEAR_P


def paired_difference(a: EvalResult, b: EvalResult, metric: str, k: int) -> Difference:
    """``b - a`` of ``metric@k`` over the users both were evaluated on, paired by user.

    Raises ValueError where either result has no per-user ``metric@k`` (one read back from
    JSON saved without them, or evaluated at other cut-offs), the two masked seen items
    differently, or they did not measure the same users and targets.

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
    >>> (d.difference, d.error, d.p_value, d.clear)
    (0.0, 0.0, 1.0, False)
    """
    # the reasons in this order: what no cut-off mends comes before the cut-off
    for r in (a, b):
        if not r.per_user:
            raise ValueError(
                f"{r.model} has no per-user {metric}@{k}: it was saved without per-user values "
                "(evaluate --json FILE --per-user keeps them)"
            )
    problem = _unpaired(a, b)
    if problem is not None:
        raise ValueError(problem)
    for r in (a, b):
        if (metric, k) not in r.per_user:
            metrics = sorted({m for m, _ in r.per_user})
            if metric not in metrics:
                why = f"its per-user metrics are {', '.join(metrics)}"
            else:
                why = f"it was evaluated at @{', @'.join(map(str, r.ks))}"
            raise ValueError(f"{r.model} has no per-user {metric}@{k}: {why}")
    x, y = a.per_user[metric, k], b.per_user[metric, k]
    if len(x) != len(y):
        raise ValueError(_NOT_SAME.format(a=a, b=b))
    delta = y - x
    n = len(delta)
    mean = float(delta.mean()) if n else 0.0
    error = float(delta.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return Difference(f"{metric}@{k}", mean, error, n, _p_value(delta, mean, error))


_NOT_SAME = (
    "{a.model} and {b.model} were not evaluated on the same users and targets: a paired "
    "comparison needs the same data set and split"
)


def mask_of(result: EvalResult) -> frozenset[object] | None:
    """The actions whose items counted as seen in ``result``, in any order (None: every
    item of the history), as results saved before the mask had one form list them too.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {}, True, 0.1, {"seen_actions": ["b", "a"]})
    >>> mask_of(r) == frozenset({"a", "b"}), mask_of(EvalResult("pop", "", 2, (10,), {}, True, 0))
    (True, None)
    """
    mask = result.extra.get(SEEN_ACTIONS)
    return None if mask is None else frozenset(mask)


def _unpaired(a: EvalResult, b: EvalResult) -> str | None:
    """Why ``a`` and ``b`` cannot be paired at any cut-off their per-user values have (they
    masked seen items differently, or measured other users or targets); None where they can."""
    masks = [mask_of(r) for r in (a, b)]
    if a.exclude_seen != b.exclude_seen or (a.exclude_seen and masks[0] != masks[1]):
        return (
            f"{a.model} and {b.model} masked seen items differently: a paired comparison "
            "needs the same masking"
        )
    digest = a.extra.get(TARGETS_DIGEST)
    if digest is None or digest != b.extra.get(TARGETS_DIGEST):
        return _NOT_SAME.format(a=a, b=b)
    return None


def _p_value(delta: np.ndarray, mean: float, error: float) -> float:
    """Two-sided p-value of the paired t-test of ``delta``; where the differences do not
    vary, an exact sign test (every user differs alike, or none does)."""
    n = len(delta)
    if mean == 0.0 and error == 0.0:
        return 1.0
    if error == 0.0:  # every user's difference is the same, nonzero: n signs alike
        return min(1.0, 2.0 * 0.5**n)
    from scipy import stats

    return float(2.0 * stats.t.sf(abs(mean / error), n - 1))


@dataclass(frozen=True)
class Comparison:
    """Each result after the first against the first, paired by user, at one cut-off.

    Attributes
    ----------
    baseline : str
        The first result's model label.
    k : int
        The cut-off compared.
    rows : list of (str, list of Difference)
        A model label and its differences, one per metric.
    left_out : list of str
        Results that could not be paired with the first, each with why.
    """

    baseline: str
    k: int
    rows: list[tuple[str, list[Difference]]]
    left_out: list[str]


def compare_to_first(
    results: Sequence[EvalResult], metrics: Sequence[str] = ("HR", "NDCG"), k: int = 10
) -> Comparison | None:
    """Every result after the first against the first at the cut-off nearest ``k`` that
    every result that can be paired with the first was evaluated at (of the first's where
    they share none); None for fewer than two results. A result that cannot be paired (no
    per-user values, other masking, other users or targets) is left out with the reason,
    and does not choose the cut-off.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {}, True, 0.0)
    >>> compare_to_first([r, r]).left_out[0][:46]  # read back from JSON: no per-user values
    'pop (pop has no per-user HR@10: it was saved w'
    """
    if len(results) < 2:
        return None
    first = results[0]
    paired = [r for r in results[1:] if r.per_user and _unpaired(first, r) is None]
    common = set(first.ks).intersection(*(r.ks for r in paired))
    cut = nearest_cutoff(common or first.ks, k)
    rows, left_out = [], []
    for other in results[1:]:
        try:
            rows.append((other.model, [paired_difference(first, other, m, cut) for m in metrics]))
        except ValueError as exc:
            left_out.append(f"{other.model} ({exc})")
    return Comparison(first.model, cut, rows, left_out)


def format_difference(d: Difference) -> str:
    """``+0.0107 ± 0.0042, p 0.011`` (``p < 0.001`` below that).

    Examples
    --------
    >>> format_difference(Difference("HR@10", -0.0021, 0.0004, 900, 2e-7))
    '-0.0021 ± 0.0004, p < 0.001'
    """
    p = "p < 0.001" if d.p_value < 0.001 else f"p {d.p_value:.3f}"
    return f"{d.difference:+.4f} ± {d.error:.4f}, {p}"


def paired_table(comparison: Comparison, metrics: Sequence[str] = ("HR", "NDCG")) -> str:
    """The comparison as a Markdown table (a line per paired model), and a line per model
    left out.

    Examples
    --------
    >>> d = Difference("HR@10", 0.01, 0.004, 2000, 0.012)
    >>> print(paired_table(Comparison("pop", 10, [("mlp", [d])], []), metrics=("HR",)))
    | model minus pop | HR@10 |
    |---|---:|
    | mlp | +0.0100 ± 0.0040, p 0.012 |
    """
    lines = []
    if comparison.rows:
        cols = " | ".join(f"{m}@{comparison.k}" for m in metrics)
        lines += [
            f"| model minus {markdown_text(comparison.baseline)} | {cols} |",
            "|---|" + "---:|" * len(metrics),
        ]
        for label, diffs in comparison.rows:
            cells = " | ".join(map(format_difference, diffs))
            lines.append(f"| {markdown_text(label)} | {cells} |")
    lines += [f"not paired: {why}" for why in comparison.left_out]
    return "\n".join(lines)

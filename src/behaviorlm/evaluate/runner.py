"""Evaluate a model on an evaluation set: full-catalogue ranking, then the metrics.

Never sampled negatives: every row is ranked against all items (``behaviorlm.recommend``),
and the metrics are means over the rows that have at least one target, each with its standard
error over those rows (how far a mean over that many users may stray from the model's
expected value over such users); :mod:`behaviorlm.evaluate.compare` compares two models user
by user.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from behaviorlm.evaluate.compare import TARGETS_DIGEST, targets_digest
from behaviorlm.evaluate.metrics import coverage, hit_rate, mean_popularity, mrr, ndcg, recall
from behaviorlm.evaluate.results import SEEN_ACTIONS, EvalResult, nearest_cutoff
from behaviorlm.models.base import Recommender, as_model
from behaviorlm.recommend import action_codes, recommend, seen_events
from behaviorlm.schema import EvalSet

DEFAULT_KS: Final[tuple[int, ...]] = (1, 5, 10, 20, 50, 100, 200)
#: Lower edges of the history-length groups of ``extra["by_history_length"]`` (own events).
HISTORY_EDGES: Final[tuple[int, ...]] = (0, 5, 10, 20, 50, 100)
#: The cut-off of the history-length groups (the nearest one evaluated).
SEGMENT_K: Final = 10
#: Per-row accuracy metrics: name -> function(ranked, target_offsets, targets, k) -> (R,).
ACCURACY = {"HR": hit_rate, "NDCG": ndcg, "MRR": mrr, "Recall": recall}


def evaluate(
    model: Recommender,
    evalset: EvalSet,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    exclude_seen: bool = True,
    seen_actions: npt.ArrayLike | None = None,
    item_popularity: npt.ArrayLike | None = None,
    batch_size: int = 256,
    item_chunk: int = 262_144,
    name: str | None = None,
    split: str = "",
) -> EvalResult:
    """Rank the full catalogue for every row of ``evalset`` and compute the metrics at ``ks``.

    Parameters
    ----------
    model : Recommender
        A fitted model.
    evalset : EvalSet
        Histories and targets; rows without any target are left out (counted in ``extra``).
        A set without any target raises ValueError.
    ks : sequence of int
        Cut-offs; the lists are ranked once at ``max(ks)``. A list never holds more than the
        catalogue, so a cut-off past its size measures the whole ranked catalogue.
    exclude_seen : bool
        Exclude the items of each row's history from its list.
    seen_actions : array of int, optional
        With ``exclude_seen``: only the items of events of these action codes count as seen
        (as :func:`behaviorlm.recommend.recommend` takes them), so a model that predicts the
        next purchase is measured on the lists it serves, which still hold what the user only
        viewed; kept as ``extra["seen_actions"]``.
    item_popularity : array, optional
        (n_items + 1,) popularity by item id (e.g. share of training events); adds the
        ``Popularity`` metric (mean popularity of the recommended items).
    batch_size, item_chunk : int
        Passed to :func:`behaviorlm.recommend.recommend`.
    name : str, optional
        Label of the result; the model's registry name by default.
    split : str
        Name of the evaluation set, stored in the result.

    Returns
    -------
    EvalResult
        Metrics ``HR``, ``NDCG``, ``MRR``, ``Recall``, ``Coverage`` (and ``Popularity``) at each k;
        ``extra["by_history_length"]`` gives HR and NDCG at the cut-off nearest 10 for the users
        grouped by the number of their own events in the history (see :func:`by_history_length`);
        ``errors`` the accuracy metrics' standard errors over the users (none for one user),
        ``per_user`` their values per user and ``extra["targets_digest"]`` which users and
        targets were measured, for :mod:`behaviorlm.evaluate.compare`.

    Examples
    --------
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> from behaviorlm.schema import Sequences
    >>> model = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2], [2, 3], [2]], n_items=3))
    >>> evalset = EvalSet(
    ...     histories=Sequences.from_lists([[1], [2]], n_items=3),
    ...     target_offsets=np.array([0, 1, 2]),
    ...     targets=np.array([2, 3]),
    ...     target_event_ids=np.array([0, 1]),
    ... )
    >>> evaluate(model, evalset, ks=(1, 2)).metrics["HR"]
    {1: 0.5, 2: 1.0}
    """
    as_model(model)  # an artifact, say: a TypeError that says to pass its .model
    if not isinstance(evalset, EvalSet):  # a Split, say
        raise TypeError(
            f"expected an EvalSet (a split's .test or .valid), got {type(evalset).__name__}"
        )
    given = tuple(ks)
    if any(int(k) != k for k in given):  # 10.5 is no cut-off, not 10
        raise ValueError(f"ks must be whole numbers, got {given}")
    ks = tuple(sorted({int(k) for k in given}))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    mask = action_codes(seen_actions)  # codes, not names or floats
    if mask is not None:  # one form of a mask: its codes once each, in order
        mask = np.unique(mask)
        if not len(mask):
            raise ValueError("seen_actions names no action: give one, or exclude_seen=False")
    start = time.perf_counter()
    has_target = np.diff(evalset.target_offsets) > 0
    rows = np.flatnonzero(has_target)
    if not len(rows):  # means over no user would read 0.0, as if measured
        raise ValueError("no row of the evaluation set has a target: there is nothing to measure")
    data = evalset if len(rows) == len(evalset) else evalset.select(rows)
    ranked = recommend(
        model,
        data.histories,
        k=ks[-1],
        exclude_seen=exclude_seen,
        seen_actions=mask,
        batch_size=batch_size,
        item_chunk=item_chunk,
    ).items
    # a list never holds more than the catalogue: a cut-off past it takes the whole list
    cut = {k: min(k, ranked.shape[1]) for k in ks}
    rows_of = {
        (metric, k): fn(ranked, data.target_offsets, data.targets, cut[k])
        for metric, fn in ACCURACY.items()
        for k in ks
    }
    metrics: dict[str, dict[int, float]] = {
        metric: {k: _mean(rows_of[metric, k]) for k in ks} for metric in ACCURACY
    }
    # a mean over one user has no spread to measure: no error
    errors = (
        {metric: {k: _standard_error(rows_of[metric, k]) for k in ks} for metric in ACCURACY}
        if len(rows) > 1
        else {}
    )
    metrics["Coverage"] = {k: coverage(ranked, model.n_items, cut[k]) for k in ks}
    k_seg = nearest_cutoff(ks, SEGMENT_K)
    per_row = {f"{metric}@{k_seg}": rows_of[metric, k_seg] for metric in ("HR", "NDCG")}
    if item_popularity is not None:
        popularity = np.asarray(item_popularity, dtype=np.float64)
        metrics["Popularity"] = {k: mean_popularity(ranked, popularity, cut[k]) for k in ks}
    result = EvalResult(
        model=name if name is not None else model.name,
        split=split,
        n_users=len(rows),
        ks=ks,
        metrics=metrics,
        exclude_seen=exclude_seen,
        seconds=round(time.perf_counter() - start, 4),
        extra={
            "rows_without_targets": int(len(evalset) - len(rows)),
            "n_targets": len(data.targets),
            "n_items": model.n_items,
            "targets_in_history": round(targets_in_history(data, mask), 6),
            "by_history_length": by_history_length(own_events(data), per_row),
            TARGETS_DIGEST: targets_digest(
                data.target_offsets, data.targets, data.target_event_ids
            ),
        },
        errors=errors,
        per_user=rows_of,
    )
    if mask is not None:  # which items counted as seen, for pairing and notes
        result.extra[SEEN_ACTIONS] = mask.tolist()
    return result


def own_events(evalset: EvalSet) -> npt.NDArray[np.int64]:
    """(R,) the number of the user's own events in each row's history (followees' aside).

    Examples
    --------
    >>> from behaviorlm.schema import Sequences
    >>> h = Sequences.from_lists([[1, 2, 3], [2]], n_items=3)
    >>> own_events(EvalSet(h, np.array([0, 1, 2]), np.array([1, 2]), np.array([0, 1]))).tolist()
    [3, 1]
    """
    histories = evalset.histories
    own = ~histories.is_followee_event()
    return np.bincount(histories.row_of_event[own], minlength=len(histories)).astype(np.int64)


def by_history_length(
    lengths: npt.NDArray[np.int64],
    per_row: dict[str, npt.NDArray[np.float64]],
    edges: Sequence[int] = HISTORY_EDGES,
) -> list[dict[str, Any]]:
    """Mean per-row metrics of the rows grouped by history length, one dict per non-empty group:
    ``{"events": "5-9", "users": n, metric: mean, ...}``; the last group is open (``"100+"``).

    Examples
    --------
    >>> by_history_length(np.array([1, 3, 7]), {"HR@10": np.array([1.0, 0.0, 1.0])}, (0, 5))
    [{'events': '0-4', 'users': 2, 'HR@10': 0.5}, {'events': '5+', 'users': 1, 'HR@10': 1.0}]
    """
    out: list[dict[str, Any]] = []
    group = np.searchsorted(np.asarray(edges), lengths, side="right") - 1
    for g, lo in enumerate(edges):
        rows = group == g
        if not rows.any():
            continue
        label = f"{lo}-{edges[g + 1] - 1}" if g + 1 < len(edges) else f"{lo}+"
        means = {name: round(_mean(values[rows]), 6) for name, values in per_row.items()}
        out.append({"events": label, "users": int(rows.sum()), **means})
    return out


def targets_in_history(evalset: EvalSet, seen_actions: npt.ArrayLike | None = None) -> float:
    """Share of targets that already occur in their row's history (its own events; of
    ``seen_actions`` where given, as :func:`behaviorlm.recommend.seen_events` counts them).

    With seen-item masking these targets cannot be hit (in a shop, a purchase of an item
    the user viewed before is one); the share says how much of the metric masking removes.

    Examples
    --------
    >>> from behaviorlm.schema import Sequences
    >>> ev = EvalSet(
    ...     histories=Sequences.from_lists([[1, 2], [3]], n_items=4),
    ...     target_offsets=np.array([0, 1, 2]),
    ...     targets=np.array([2, 4]),
    ...     target_event_ids=np.array([5, 6]),
    ... )
    >>> targets_in_history(ev)
    0.5
    """
    h = evalset.histories
    if len(evalset.targets) == 0:
        return 0.0
    width = h.n_items + 1
    own = seen_events(h, seen_actions)  # as recommend masks: a followee's share is not seen
    seen = h.row_of_event[own] * width + h.items[own]
    target_rows = np.repeat(
        np.arange(len(evalset), dtype=np.int64), np.diff(evalset.target_offsets)
    )
    return float(np.isin(target_rows * width + evalset.targets, seen).mean())


def _mean(values: npt.NDArray[np.float64]) -> float:
    return float(values.mean()) if len(values) else 0.0


def _standard_error(values: npt.NDArray[np.float64]) -> float:
    """Standard error of the mean of ``values``: sample standard deviation / sqrt(n).

    Examples
    --------
    >>> round(_standard_error(np.array([1.0, 0.0, 1.0, 0.0])), 6)
    0.288675
    """
    return float(values.std(ddof=1) / np.sqrt(len(values)))

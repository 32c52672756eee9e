"""Evaluation results as plain data: JSON in and out, and a Markdown table of many runs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one model on one evaluation set.

    Attributes
    ----------
    model : str
        Name (or label) of the evaluated model.
    split : str
        Which evaluation set (e.g. ``"test"``, ``"valid"``).
    n_users : int
        Rows the metrics average over.
    ks : tuple of int
        Cut-offs the metrics were computed at.
    metrics : dict
        ``{metric: {k: value}}``, e.g. ``{"HR": {10: 0.1}}``.
    exclude_seen : bool
        Whether items of the history were excluded from the lists.
    seconds : float
        Wall time of ranking plus metrics.
    extra : dict
        Anything else worth keeping (JSON-ready values).
    errors : dict
        ``{metric: {k: standard error}}`` of each accuracy metric's mean over the users
        (sample standard deviation / sqrt(users)); empty for results saved without them.
    per_user : dict
        ``{(metric, k): (users,) values}`` of the accuracy metrics, for paired comparisons
        (:func:`behaviorlm.evaluate.compare.paired_difference`); in JSON only where asked
        (``to_dict(per_user=True)``, ``behaviorlm evaluate --json FILE --per-user``), and
        left out of equality.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {"HR": {10: 0.5}}, True, 0.1)
    >>> EvalResult.from_dict(json.loads(r.to_json())) == r
    True
    >>> r.per_user["HR", 10] = np.array([1.0, 0.0])
    >>> EvalResult.from_dict(r.to_dict(per_user=True)).per_user["HR", 10].tolist()
    [1.0, 0.0]
    """

    model: str
    split: str
    n_users: int
    ks: tuple[int, ...]
    metrics: dict[str, dict[int, float]]
    exclude_seen: bool
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict[int, float]] = field(default_factory=dict)
    per_user: dict[tuple[str, int], npt.NDArray[np.float64]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def to_dict(self, per_user: bool = False) -> dict[str, Any]:
        """JSON-ready data (cut-offs become string keys, as JSON requires); with ``per_user``
        also the per-user values (``"per_user": {"HR@10": [...]}``), so that a result read
        back pairs with another (:func:`behaviorlm.evaluate.compare.paired_difference`)."""
        out = {
            "model": self.model,
            "split": self.split,
            "n_users": self.n_users,
            "ks": list(self.ks),
            "metrics": {
                name: {str(k): float(v) for k, v in values.items()}
                for name, values in self.metrics.items()
            },
            "exclude_seen": self.exclude_seen,
            "seconds": self.seconds,
            "extra": dict(self.extra),
            "standard_errors": {
                name: {str(k): float(v) for k, v in values.items()}
                for name, values in self.errors.items()
            },
        }
        if per_user:
            out["per_user"] = {
                f"{name}@{k}": [float(v) for v in values]
                for (name, k), values in self.per_user.items()
            }
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The result as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict`; ValueError for a part that no evaluation writes (no
        cut-off, one below 1, history-length groups of another shape)."""
        ks = tuple(int(k) for k in data["ks"])
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be cut-offs of 1 and up, got {list(ks)}")
        extra = dict(data.get("extra", {}))
        _check_history_groups(extra.get("by_history_length", []))
        return cls(
            model=str(data["model"]),
            split=str(data["split"]),
            n_users=int(data["n_users"]),
            ks=ks,
            metrics={
                str(name): {int(k): float(v) for k, v in values.items()}
                for name, values in data["metrics"].items()
            },
            exclude_seen=bool(data["exclude_seen"]),
            seconds=float(data["seconds"]),
            extra=extra,
            errors={
                str(name): {int(k): float(v) for k, v in values.items()}
                for name, values in data.get("standard_errors", {}).items()
            },
            per_user=_per_user(data.get("per_user", {}), int(data["n_users"])),
        )


def _check_history_groups(groups: Any) -> None:
    """ValueError unless ``groups`` reads as ``extra["by_history_length"]``: a list of
    ``{"events": "5-9" or "100+", "users": n, "HR@10": mean or None, ...}``."""
    if not isinstance(groups, list):
        raise ValueError(f"by_history_length must be a list, got {type(groups).__name__}")
    for g in groups:
        label = g.get("events") if isinstance(g, dict) else None
        lo, dash, hi = str(label).rstrip("+").partition("-")
        if not (lo.isdigit() and (not dash or hi.isdigit())):
            raise ValueError(f"by_history_length: a group's events {label!r} is no range")
        if not isinstance(g.get("users"), int) or isinstance(g.get("users"), bool):
            raise ValueError(f"by_history_length: group {label} has no user count")
        for key, value in g.items():
            if key in ("events", "users"):
                continue
            _, at, k = str(key).partition("@")
            if not (at and k.isdigit()) or not (
                value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
            ):
                raise ValueError(f"by_history_length: group {label} has {key}={value!r}")


def _per_user(
    saved: Mapping[str, Any], n_users: int
) -> dict[tuple[str, int], npt.NDArray[np.float64]]:
    """Saved per-user values (``{"HR@10": [...]}``) by ``(metric, k)``; ValueError for a key
    that is no ``metric@k`` or a list that is not one value per user."""
    out = {}
    for key, values in saved.items():
        name, at, k = str(key).partition("@")
        if not at or not k.isdigit():
            raise ValueError(f"per-user key {key!r} is not metric@k")
        array = np.asarray(values, dtype=np.float64)
        if array.shape != (n_users,):
            raise ValueError(f"per-user {key} holds {array.size} values for {n_users} users")
        out[name, int(k)] = array
    return out


#: Metrics and cut-offs of the Markdown tables unless named.
SHOWN_METRICS: Final[tuple[str, ...]] = ("HR", "NDCG", "MRR", "Recall")
SHOWN_KS: Final[tuple[int, ...]] = (10, 20)


def markdown_text(text: str) -> str:
    """``text`` for a Markdown table cell: ``|`` escaped, so a label with one stays one cell.

    Examples
    --------
    >>> print(markdown_text("runs/a|b"))
    runs/a\\|b
    """
    return text.replace("|", "\\|")


def markdown_table(
    results: Sequence[EvalResult],
    metrics: Sequence[str] = SHOWN_METRICS,
    ks: Sequence[int] = SHOWN_KS,
    *,
    digits: int = 4,
    errors: bool = False,
) -> str:
    """One Markdown row per result, one column per metric and cut-off; ``-`` where missing;
    with ``errors``, ``value ± standard error`` where the result has one.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {"HR": {10: 0.5}}, True, 0.1)
    >>> print(markdown_table([r], metrics=("HR", "MRR"), ks=(10,)))
    | model | HR@10 | MRR@10 |
    |---|---:|---:|
    | pop | 0.5000 | - |
    """
    columns = [(m, k) for m in metrics for k in ks]
    lines = [
        "| model | " + " | ".join(f"{m}@{k}" for m, k in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for result in results:
        cells = [_cell(result, m, k, digits, errors) for m, k in columns]
        lines.append(f"| {markdown_text(result.model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cutoff_table(
    results: Sequence[EvalResult],
    metrics: Sequence[str] = SHOWN_METRICS,
    ks: Sequence[int] = SHOWN_KS,
    *,
    digits: int = 4,
    errors: bool = False,
) -> str:
    """The metrics as a Markdown table that stays narrow with many cut-offs: one row per
    result and metric, one column per cut-off; ``-`` where missing; with ``errors``, a row
    ``± metric`` of the standard errors under each metric that has them.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (1, 10), {"HR": {1: 0.25, 10: 0.5}}, True, 0.1)
    >>> print(cutoff_table([r], metrics=("HR", "MRR"), ks=(1, 10)))
    | model | metric | @1 | @10 |
    |---|---|---:|---:|
    | pop | HR | 0.2500 | 0.5000 |
    | pop | MRR | - | - |
    >>> r = EvalResult("pop", "test", 4, (10,), {"HR": {10: 0.5}}, True, 0, {}, {"HR": {10: 0.25}})
    >>> table = cutoff_table([r], metrics=("HR",), ks=(10,), errors=True)
    >>> print(*table.splitlines()[2:], sep=chr(10))
    | pop | HR | 0.5000 |
    | pop | ± HR | 0.2500 |
    """
    lines = [
        "| model | metric | " + " | ".join(f"@{k}" for k in ks) + " |",
        "|---|---|" + "---:|" * len(ks),
    ]
    for result in results:
        for m in metrics:
            cells = [_cell(result, m, k, digits) for k in ks]
            lines.append(f"| {markdown_text(result.model)} | {m} | " + " | ".join(cells) + " |")
            spread = result.errors.get(m, {})
            if errors and spread:  # a row of its own: the table stays as narrow
                cells = ["-" if k not in spread else f"{spread[k]:.{digits}f}" for k in ks]
                lines.append(
                    f"| {markdown_text(result.model)} | ± {m} | " + " | ".join(cells) + " |"
                )
    return "\n".join(lines)


def _cell(result: EvalResult, metric: str, k: int, digits: int, errors: bool = False) -> str:
    value = result.metrics.get(metric, {}).get(k)
    if value is None or math.isnan(value):
        return "-"
    error = result.errors.get(metric, {}).get(k) if errors else None
    return f"{value:.{digits}f}" + ("" if error is None else f" ± {error:.{digits}f}")


def nearest_cutoff(ks: Iterable[int], k: int) -> int:
    """The cut-off of ``ks`` nearest ``k`` (the smaller one on a tie).

    Examples
    --------
    >>> nearest_cutoff([5, 20, 50], 10), nearest_cutoff([5, 15], 10)
    (5, 5)
    """
    return min(ks, key=lambda c: (abs(c - k), c))


def cutoff_notes(results: Sequence[EvalResult]) -> list[str]:
    """Notes for cut-offs past the catalogue: a list never holds more than its items, so
    those measure the whole ranked list. One note serves the results that share it, named
    unless it serves them all.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10, 200, 500), {}, True, 0.1, {"n_items": 146})
    >>> from dataclasses import replace
    >>> cutoff_notes([r, replace(r, model="markov")])
    ['the catalogue has 146 items, so @200 and @500 measure the whole ranked list']
    >>> cutoff_notes([r, replace(r, model="knn", ks=(10, 20))])
    ['pop: the catalogue has 146 items, so @200 and @500 measure the whole ranked list']
    """
    notes = []
    for r in results:
        if r.extra.get("n_items") is None:
            continue
        n_items = int(r.extra["n_items"])
        past = [f"@{k}" for k in r.ks if k > n_items]
        if past:
            cuts = " and ".join([", ".join(past[:-1]), past[-1]] if len(past) > 1 else past)
            note = (
                f"the catalogue has {n_items:,} items, so {cuts} "
                f"measure{'s' if len(past) == 1 else ''} the whole ranked list"
            )
            notes.append((r.model, note))
    return shared_notes(notes, len(results))


def error_notes(results: Sequence[EvalResult]) -> list[str]:
    """What the ``±`` of the tables means, where a result has standard errors.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 4, (10,), {"HR": {10: 0.5}}, True, 0, {}, {"HR": {10: 0.25}})
    >>> error_notes([r])[0][:44]
    '± is the standard error of the mean over the'
    """
    if not any(r.errors for r in results):
        return []
    return [
        "± is the standard error of the mean over the users; two models' figures are told "
        "apart only where they differ by more than about twice the error of the difference "
        "(sqrt(a² + b²) for separate users; smaller for the same users, which `evaluate` "
        "compares user by user)"
    ]


def masking_notes(results: Sequence[EvalResult]) -> list[str]:
    """Warnings for results whose seen-item masking hides some targets; one note serves
    the results that share it, named unless it serves them all.

    Examples
    --------
    >>> from dataclasses import replace
    >>> r = EvalResult("pop", "test", 2, (10,), {}, True, 0.1, {"targets_in_history": 0.25})
    >>> masking_notes([r, replace(r, model="markov")])[0][:28]
    '25.0% of the test targets ar'
    >>> masking_notes([r, replace(r, model="knn", exclude_seen=False)])[0][:33]
    'pop: 25.0% of the test targets ar'
    """
    notes = []
    for r in results:
        share = float(r.extra.get("targets_in_history", 0.0))
        if r.exclude_seen and share > 0:
            done = seen_by(r)
            where = (
                f"items the user already did {done} on"
                if done
                else ("items already in the user's history")
            )
            note = (
                f"{share:.1%} of the {r.split or 'evaluation'} targets are {where}; seen-item "
                "masking makes them unreachable (--include-seen counts them; --action NAME "
                "counts as seen only the items done with NAME)"
            )
            notes.append((r.model, note))
    return shared_notes(notes, len(results))


#: ``EvalResult.extra`` key of the actions whose items counted as seen (all, where absent).
SEEN_ACTIONS = "seen_actions"


def seen_by(result: EvalResult) -> str:
    """The actions whose items counted as seen in ``result``, as text (``"purchase"``,
    ``"cart or purchase"``); empty where every item of the history did.

    Examples
    --------
    >>> r = EvalResult("pop", "test", 2, (10,), {}, True, 0.1, {"seen_actions": ["purchase"]})
    >>> seen_by(r), seen_by(EvalResult("pop", "test", 2, (10,), {}, True, 0.1, {}))
    ('purchase', '')
    """
    return " or ".join(str(a) for a in result.extra.get(SEEN_ACTIONS) or [])


def shared_notes(notes: Sequence[tuple[str, str]], results: int) -> list[str]:
    """``(label, note)`` pairs as one line per distinct note, in first-seen order, with the
    labels it serves in front unless it serves all ``results`` results.

    Examples
    --------
    >>> shared_notes([("a", "x"), ("b", "x"), ("c", "y")], 3)
    ['a, b: x', 'c: y']
    >>> shared_notes([("a", "x"), ("b", "x")], 2)
    ['x']
    """
    serves: dict[str, list[str]] = {}
    for label, note in notes:
        serves.setdefault(note, []).append(label)
    return [
        note if len(labels) == results else f"{', '.join(labels)}: {note}"
        for note, labels in serves.items()
    ]

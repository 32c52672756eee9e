"""Evaluate saved artifacts on the split they were trained with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from behaviorlm.artifact import Artifact, as_artifact
from behaviorlm.evaluate.results import SEEN_ACTIONS, EvalResult
from behaviorlm.evaluate.runner import DEFAULT_KS, evaluate
from behaviorlm.schema import Sequences


def item_popularity(train: Sequences) -> np.ndarray:
    """(n_items + 1,) share of training events per item id (index 0 = padding, always 0).

    The users' own events only: a followee event repeats an event counted in its own row.
    """
    items = train.items[(train.items > 0) & ~train.is_followee_event()]
    counts = np.bincount(items, minlength=train.n_items + 1).astype(np.float64)
    share: np.ndarray = counts / max(1.0, counts.sum())
    return share


#: ``EvalResult.extra`` key of the evaluated data set's name.
DATASET = "dataset"


def evaluate_artifact(
    artifact: Artifact | str | Path,
    *,
    on: Literal["test", "valid"] = "test",
    exclude_seen: bool = True,
    seen_actions: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    name: str | None = None,
) -> EvalResult:
    """Full-ranking metrics of an artifact on the test (or validation) part of its own split.

    ``artifact`` may also be the path of a saved one. The split is rebuilt from the config
    stored in the artifact, so the evaluated targets
    are exactly the events the model did not train on. ``name`` labels the result (default:
    the model's name), so that two runs of one model can share a table or a report.
    ``seen_actions`` (action names) counts as seen only the items done with these actions,
    as ``recommend(..., seen_actions=...)`` and ``behaviorlm recommend --action`` do: a
    model trained to predict purchases (``split.target_actions``) is then measured on the
    lists it serves, which still hold what the user only viewed; the names are kept as
    ``extra["seen_actions"]``.

    Examples
    --------
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.train import train
    >>> artifact = train(preprocess(simulate(n_users=100, seed=0)), "pop")
    >>> result = evaluate_artifact(artifact, ks=(10,))
    >>> sorted(result.metrics)[:2]
    ['Coverage', 'HR']
    """
    if on not in ("test", "valid"):
        raise ValueError(f"on must be 'test' or 'valid', got {on!r}")
    artifact = as_artifact(artifact)
    split = artifact.split()
    evalset = split.test if on == "test" else split.valid
    ds = artifact.dataset
    # (code, name) of each action once, in the data set's order: one form of a mask
    mask = (
        None
        if seen_actions is None
        else sorted({(ds.acted_code(name), name) for name in map(ds.action_name, seen_actions)})
    )
    result = evaluate(
        artifact.model,
        evalset,
        ks=tuple(ks),
        exclude_seen=exclude_seen,
        seen_actions=None if mask is None else [code for code, _ in mask],
        item_popularity=item_popularity(split.train),
        split=on,
        name=name,
    )
    if mask is not None:  # the names, as notes and pairing read them
        result.extra[SEEN_ACTIONS] = [name for _, name in mask]
    dataset = artifact.dataset.meta.get("name")
    if dataset:  # kept with the result, for saved results beside new ones
        result.extra[DATASET] = str(dataset)
    return result

"""The evaluation protocol of a run as a config: how a Dataset becomes a Split.

Training saves this config in the artifact; evaluation rebuilds the very same split from it,
so a model is always scored on the events it did not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from behaviorlm.data.dataset import Dataset
from behaviorlm.data.feed import split_with_feed
from behaviorlm.data.split import leave_one_out, temporal_split
from behaviorlm.schema import ACTIONS, Split, builtin_name


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """How to split a data set.

    Attributes
    ----------
    protocol : "leave_one_out" or "temporal"
        Leave-one-out: each user's last target event is the test target, the second last the
        validation target. Temporal: global cut-offs at the given fractions of the time range.
    target_actions : tuple of str
        Actions that can be prediction targets (empty = all actions with an item).
    valid_fraction, test_fraction : float
        Fractions of events (by time) in the validation and test windows of a temporal split.
    followee_actions : tuple of str
        Events of these actions (e.g. ``("share",)``) by the users one follows join one's
        timeline as context events, never targets (:mod:`behaviorlm.data.feed`); empty = none.

    Examples
    --------
    >>> SplitConfig(target_actions=("purchase",)).protocol
    'leave_one_out'
    >>> SplitConfig(followee_actions=("Share",)).followee_actions  # a built-in name, any case
    ('share',)
    """

    protocol: Literal["leave_one_out", "temporal"] = "leave_one_out"
    target_actions: tuple[str, ...] = ()
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    followee_actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol not in ("leave_one_out", "temporal"):
            raise ValueError(
                f"protocol must be 'leave_one_out' or 'temporal', got {self.protocol!r}"
            )
        if self.protocol == "temporal" and not (
            self.valid_fraction > 0
            and self.test_fraction > 0
            and self.valid_fraction + self.test_fraction < 1
        ):
            raise ValueError(
                "split.valid_fraction and split.test_fraction must be above 0 and sum to less "
                f"than 1, got {self.valid_fraction} and {self.test_fraction}"
            )
        for name in ("target_actions", "followee_actions"):
            if isinstance(getattr(self, name), str):
                raise ValueError(f"{name} is a list of action names, got {getattr(self, name)!r}")
            # the data's built-in names in another case read as the built-in ones; so here
            folded = tuple(builtin_name(a, ACTIONS) for a in getattr(self, name))
            object.__setattr__(self, name, folded)


def make_split(dataset: Dataset, config: SplitConfig) -> Split:
    """Split ``dataset`` as ``config`` says (the leakage checks run inside, on the users' own
    events; followee events join after them): the split a training run with this ``[split]``
    config trains and is evaluated on (``Artifact.split`` rebuilds a saved run's).

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> own = make_split(ds, SplitConfig())
    >>> feed = make_split(ds, SplitConfig(followee_actions=("share",)))
    >>> len(feed.test.histories.items) > len(own.test.histories.items)  # with their shares
    True
    """
    targets = list(config.target_actions) or None
    if config.protocol == "leave_one_out":
        split = leave_one_out(dataset, target_actions=targets)
    else:
        split = temporal_split(
            dataset,
            valid_fraction=config.valid_fraction,
            test_fraction=config.test_fraction,
            target_actions=targets,
        )
    if config.followee_actions:
        split = split_with_feed(dataset, split, config.followee_actions)
    return split

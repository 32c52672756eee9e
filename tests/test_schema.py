"""Sequences and EvalSet: the ragged arrays every layer shares."""

from __future__ import annotations

import numpy as np
import pytest

from behaviorlm.schema import EvalSet, Sequences


def test_select_take_and_last() -> None:
    s = Sequences.from_lists([[1, 2, 3], [], [4, 5]], n_items=5)
    assert s.lengths.tolist() == [3, 0, 2]
    picked = s.select(np.array([2, 0, 2]))
    assert picked.items.tolist() == [4, 5, 1, 2, 3, 4, 5]
    assert picked.offsets.tolist() == [0, 2, 5, 7]
    assert picked.users.tolist() == [2, 0, 2]
    last = s.last(2)
    assert last.items.tolist() == [2, 3, 4, 5]
    assert last.lengths.tolist() == [2, 0, 2]
    kept = s.take_events(s.items % 2 == 1)
    assert kept.items.tolist() == [1, 3, 5]
    assert kept.offsets.tolist() == [0, 2, 2, 3]
    assert s.row(0).items.tolist() == [1, 2, 3]


def test_validation_of_shapes() -> None:
    s = Sequences.from_lists([[1, 2]], n_items=2)
    with pytest.raises(ValueError, match="offsets"):
        Sequences(**{**s.__dict__, "offsets": np.array([0, 1])})
    with pytest.raises(ValueError, match="actions has"):
        Sequences(**{**s.__dict__, "actions": np.array([1])})


def test_evalset_select() -> None:
    h = Sequences.from_lists([[1], [2], [3]], n_items=5)
    ev = EvalSet(
        histories=h,
        target_offsets=np.array([0, 1, 3, 4]),
        targets=np.array([2, 3, 4, 5]),
        target_event_ids=np.array([10, 11, 12, 13]),
    )
    sub = ev.select(np.array([1, 2]))
    assert sub.targets.tolist() == [3, 4, 5]
    assert sub.target_offsets.tolist() == [0, 2, 3]
    assert sub.histories.items.tolist() == [2, 3]
    with pytest.raises(ValueError, match="target_offsets"):
        EvalSet(
            histories=h,
            target_offsets=np.array([0, 1]),
            targets=np.array([1]),
            target_event_ids=np.array([0]),
        )

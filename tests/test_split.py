"""Splits: leave-one-out and temporal, target actions, and leakage checks that raise."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import polars as pl
import pytest

from behaviorlm.data.dataset import Dataset
from behaviorlm.data.errors import DataError
from behaviorlm.data.preprocess import preprocess
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.data.split import (
    LeakageError,
    check_no_leakage,
    leave_one_out,
    temporal_cutoffs,
    temporal_split,
)
from behaviorlm.data.synthetic import simulate
from behaviorlm.schema import EvalSet, Sequences


def dataset(rows: list[tuple[str, str | None, int, str]], *, has_time: bool = True) -> Dataset:
    """(user, item, timestamp, action) rows -> Dataset; item ids are numbers so id = number."""
    frame = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
            "action": [r[3] for r in rows],
            "query": ["q" if r[1] is None else None for r in rows],
        }
    ).with_columns(
        pl.lit(None, dtype=RAW_EVENT_DTYPES[c]).alias(c)
        for c in ("value", "device", "location", "source")
    )
    return preprocess(RawData(events=frame.select(list(RAW_EVENT_DTYPES)), has_time=has_time))


def per_row(seqs: Sequences, name: str = "items") -> list[list[int]]:
    values = getattr(seqs, name)
    return [values[a:b].tolist() for a, b in pairwise(seqs.offsets)]


def targets(part: EvalSet) -> list[list[int]]:
    return [part.targets[a:b].tolist() for a, b in pairwise(part.target_offsets)]


def loo_example() -> Dataset:
    v = "view"
    return dataset(
        [
            *[("a", str(i), i, v) for i in (1, 2, 3, 4, 5)],  # events 0..4
            ("b", "1", 1, v),  # events 5, 6: two targets, but no history before the first
            ("b", "2", 2, v),
            ("c", "1", 1, v),  # event 7: one target
            ("d", None, 1, "search"),  # event 8: a search is never a target
            ("d", "3", 2, v),  # event 9
            ("d", "1", 3, v),  # event 10
        ]
    )


def test_leave_one_out_by_hand() -> None:
    split = leave_one_out(loo_example())
    assert split.protocol == "leave_one_out"
    assert per_row(split.train) == [[1, 2, 3], [1, 2], [1], [0]]
    assert split.valid.histories.users.tolist() == [1, 4]
    assert per_row(split.valid.histories) == [[1, 2, 3], [0]]
    assert targets(split.valid) == [[4], [3]]
    assert split.valid.target_event_ids.tolist() == [3, 9]
    assert per_row(split.test.histories) == [[1, 2, 3, 4], [0, 3]]
    assert targets(split.test) == [[5], [1]]
    assert split.test.target_event_ids.tolist() == [4, 10]
    assert per_row(split.test.histories, "event_ids") == [[0, 1, 2, 3], [8, 9]]
    assert split.info["n_evaluated_users"] == 2
    assert split.info["users_too_few_targets"] == 1  # c
    assert split.info["users_short_history"] == 1  # b
    assert split.info["n_train_events"] == 7


def test_leave_one_out_min_history_zero_evaluates_empty_histories() -> None:
    split = leave_one_out(loo_example(), min_history=0)
    assert split.valid.histories.users.tolist() == [1, 2, 4]
    assert per_row(split.valid.histories) == [[1, 2, 3], [], [0]]
    assert targets(split.valid) == [[4], [1], [3]]
    assert per_row(split.test.histories) == [[1, 2, 3, 4], [1], [0, 3]]
    assert per_row(split.train) == [[1, 2, 3], [], [1], [0]]


def test_leave_one_out_target_actions() -> None:
    ds = dataset(
        [
            ("e", "1", 1, "view"),
            ("e", "2", 2, "purchase"),  # validation target
            ("e", "3", 3, "view"),
            ("e", "4", 4, "purchase"),  # test target
            ("e", "5", 5, "view"),  # after the last target: in no split part
            ("f", "1", 1, "view"),
            ("f", "2", 2, "purchase"),  # one purchase only: train
        ]
    )
    split = leave_one_out(ds, target_actions=["purchase"])
    assert per_row(split.train) == [[1], [1, 2]]
    assert targets(split.valid) == [[2]]
    assert per_row(split.valid.histories) == [[1]]
    assert targets(split.test) == [[4]]
    assert per_row(split.test.histories) == [[1, 2, 3]]
    assert split.info["target_actions"] == ["purchase"]
    with pytest.raises(DataError, match="two target events"):
        leave_one_out(ds, target_actions=["share"])
    with pytest.raises(DataError, match="'fly'"):
        leave_one_out(ds, target_actions=["fly"])


def test_timelines_too_short_for_any_split_are_named_as_such() -> None:
    events = pl.DataFrame({"user_id": ["a", "b"], "item_id": ["1", "2"], "timestamp": [1, 2]})
    with pytest.raises(DataError, match="two target events") as error:
        leave_one_out(preprocess(RawData(events=events)))
    # no target actions were chosen: the timelines are short, not the actions wrong
    assert "every user needs 3 events on items or more" in error.value.line()
    assert "target actions" not in (error.value.how or "")
    with pytest.raises(DataError, match="in the validation window") as error:
        temporal_split(preprocess(RawData(events=events)), valid_fraction=0.1, test_fraction=0.1)
    assert "target actions" not in (error.value.how or "")


def test_searches_are_no_targets_and_the_error_says_why() -> None:
    ds = preprocess(simulate(60, seed=0))
    assert "search" in ds.vocab["action"]
    with pytest.raises(DataError, match="no event of the actions search on an item"):
        leave_one_out(ds, target_actions=["search"])


def temporal_example() -> Dataset:
    v = "view"
    return dataset(
        [
            ("a", "1", 1, v),
            ("a", "2", 5, v),
            ("a", "3", 12, v),
            ("a", "3", 15, v),  # same target item again in the window: counted once
            ("a", "4", 16, "purchase"),
            ("a", "5", 22, v),
            ("a", "1", 25, v),
            ("b", "2", 3, v),
            ("b", "3", 21, "purchase"),
            ("c", "4", 11, v),  # cold start in the validation window
            ("c", "5", 23, v),
            ("d", "1", 2, v),
        ]
    )


def test_temporal_split_windows_by_hand() -> None:
    split = temporal_split(temporal_example(), valid_start=10, test_start=20)
    assert split.protocol == "temporal"
    assert per_row(split.train) == [[1, 2], [2], [], [1]]
    assert split.valid.histories.users.tolist() == [1]
    assert per_row(split.valid.histories) == [[1, 2]]
    assert targets(split.valid) == [[3, 4]]
    assert split.test.histories.users.tolist() == [1, 2, 3]
    assert per_row(split.test.histories) == [[1, 2, 3, 3, 4], [2], [4]]
    assert targets(split.test) == [[5, 1], [3], [5]]
    valid_info = split.info["valid"]
    assert isinstance(valid_info, dict)
    assert valid_info["repeated_target_items"] == 1
    assert valid_info["cold_start_users"] == 1
    assert (split.info["valid_start"], split.info["test_start"]) == (10, 20)


def test_temporal_split_target_actions() -> None:
    split = temporal_split(
        temporal_example(), valid_start=10, test_start=20, target_actions=["purchase"]
    )
    assert targets(split.valid) == [[4]]
    assert split.test.histories.users.tolist() == [2]
    assert targets(split.test) == [[3]]
    assert per_row(split.test.histories) == [[2]]


def test_temporal_split_from_fractions() -> None:
    ds = temporal_example()
    cut = temporal_cutoffs(ds, valid_fraction=0.25, test_fraction=0.25)
    split = temporal_split(ds, valid_fraction=0.25, test_fraction=0.25)
    assert (split.info["valid_start"], split.info["test_start"]) == cut
    ts = np.sort(ds.events["timestamp"].to_numpy())
    assert np.mean(ts >= cut[1]) == pytest.approx(0.25, abs=0.1)
    assert np.mean((ts >= cut[0]) & (ts < cut[1])) == pytest.approx(0.25, abs=0.1)


def test_temporal_split_rejects_bad_arguments_and_order_only_data() -> None:
    ds = temporal_example()
    with pytest.raises(ValueError, match="either"):
        temporal_split(ds, valid_start=1, test_start=2, valid_fraction=0.1, test_fraction=0.1)
    with pytest.raises(ValueError, match="after"):
        temporal_split(ds, valid_start=20, test_start=10)
    with pytest.raises(ValueError, match="valid_fraction"):
        temporal_cutoffs(ds, valid_fraction=0.6, test_fraction=0.5)
    with pytest.raises(DataError, match=r"validation window.*move the cut-offs \(valid_start"):
        temporal_split(ds, valid_start=26, test_start=26)
    # fractions on heavily tied times: the fix names what the user gave
    n = 20
    tied = preprocess(
        RawData(
            events=pl.DataFrame(
                {
                    "user_id": [f"u{i % 4}" for i in range(n)],
                    "item_id": [str(i) for i in range(n)],
                    "timestamp": [10] * (n - 1) + [50],
                }
            )
        )
    )
    with pytest.raises(DataError, match=r"validation window.*widen the windows \(split\.valid_f"):
        temporal_split(tied, valid_fraction=0.1, test_fraction=0.1)
    order_only = dataset([("a", "1", 0, "view"), ("a", "2", 1, "view")], has_time=False)
    with pytest.raises(DataError, match="leave_one_out"):
        temporal_split(order_only, valid_start=1, test_start=1)


def test_check_no_leakage_accepts_the_real_splits() -> None:
    check_no_leakage(leave_one_out(loo_example()))
    check_no_leakage(temporal_split(temporal_example(), valid_start=10, test_start=20))


def test_leakage_target_in_train() -> None:
    ds = loo_example()
    split = leave_one_out(ds)
    with pytest.raises(LeakageError, match=r"valid target event\(s\) are also in train"):
        check_no_leakage(replace(split, train=ds.sequences()))


def test_leakage_target_in_own_history() -> None:
    ds = loo_example()
    split = leave_one_out(ds)
    full = ds.sequences().select(split.test.histories.users - 1)
    bad = replace(split.test, histories=full)
    with pytest.raises(LeakageError, match="in their own history"):
        check_no_leakage(replace(split, test=bad))


def test_leakage_history_after_target() -> None:
    ds = dataset(
        [
            ("e", "1", 1, "view"),
            ("e", "2", 2, "purchase"),
            ("e", "3", 3, "view"),
            ("e", "4", 4, "purchase"),
            ("e", "5", 5, "view"),
        ]
    )
    split = leave_one_out(ds, target_actions=["purchase"])
    seqs = ds.sequences()
    # every event but the test target, so the view after it is in the history
    bad = replace(split.test, histories=seqs.take_events(seqs.event_ids != 3))
    with pytest.raises(LeakageError, match="history event at or after their first target"):
        check_no_leakage(replace(split, test=bad))
    # training on the views after the validation target (but not on any target)
    not_targets = seqs.take_events(np.isin(seqs.event_ids, [1, 3], invert=True))
    with pytest.raises(LeakageError, match="training events at or after their first valid target"):
        check_no_leakage(replace(split, train=not_targets))


def test_leakage_temporal_cutoff() -> None:
    split = temporal_split(temporal_example(), valid_start=10, test_start=20)
    moved = replace(split, info={**split.info, "valid_start": 4})
    with pytest.raises(LeakageError, match="train event"):
        check_no_leakage(moved)


def test_split_config_refuses_an_unknown_protocol_and_a_string_of_actions() -> None:
    from behaviorlm.data.protocol import SplitConfig

    with pytest.raises(ValueError, match="'leave_one_out' or 'temporal', got 'bogus'"):
        SplitConfig(protocol="bogus")  # type: ignore[arg-type]
    for name in ("target_actions", "followee_actions"):
        with pytest.raises(ValueError, match=f"{name} is a list of action names"):
            SplitConfig(**{name: "purchase"})  # type: ignore[arg-type]

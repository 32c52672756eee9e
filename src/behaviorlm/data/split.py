"""Train / validation / test splits of a Dataset, with leakage checks that raise.

Two protocols:

* :func:`leave_one_out`: per user, the last target event is the test target and the second
  last the validation target (the SASRec / BERT4Rec protocol).
* :func:`temporal_split`: global cut-off times; everything before ``valid_start`` is
  training data, target events in ``[valid_start, test_start)`` are validation targets and
  target events from ``test_start`` on are test targets.

"Target events" are events with an item whose action is one of ``target_actions`` (all
actions when not given): for example every event is an input but only purchases are
predicted. Event ids are rows of the Dataset's event table, which is sorted by user, time
and input order, so within a user a smaller event id is an earlier event; the leakage checks
rely on this. Everything is vectorised over the CSR arrays of :meth:`Dataset.sequences`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from behaviorlm.data.dataset import Dataset
from behaviorlm.data.errors import DataError
from behaviorlm.schema import Bool, EvalSet, Int, Sequences, Split


class LeakageError(ValueError):
    """A split lets a model see what it is asked to predict (or events after it).

    Examples
    --------
    >>> isinstance(LeakageError("test target event 7 is in train"), ValueError)
    True
    """


def leave_one_out(
    ds: Dataset, *, target_actions: Sequence[str] | None = None, min_history: int = 1
) -> Split:
    """Per user: last target event -> test, second last -> validation, earlier events -> train.

    The timelines hold the users' own events; a model trained with
    ``split.followee_actions`` also reads the followees' events, and is scored on the split
    :func:`behaviorlm.data.protocol.make_split` builds (``Artifact.split`` for a saved run).

    Parameters
    ----------
    ds : Dataset
        A prepared data set.
    target_actions : sequence of str, optional
        Actions whose events can be targets (default: every action); targets need an item.
    min_history : int
        Minimum number of events before the validation target for a user to be evaluated.

    Returns
    -------
    Split
        ``train`` has one row per user: for evaluated users the events before the validation
        target, for the others (fewer than two target events, or a shorter history) all
        their events. ``valid`` rows: history = events before the validation target.
        ``test`` rows: history = all events before the test target (so it holds the
        validation target). One target per row; ``info`` holds the counts and settings.

    Raises
    ------
    DataError
        When no user can be evaluated, or a target action is not in the vocabulary.

    Examples
    --------
    >>> import polars as pl
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.raw import RawData
    >>> events = pl.DataFrame({"user_id": ["u"] * 4, "item_id": ["1", "2", "3", "4"],
    ...                        "timestamp": [1, 2, 3, 4]})
    >>> split = leave_one_out(preprocess(RawData(events=events)))
    >>> split.train.items.tolist(), split.valid.targets.tolist(), split.test.targets.tolist()
    ([1, 2], [3], [4])
    >>> split.test.histories.items.tolist()
    [1, 2, 3]
    """
    if min_history < 0:
        raise ValueError(f"min_history must be >= 0, got {min_history}")
    seqs = ds.sequences()
    is_target, names = _target_mask(ds, seqs, target_actions)
    row = seqs.row_of_event
    n_rows = len(seqs)
    starts, ends = seqs.offsets[:-1], seqs.offsets[1:]

    # rank of each target event from the end of its row: 0 = last target, 1 = second last
    counted = np.cumsum(is_target)
    before_row = np.concatenate([[0], counted])[starts]
    n_targets = np.bincount(row[is_target], minlength=n_rows)
    from_end = n_targets[row] - (counted - before_row[row])
    test_pos = np.full(n_rows, -1, dtype=np.int64)
    valid_pos = np.full(n_rows, -1, dtype=np.int64)
    last = np.flatnonzero(is_target & (from_end == 0))
    second = np.flatnonzero(is_target & (from_end == 1))
    test_pos[row[last]] = last
    valid_pos[row[second]] = second

    enough = n_targets >= 2
    long_enough = valid_pos - starts >= min_history
    evaluated = enough & long_enough
    rows = np.flatnonzero(evaluated)
    if len(rows) == 0:
        none = (
            ""
            if is_target.any()
            else "; the data set has no event"
            + ("" if names is None else f" of the {_describe(names)}")
            + " on an item (a target is an item)"
        )
        how = (
            "choose other target actions (split.target_actions)"
            if target_actions
            else f"every user needs {min_history + 2} events on items or more: give the data "
            "set longer timelines"
        )
        raise DataError(
            f"no user has two target events ({_describe(names)}) after {min_history} "
            f"event(s){none}",
            how=how,
        )
    train = seqs.prefixes(np.arange(n_rows), np.where(evaluated, valid_pos, ends))
    one = np.arange(len(rows) + 1, dtype=np.int64)
    valid = EvalSet(
        histories=seqs.prefixes(rows, valid_pos[rows]),
        target_offsets=one,
        targets=seqs.items[valid_pos[rows]],
        target_event_ids=seqs.event_ids[valid_pos[rows]],
    )
    test = EvalSet(
        histories=seqs.prefixes(rows, test_pos[rows]),
        target_offsets=one,
        targets=seqs.items[test_pos[rows]],
        target_event_ids=seqs.event_ids[test_pos[rows]],
    )
    info: dict[str, object] = {
        "target_actions": names,
        "min_history": min_history,
        "n_users": n_rows,
        "n_evaluated_users": len(rows),
        "users_too_few_targets": int((~enough).sum()),
        "users_short_history": int((enough & ~long_enough).sum()),
        "n_events": len(seqs.items),
        "n_train_events": len(train.items),
    }
    split = Split(train=train, valid=valid, test=test, protocol="leave_one_out", info=info)
    check_no_leakage(split)
    return split


def temporal_cutoffs(
    ds: Dataset, *, valid_fraction: float, test_fraction: float
) -> tuple[int, int]:
    """Cut-off times so that about the last ``test_fraction`` of events (by time) are test
    events and the ``valid_fraction`` before them validation events.

    Returns ``(valid_start, test_start)``: timestamps at the ``1 - valid_fraction -
    test_fraction`` and ``1 - test_fraction`` quantiles (the next observed timestamp upward).

    Examples
    --------
    >>> import polars as pl
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.raw import RawData
    >>> events = pl.DataFrame({"user_id": ["u"] * 10, "item_id": ["i"] * 10,
    ...                        "timestamp": list(range(10))})
    >>> temporal_cutoffs(preprocess(RawData(events=events)), valid_fraction=0.2, test_fraction=0.2)
    (6, 8)
    """
    if not (valid_fraction > 0 and test_fraction > 0 and valid_fraction + test_fraction < 1):
        raise ValueError(
            "need valid_fraction > 0, test_fraction > 0 and valid_fraction + test_fraction < 1, "
            f"got {valid_fraction} and {test_fraction}"
        )
    ts = ds.events["timestamp"].to_numpy()
    q = [1.0 - valid_fraction - test_fraction, 1.0 - test_fraction]
    valid_start, test_start = np.quantile(ts, q, method="higher")
    return int(valid_start), int(test_start)


def temporal_split(
    ds: Dataset,
    *,
    valid_start: int | None = None,
    test_start: int | None = None,
    valid_fraction: float | None = None,
    test_fraction: float | None = None,
    target_actions: Sequence[str] | None = None,
    min_history: int = 1,
) -> Split:
    """Split at global cut-off times (given, or computed from fractions of the events).

    The timelines hold the users' own events, as in :func:`leave_one_out` (followee events:
    :func:`behaviorlm.data.protocol.make_split`).

    Parameters
    ----------
    ds : Dataset
        A prepared data set with real timestamps.
    valid_start, test_start : int, optional
        Cut-off times (seconds, ``valid_start <= test_start``).
    valid_fraction, test_fraction : float, optional
        Instead of the cut-offs: the fractions of events in the two windows
        (see :func:`temporal_cutoffs`).
    target_actions : sequence of str, optional
        Actions whose events can be targets (default: every action); targets need an item.
    min_history : int
        Users with fewer history events before the window are not evaluated (counted in
        ``info`` as cold-start users).

    Returns
    -------
    Split
        ``train``: every event before ``valid_start``. ``valid`` rows: users with target
        events in ``[valid_start, test_start)``; history = their events before
        ``valid_start``; targets = their target items in the window (each item once, in time
        order). ``test`` rows likewise with history = events before ``test_start`` and
        targets from ``test_start`` on.

    Examples
    --------
    >>> import polars as pl
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.raw import RawData
    >>> events = pl.DataFrame({"user_id": ["u"] * 5, "item_id": ["1", "2", "3", "4", "5"],
    ...                        "timestamp": [10, 20, 30, 40, 50]})
    >>> split = temporal_split(preprocess(RawData(events=events)), valid_start=30, test_start=40)
    >>> split.train.items.tolist(), split.valid.targets.tolist(), split.test.targets.tolist()
    ([1, 2], [3], [4, 5])
    """
    given = valid_start is not None or test_start is not None
    fractions = valid_fraction is not None or test_fraction is not None
    if given == fractions:
        raise ValueError(
            "pass either valid_start and test_start, or valid_fraction and test_fraction"
        )
    if not ds.meta.get("has_time", True):
        raise DataError(
            "a temporal split needs timestamps, and this data set only has event order",
            how="use leave_one_out",
        )
    if fractions:
        if valid_fraction is None or test_fraction is None:
            raise ValueError("pass both valid_fraction and test_fraction")
        valid_start, test_start = temporal_cutoffs(
            ds, valid_fraction=valid_fraction, test_fraction=test_fraction
        )
    if valid_start is None or test_start is None:
        raise ValueError("pass both valid_start and test_start")
    if valid_start > test_start:
        raise ValueError(f"valid_start ({valid_start}) is after test_start ({test_start})")
    if min_history < 0:
        raise ValueError(f"min_history must be >= 0, got {min_history}")
    seqs = ds.sequences()
    is_target, names = _target_mask(ds, seqs, target_actions)
    ts = seqs.timestamps
    row = seqs.row_of_event
    # timelines are in time order, so the events before a cut-off are a prefix of each row
    before_valid = ts < valid_start
    before_test = ts < test_start
    stop_valid = seqs.offsets[:-1] + np.bincount(row[before_valid], minlength=len(seqs))
    stop_test = seqs.offsets[:-1] + np.bincount(row[before_test], minlength=len(seqs))
    train = seqs.prefixes(np.arange(len(seqs)), stop_valid)
    in_valid = is_target & ~before_valid & before_test
    valid, valid_info = _window(seqs, in_valid, stop_valid, min_history)
    test, test_info = _window(seqs, is_target & ~before_test, stop_test, min_history)
    for label, part in (("validation", valid), ("test", test)):
        if len(part) == 0:
            raise DataError(
                f"no user has a target event ({_describe(names)}) in the {label} window "
                f"after {min_history} history event(s)",
                how=(
                    "widen the windows (split.valid_fraction, split.test_fraction; where many "
                    "events share a time, a window can be empty even so)"
                    if fractions
                    else "move the cut-offs (valid_start, test_start)"
                )
                + (" or choose other target actions (split.target_actions)" if names else ""),
            )
    info: dict[str, object] = {
        "target_actions": names,
        "min_history": min_history,
        "valid_start": int(valid_start),
        "test_start": int(test_start),
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "n_users": len(seqs),
        "n_events": len(seqs.items),
        "n_train_events": len(train.items),
        "valid": valid_info,
        "test": test_info,
    }
    split = Split(train=train, valid=valid, test=test, protocol="temporal", info=info)
    check_no_leakage(split)
    return split


def check_no_leakage(split: Split) -> None:
    """Raise LeakageError if any evaluation row could see its targets or events after them.

    Checks, for the validation and the test set: no target event is in ``train``; no
    target event is in its own row's history; every history event precedes the row's first
    target (a smaller event id, i.e. earlier in the user's timeline); every training event of
    the row's user precedes that target. For temporal splits (``info`` holding
    ``valid_start`` / ``test_start``) training and history events must also be strictly
    before the cut-off times.

    Examples
    --------
    >>> from behaviorlm.schema import EvalSet, Sequences, Split
    >>> train = Sequences.from_lists([[1, 2]], n_items=3)
    >>> hist = Sequences.from_lists([[1]], n_items=3)
    >>> bad = EvalSet(hist, np.array([0, 1]), np.array([2]), np.array([1]))
    >>> try:
    ...     check_no_leakage(Split(train, bad, bad, "leave_one_out"))
    ... except LeakageError as error:
    ...     print(error)
    leakage: 1 valid target event(s) are also in train (first: event 1)
    """
    train = split.train
    for name, part in (("valid", split.valid), ("test", split.test)):
        hist = part.histories
        tids = part.target_event_ids
        size = 1 + max(_max(train.event_ids), _max(hist.event_ids), _max(tids))
        in_train = np.zeros(size, dtype=np.bool_)
        in_train[train.event_ids] = True
        _raise_if(in_train[tids], tids, f"{name} target event(s) are also in train", "event")

        first_target = _row_reduce(tids, part.target_offsets, np.minimum, size)
        last_history = _row_reduce(hist.event_ids, hist.offsets, np.maximum, -1)
        late = last_history >= first_target
        if late.any():  # a target inside its own history is the worst case: name it
            rows = np.arange(len(part), dtype=np.int64)
            target_row = np.repeat(rows, np.diff(part.target_offsets))
            own = np.isin(target_row * size + tids, hist.row_of_event * size + hist.event_ids)
            _raise_if(own, tids, f"{name} target event(s) are in their own history", "event")
        _raise_if(
            late,
            hist.users,
            f"{name} row(s) have a history event at or after their first target",
            "user",
        )

        n_users = 1 + max(_max(train.users), _max(hist.users))
        last_train = np.full(n_users, -1, dtype=np.int64)
        np.maximum.at(
            last_train, train.users, _row_reduce(train.event_ids, train.offsets, np.maximum, -1)
        )
        _raise_if(
            last_train[hist.users] >= first_target,
            hist.users,
            f"{name} user(s) have training events at or after their first {name} target",
            "user",
        )

    valid_start, test_start = split.info.get("valid_start"), split.info.get("test_start")
    if (
        split.protocol == "temporal"
        and isinstance(valid_start, int)
        and isinstance(test_start, int)
    ):
        for label, seqs, cut in (
            ("train", train, valid_start),
            ("valid history", split.valid.histories, valid_start),
            ("test history", split.test.histories, test_start),
        ):
            _raise_if(
                seqs.timestamps >= cut,
                seqs.event_ids,
                f"{label} event(s) are at or after the cut-off {cut}",
                "event",
            )


# ---------------------------------------------------------------------------- helpers


def _target_mask(
    ds: Dataset, seqs: Sequences, target_actions: Sequence[str] | None
) -> tuple[Bool, list[str] | None]:
    """Events that can be targets (item > 0 and a target action) and the action names."""
    has_item = seqs.items > 0
    if not target_actions:
        return has_item, None
    if isinstance(target_actions, str):
        raise TypeError("target_actions must be a sequence of action names, not a string")
    names = list(dict.fromkeys(target_actions))
    codes = np.array([ds.action_code(a) for a in names], dtype=np.int64)
    return has_item & np.isin(seqs.actions, codes), names


def _describe(names: list[str] | None) -> str:
    return "any action" if names is None else "actions " + ", ".join(names)


def _window(
    seqs: Sequences, is_target: Bool, history_stop: Int, min_history: int
) -> tuple[EvalSet, dict[str, int]]:
    """Rows of users with target events in a window: history prefix + each target item once."""
    row = seqs.row_of_event
    n_rows = len(seqs)
    history_len = history_stop - seqs.offsets[:-1]
    pos = np.flatnonzero(is_target)
    # first event of every (row, item) pair, kept in time order
    _, first = np.unique(row[pos] * (seqs.n_items + 1) + seqs.items[pos], return_index=True)
    unique_pos = pos[np.sort(first)]
    has_target = np.bincount(row[unique_pos], minlength=n_rows) > 0
    evaluated = has_target & (history_len >= min_history)
    kept = unique_pos[evaluated[row[unique_pos]]]
    rows = np.flatnonzero(evaluated)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[kept], minlength=n_rows)[rows], out=offsets[1:])
    part = EvalSet(
        histories=seqs.prefixes(rows, history_stop[rows]),
        target_offsets=offsets,
        targets=seqs.items[kept],
        target_event_ids=seqs.event_ids[kept],
    )
    info = {
        "n_rows": len(rows),
        "n_targets": len(kept),
        "target_events": len(pos),
        "repeated_target_items": len(pos) - len(unique_pos),
        "cold_start_users": int((has_target & ~evaluated).sum()),
    }
    return part, info


def _max(values: Int) -> int:
    return int(values.max()) if len(values) else 0


def _row_reduce(values: Int, offsets: Int, ufunc: np.ufunc, empty: int) -> Int:
    """Reduce ``values`` per CSR row with ``ufunc``; empty rows get ``empty``."""
    out = np.full(len(offsets) - 1, empty, dtype=np.int64)
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(nonempty):
        out[nonempty] = ufunc.reduceat(values, offsets[nonempty])
    return out


def _raise_if(bad: Bool, labels: npt.NDArray[np.int64], what: str, label: str) -> None:
    """Raise LeakageError naming how many entries are bad and the first one."""
    count = int(np.count_nonzero(bad))
    if count:
        first = int(labels[np.flatnonzero(bad)[0]])
        raise LeakageError(f"leakage: {count} {what} (first: {label} {first})")

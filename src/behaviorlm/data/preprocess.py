"""Preprocessing: RawData (external string ids) -> Dataset (contiguous internal ids).

Steps, in order; each one that can drop rows is a step of the data-quality report (rows in,
rows out, drops by reason), named as quoted here:

1. ``"required fields"``: events without a user id or a timestamp are dropped (readers
   guarantee both, so the step only appears for a hand-built RawData that lacks them). A
   hand-built table without every raw column in its type is first read by the readers'
   rules (``"validate"``: defaults, times in seconds, bad rows dropped and counted).
2. Stable time sort by (user, timestamp, input order): equal timestamps keep their input
   order, so order-only inputs (SASRec-style sequence files) keep their order.
3. ``"dedupe"``: exact duplicate events (equal in user_id, item_id, timestamp, action, value,
   query, device, location and source) are dropped; the first in input order is kept, with
   its ``event_id`` and ``truth_*`` columns.
4. ``"collapse repeats"`` (off by default): an event with the same item, action and query as
   the user's previous event is dropped (a run of repeats keeps its first event).
5. ``"min counts"``: iterative k-core. An event is dropped when its item has fewer than
   ``min_item_events`` events or its user fewer than ``min_user_events`` events, repeated
   until a round drops nothing (dropping items can push users under their minimum, which can
   push other items under theirs). User counts include events without an item (searches);
   item counts only count events with that item, and item-less events go only with their user.
6. ``"items table"`` / ``"users table"``: side-table rows of items or users without kept
   events are dropped (and counted apart from missing and duplicate ids); kept items or users
   without a side-table row get nulls. ``"follows table"``: edges are mapped to internal ids;
   edges with a user without kept events, self follows and repeated edges are dropped (a
   follow graph is a set of edges, whatever ``dedupe`` says of events; the first ``since``
   is kept).

Id maps: users ``1..n_users`` and items ``1..n_items`` (0 = padding / none) are numbered in
the natural order of their external ids: by the text before the trailing digits, then by
the value of the trailing number, then by the whole text (``u2 < u10 < v1``, ``2 < 10``).
The numbering does not depend on the order of the input rows, and ids that already run
``1..n`` keep their numbers. Events without an item (searches) get item 0.

Vocabularies code ``action``, ``device``, ``location`` and ``source`` as ``1..len(vocab)``
with 0 = unknown / missing. ``action`` always lists :data:`behaviorlm.schema.ACTIONS` first
(so a built-in action has the same code in every data set: its index + 1), then the custom
actions that occur, sorted. ``source`` likewise starts with :data:`behaviorlm.schema.SOURCES`.
``device`` and ``location`` list the values that occur, sorted.

Everything is vectorised: ids are coded with polars (integers parsed directly when ids are
a common prefix plus a number, one categorical hashing pass otherwise), the event table is
gathered into time order once, and the filters run on numpy views of its code columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from behaviorlm.config import from_dict, to_dict
from behaviorlm.data.coding import Codes, code_ids, code_vocabs, compact_vocab, renumber
from behaviorlm.data.dataset import EVENT_DTYPES, Dataset, check_prepare_paths
from behaviorlm.data.errors import DataError, OnError, Report
from behaviorlm.data.kcore import RoundLimitError, k_core
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.data.readers.normalize import (
    PASSTHROUGH,
    ReadOptions,
    check_seconds,
    far_times,
    fold_typed,
    normalize_events,
)
from behaviorlm.data.readers.tables import normalize_follows, normalize_keyed
from behaviorlm.schema import ACTIONS, SOURCES, TRUTH_PREFIX, Bool, Int


@dataclass(frozen=True, kw_only=True)
class PrepareConfig:
    """How raw events become a Dataset.

    Attributes
    ----------
    dedupe : bool
        Drop exact duplicate events, keeping the first (repeated follow edges are always
        dropped: a follower counts once for reach and exposure).
    collapse_repeats : bool
        Drop an event that repeats the user's previous event (same item, action and query).
    min_user_events : int
        Users with fewer events (searches included) are dropped, iteratively with items.
    min_item_events : int
        Items with fewer events are dropped; together with ``min_user_events`` > 1 this is
        the usual iterative k-core filter.
    max_iterations : int or None
        Upper bound on k-core rounds, not converging within it raising a DataError; None
        (the default): until it converges, which it always does (each round drops an event).

    Examples
    --------
    >>> PrepareConfig(min_user_events=5, min_item_events=5).dedupe
    True
    """

    dedupe: bool = True
    collapse_repeats: bool = False
    min_user_events: int = 1
    min_item_events: int = 1
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        for name in ("min_user_events", "min_item_events", "max_iterations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")


def preprocess(raw: RawData, config: PrepareConfig | Mapping[str, Any] | None = None) -> Dataset:
    """Turn parsed events into a Dataset with contiguous ids, sorted timelines and a report.

    Parameters
    ----------
    raw : RawData
        Events with external ids as read by ``data.io`` or produced by the simulator; events
        built by hand without every column of ``RAW_EVENT_DTYPES`` in its type are read by
        the readers' rules first (no action column: views; times as datetimes or ISO text
        become seconds; bad rows dropped and counted).
    config : PrepareConfig or mapping, optional
        Filters to apply (a mapping such as ``{"min_user_events": 5}`` is read as a
        PrepareConfig, unknown keys refused); the default dedupes and keeps every user and
        item.

    Returns
    -------
    Dataset
        ``meta`` holds ``name``, ``has_time``, ``n_users``, ``n_items``, ``n_events``,
        ``action_counts``, ``min_counts``, ``config`` and ``quality`` (the
        reading steps of ``raw.report`` followed by the preprocessing steps, as dicts).

    Raises
    ------
    DataError
        When no event is left, or the k-core filter does not converge.

    Examples
    --------
    >>> import polars as pl
    >>> events = pl.DataFrame({"user_id": ["b", "a", "b"], "item_id": ["x", "y", "x"],
    ...                        "timestamp": [2, 5, 2]})
    >>> ds = preprocess(RawData(events=events, name="toy"))
    >>> ds.events.select("user", "item", "timestamp").rows()
    [(1, 2, 5), (2, 1, 2)]
    >>> ds.meta["quality"][-1]
    {'step': 'dedupe', 'rows_in': 3, 'rows_out': 2, 'dropped': {'duplicate event': 1}}
    """
    if not isinstance(raw, RawData):
        what = "a prepared Dataset" if isinstance(raw, Dataset) else type(raw).__name__
        raise TypeError(
            f"preprocess reads RawData (from read() or simulate()), got {what}"
            + (": it is preprocessed already" if isinstance(raw, Dataset) else "")
        )
    if config is None:
        config = PrepareConfig()
    elif isinstance(config, Mapping):
        config = from_dict(PrepareConfig, config, where="prepare")
    elif not isinstance(config, PrepareConfig):
        raise TypeError(f"config is a PrepareConfig or a mapping, got {type(config).__name__}")
    report = Report(steps=list(raw.report.steps))
    ev = _require_fields(_complete(_as_read(raw, report)), report)
    if ev.height == 0:
        raise DataError("no events to prepare", where=raw.name or None, how="check the input file")
    table, user_ids, item_ids, vocab = _encode(ev)
    keep, kcore = _filter(table, config, report)
    if not keep.any():
        raise DataError(
            "no events left after preprocessing",
            where=raw.name or None,
            how="lower min_user_events / min_item_events",
        )
    events, users_kept, items_kept = _renumber_events(
        table, keep, len(user_ids), len(item_ids), vocab
    )
    del table
    if not items_kept.any():  # searches alone: nothing to recommend or to learn to
        raise DataError(
            "no item left after preprocessing: every event left is a search",
            where=raw.name or None,
            how="lower min_user_events / min_item_events"
            if len(item_ids)  # the input had items: the filters left none
            else "check the input: a data set needs events on items",
        )

    items = _side_table(raw.items, "item", item_ids.filter(items_kept), item_ids, report)
    users = _side_table(raw.users, "user", user_ids.filter(users_kept), user_ids, report)
    follows = _follows(raw.follows, users, report)
    counts = np.bincount(events["action"].to_numpy(), minlength=len(vocab["action"]) + 1)
    meta: dict[str, Any] = {
        "name": raw.name,
        "has_time": raw.has_time,
        "n_users": users.height,
        "n_items": items.height,
        "n_events": events.height,
        "action_counts": {name: int(counts[k + 1]) for k, name in enumerate(vocab["action"])},
        "min_counts": kcore,
        "config": to_dict(config),
        "quality": report.to_dict(),
    }
    return Dataset(events=events, items=items, users=users, follows=follows, vocab=vocab, meta=meta)


def prepare(
    input_path: str | Path,
    out_dir: str | Path,
    *,
    format: str = "auto",
    mapping: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    strict_actions: bool = False,
    sep: str | None = None,
    name: str | None = None,
    columns: Sequence[str] | None = None,
    config: PrepareConfig | Mapping[str, Any] | None = None,
) -> Dataset:
    """Read ``input_path``, preprocess it and save the Dataset to ``out_dir``.

    The reading options are those of :func:`behaviorlm.data.io.read`, ``config`` that of
    :func:`preprocess`. Refuses (DataError),
    before reading, what ``behaviorlm prepare`` refuses
    (:func:`~behaviorlm.data.dataset.check_prepare_paths`): an input that is a prepared data
    set, an ``out_dir`` whose files would replace the input, a training run's folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "events.csv").write_text("user_id,item_id,timestamp\\nu1,i1,1\\nu1,i2,2\\n")
    >>> prepare(folder / "events.csv", folder / "prepared").n_events
    2
    >>> (folder / "prepared" / "dataset.json").is_file()
    True
    """
    from behaviorlm.data.io import read

    check_prepare_paths(input_path, out_dir)  # before any work, as the CLI
    raw = read(
        input_path,
        format=format,
        mapping=dict(mapping) if mapping is not None else None,
        on_error=on_error,
        strict_actions=strict_actions,
        sep=sep,
        name=name,
        columns=columns,
    )
    dataset = preprocess(raw, config)
    dataset.save(out_dir)
    return dataset


# ---------------------------------------------------------------------------- events


def _encode(
    ev: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.Series, pl.Series, dict[str, list[str]]]:
    """Coded events in (user, time, input order), external ids in code order, vocabularies.

    The table has the Dataset's event columns (ids as codes 0..n-1 with -1 = no item,
    vocabulary columns as codes 1.. with 0 = missing) plus the carried columns.
    """
    user = code_ids(ev["user_id"])
    item = code_ids(ev["item_id"])
    coded = code_vocabs(ev, {"action": ACTIONS, "device": (), "location": (), "source": SOURCES})
    table = pl.DataFrame(
        {
            "user": user.codes,
            "item": item.codes,
            "timestamp": ev["timestamp"],
            "action": coded["action"][0],
            "value": ev["value"],
            "query": ev["query"],
            "device": coded["device"][0],
            "location": coded["location"][0],
            "source": coded["source"][0],
        }
    ).with_columns(ev.select(c for c in ev.columns if _is_carried(c)))
    # one gather puts every column in time order
    order = _time_order(user.codes, ev["timestamp"].to_numpy(), len(user.values))
    vocab = {name: names for name, (_, names) in coded.items()}
    return (table if order is None else table[order]), user.values, item.values, vocab


def _is_carried(column: str) -> bool:
    return column == PASSTHROUGH or column.startswith(TRUTH_PREFIX)


def _filter(
    table: pl.DataFrame, config: PrepareConfig, report: Report
) -> tuple[Bool, dict[str, int]]:
    """Rows of the (time-ordered) table to keep after dedupe, repeats and minimum counts."""
    u, i = table["user"].to_numpy(), table["item"].to_numpy()
    keep = np.ones(table.height, dtype=np.bool_)
    if config.dedupe:
        keep &= _first_distinct(table, u, table["timestamp"].to_numpy(), report)
    if config.collapse_repeats:
        keep &= _collapse(table, keep, u, i, table["action"].to_numpy(), report)
    kcore = _min_counts(keep, u, i, config, report)
    return keep, kcore


def _renumber_events(
    table: pl.DataFrame, keep: Bool, n_users: int, n_items: int, vocab: dict[str, list[str]]
) -> tuple[pl.DataFrame, pl.Series, pl.Series]:
    """The kept rows with ids 1..n over the kept users and items; compacts ``vocab`` in place.

    Returns the event table and the masks of kept user and item codes.
    """
    columns: dict[str, pl.Series | Int | Codes]
    if keep.all():
        # every code occurs: ids are codes + 1 (missing item -1 -> 0), vocabularies stay
        columns = {c: table[c] for c in table.columns}
        columns["user"] = table["user"].cast(pl.Int64) + 1
        columns["item"] = table["item"].cast(pl.Int64) + 1
        users_kept, items_kept = np.ones(n_users, np.bool_), np.ones(n_items, np.bool_)
    else:
        # codes are renumbered in numpy on the kept rows; the other columns are filtered once
        code: dict[str, Codes] = {c: table[c].to_numpy()[keep] for c in _CODE_COLUMNS}
        columns = {}
        columns["user"], users_kept = renumber(code["user"], n_users)
        columns["item"], items_kept = renumber(code["item"], n_items)
        for name, fixed in (
            ("action", ACTIONS),
            ("device", ()),
            ("location", ()),
            ("source", SOURCES),
        ):
            columns[name], vocab[name] = compact_vocab(code[name], vocab[name], len(fixed))
        del code
        rest = table.select(pl.exclude(_CODE_COLUMNS)).filter(pl.Series(keep))
        columns |= {c: rest[c] for c in rest.columns}
    # Built column by column: a frame-wide cast would first align the chunks of every column
    # (the input's columns arrive in many chunks, the coded ones in one) and copy them all.
    carried = [c for c in table.columns if _is_carried(c)]
    events = pl.DataFrame(
        [pl.Series(c, columns[c]).cast(EVENT_DTYPES[c]) for c in EVENT_DTYPES]
        + [pl.Series(c, columns[c]) for c in carried]
    )
    return events, pl.Series(users_kept), pl.Series(items_kept)


def _as_read(raw: RawData, report: Report) -> pl.DataFrame:
    """``raw.events`` as the readers give them: a table without every column of
    ``RAW_EVENT_DTYPES`` in its type (built by hand: no action column, ids as numbers, times
    as datetimes or text) goes through the readers' rules first, so it reads as a file of
    it would (views, from the user, times in seconds; bad rows dropped and counted, as
    events without a user or a time are); a null in a table of those columns stays an
    unknown code. Times in milliseconds are refused either way."""
    events = raw.events
    where = raw.name or "events"
    if all(events.schema.get(c) == dtype for c, dtype in RAW_EVENT_DTYPES.items()):
        if raw.has_time:
            check_seconds(events["timestamp"], where)
            # a few times in milliseconds among seconds: dropped and counted, as a file's are
            far = far_times(events["timestamp"])
            if far.any():
                dropped = {"timestamp out of range": int(far.sum())}
                report.add(f"validate {where}", events.height, int((~far).sum()), dropped)
                events = events.filter(~far)
        return fold_typed(events)
    _complete(events)  # the two columns every events table needs
    opts = ReadOptions(on_error="drop")
    if raw.has_time:  # the timestamps as given, read as times
        return normalize_events(events, where=where, opts=opts, report=report)
    # no real times: numbers stand as the positions they are, anything else gives row order
    positions = events["timestamp"]
    given = positions.dtype.is_integer() and positions.null_count() == 0
    read = normalize_events(
        events.drop("timestamp"), where=where, opts=opts, report=report, has_time=False
    )
    if not given:
        return read
    # the readers number the rows they keep by their place in the input
    return read.with_columns(timestamp=positions.cast(pl.Int64).gather(read["timestamp"]))


def _complete(events: pl.DataFrame) -> pl.DataFrame:
    """Events with every raw column present (missing optional ones as nulls)."""
    missing = {k: v for k, v in RAW_EVENT_DTYPES.items() if k not in ("user_id", "timestamp")}
    for column in ("user_id", "timestamp"):
        if column not in events.columns:
            raise DataError(f"events have no {column!r} column", how="read the input with data.io")
    add = [
        pl.lit(None, dtype=dtype).alias(c)
        for c, dtype in missing.items()
        if c not in events.columns
    ]
    return events.with_columns(add) if add else events


def _require_fields(ev: pl.DataFrame, report: Report) -> pl.DataFrame:
    """Drop (and count) events without a user id or timestamp; absent from the report if none."""
    no_user = ev["user_id"].is_null()
    no_time = ev["timestamp"].is_null() & ~no_user
    dropped = {"missing user_id": int(no_user.sum()), "missing timestamp": int(no_time.sum())}
    if not any(dropped.values()):
        return ev
    out = ev.filter(~(no_user | no_time))
    report.add("required fields", ev.height, out.height, dropped)
    return out


def _time_order(user: Codes, ts: Int, n_users: int) -> Int | None:
    """Input rows in (user, timestamp, input order) order, or None when already sorted.

    A single int64 key ``user * span + (ts - min)`` is sorted with a stable sort when it cannot
    overflow; otherwise polars sorts the two columns (also stably).
    """
    du = np.diff(user)
    if bool(np.all((du > 0) | ((du == 0) & (np.diff(ts) >= 0)))):
        return None
    lo, hi = int(ts.min()), int(ts.max())
    span = hi - lo + 1
    frame = pl.DataFrame({"u": user, "t": ts})
    if n_users * span < 2**62:
        key = frame.select(pl.col("u").cast(pl.Int64) * span + (pl.col("t") - lo))
        index = key.select(pl.arg_sort_by("u", maintain_order=True)).to_series()
    else:
        index = frame.select(pl.arg_sort_by("u", "t", maintain_order=True)).to_series()
    return index.to_numpy()


#: Coded event columns: renumbered (ids) or compacted (vocabularies) after filtering.
_CODE_COLUMNS = ("user", "item", "action", "device", "location", "source")
#: Columns on which two events must agree to be duplicates (all coded, in time order).
_DEDUPE_COLUMNS = list(EVENT_DTYPES)


def _first_distinct(table: pl.DataFrame, u: Codes, t: Int, report: Report) -> Bool:
    """Mask (time order) of events that are not an exact repeat of an earlier event.

    Duplicates share user and timestamp, so only rows in a block of equal (user, timestamp)
    of two or more rows are hashed; the stable sort makes "first" the first in input order.
    """
    n = len(u)
    keep = np.ones(n, dtype=np.bool_)
    same = (u[1:] == u[:-1]) & (t[1:] == t[:-1])
    if bool(same.any()):
        in_block = np.zeros(n, dtype=np.bool_)
        in_block[1:] |= same
        in_block[:-1] |= same
        pos = np.flatnonzero(in_block)
        sub = table.select(_DEDUPE_COLUMNS)[pos]
        first = sub.select(pl.struct(pl.all()).is_first_distinct()).to_series().to_numpy()
        keep[pos[~first]] = False
    kept = int(keep.sum())
    report.add("dedupe", n, kept, {"duplicate event": n - kept})
    return keep


def _collapse(
    table: pl.DataFrame, keep: Bool, u: Codes, i: Codes, a: Codes, report: Report
) -> Bool:
    """Mask (time order) dropping events equal in item, action and query to the previous one."""
    pos = np.flatnonzero(keep)
    uu, ii, aa = u[pos], i[pos], a[pos]
    same = (uu[1:] == uu[:-1]) & (ii[1:] == ii[:-1]) & (aa[1:] == aa[:-1])
    later = np.flatnonzero(same) + 1  # candidate repeats, as indices into pos
    if len(later):
        query = table["query"]
        equal = query.gather(pos[later]).eq_missing(query.gather(pos[later - 1])).to_numpy()
        later = later[equal]
    out = np.ones(len(keep), dtype=np.bool_)
    out[pos[later]] = False
    report.add(
        "collapse repeats",
        len(pos),
        len(pos) - len(later),
        {"repeat of previous event": len(later)},
    )
    return out


def _min_counts(
    keep: Bool,
    u: Codes,
    i: Codes,
    config: PrepareConfig,
    report: Report,
) -> dict[str, int]:
    """Iterative k-core on the kept events (:func:`~behaviorlm.data.kcore.k_core`).

    Clears ``keep`` in place and reports the drops: an event goes with its item when the item
    was under ``min_item_events`` in the round that dropped it, else with its user.
    """
    min_u, min_i = config.min_user_events, config.min_item_events
    if min_u <= 1 and min_i <= 1:
        return {"iterations": 0, "users_dropped": 0, "items_dropped": 0}
    pos = np.flatnonzero(keep)
    try:
        core = k_core(u[pos], i[pos], min_u, min_i, config.max_iterations)
    except RoundLimitError:
        raise DataError(
            f"minimum-count filtering did not converge in {config.max_iterations} rounds",
            how="raise max_iterations",
        ) from None
    keep[pos[~core.keep]] = False
    report.add(
        "min counts",
        len(pos),
        int(np.count_nonzero(core.keep)),
        {
            f"item with fewer than {min_i} events": core.by_item,
            f"user with fewer than {min_u} events": core.by_user,
        },
    )
    return {
        "iterations": core.rounds,
        "users_dropped": core.users_before - core.users_after,
        "items_dropped": core.items_before - core.items_after,
    }


# ---------------------------------------------------------------------------- coding


def _side_table(
    side: pl.DataFrame | None,
    kind: Literal["user", "item"],
    kept_ids: pl.Series,
    input_ids: pl.Series,
    report: Report,
) -> pl.DataFrame:
    """``kind`` (1..n) and ``<kind>_id`` for the kept ids, joined with the side table's columns."""
    key = f"{kind}_id"
    base = pl.DataFrame(
        {kind: np.arange(1, len(kept_ids) + 1, dtype=np.int64), key: kept_ids.alias(key)}
    )
    if side is None:
        return base
    if key not in side.columns:
        raise DataError(f"the {kind}s table has no {key!r} column", how=f"name the id column {key}")
    if kind in side.columns:
        raise DataError(
            f"the {kind}s table has a column named {kind!r}, reserved for internal ids",
            how="rename that column",
        )
    read = {key: pl.String()} | ({"price": pl.Float64()} if kind == "item" else {})
    read |= {c: pl.String() for c in ("title", "category", "text") if kind == "item"}
    if any(side.schema.get(c, dtype) != dtype for c, dtype in read.items()):
        # built by hand (ids as numbers, categories as lists): as a file of it would read
        opts = ReadOptions(on_error="drop")
        side = normalize_keyed(side, key=key, where=f"{kind}s", opts=opts, report=report)
    table = side.with_columns(pl.col(key).cast(pl.String))
    missing = table[key].is_null()
    table = table.filter(~missing)
    first = table[key].is_first_distinct()
    table = table.filter(first)
    matched = table[key].is_in(kept_ids.implode())
    seen = table[key].is_in(input_ids.implode())
    dropped = {
        f"missing {key}": int(missing.sum()),
        f"duplicate {key}": int((~first).sum()),
        f"{kind} has no events": int((~seen).sum()),
        f"all events of the {kind} were dropped": int((seen & ~matched).sum()),
    }
    report.add(f"{kind}s table", side.height, int(matched.sum()), dropped)
    return base.join(table, on=key, how="left", maintain_order="left")


def _follows(follows: pl.DataFrame | None, users: pl.DataFrame, report: Report) -> pl.DataFrame:
    """Follow edges with internal ids; edges whose users have no events are dropped."""
    schema = {"follower": pl.Int64(), "followee": pl.Int64(), "since": pl.Int64()}
    if follows is None:
        return pl.DataFrame(schema=schema)
    for column in ("follower_id", "followee_id"):
        if column not in follows.columns:
            raise DataError(f"the follows table has no {column!r} column", how=f"name it {column}")
    read = {"follower_id": pl.String(), "followee_id": pl.String(), "since": pl.Int64()}
    if all(follows.schema.get(c, dtype) == dtype for c, dtype in read.items()):
        if "since" in follows.columns:  # as a reader gives it: seconds, not milliseconds
            check_seconds(follows["since"], "follows", "since")
    else:  # built by hand (ids as numbers, since as datetimes or text): as a file would read
        opts = ReadOptions(on_error="drop")
        follows = normalize_follows(follows, where="follows", opts=opts, report=report)
    ids = users.select(pl.col("user_id"), pl.col("user"))
    edges = follows.select(
        pl.col("follower_id").cast(pl.String),
        pl.col("followee_id").cast(pl.String),
        (pl.col("since") if "since" in follows.columns else pl.lit(None))
        .cast(pl.Int64)
        .alias("since"),
    )
    missing = edges["follower_id"].is_null() | edges["followee_id"].is_null()
    edges = edges.filter(~missing)
    for role in ("follower", "followee"):
        edges = edges.join(
            ids.rename({"user_id": f"{role}_id", "user": role}),
            on=f"{role}_id",
            how="left",
            maintain_order="left",
        )
    unknown = edges["follower"].is_null() | edges["followee"].is_null()
    edges = edges.filter(~unknown).select(list(schema))
    self_loop = edges["follower"] == edges["followee"]
    # sorted stably, a duplicate edge directly follows its first occurrence
    edges = edges.filter(~self_loop).sort("follower", "followee", maintain_order=True)
    repeat = np.zeros(edges.height, dtype=np.bool_)
    if edges.height:
        a, b = edges["follower"].to_numpy(), edges["followee"].to_numpy()
        repeat[1:] = (a[1:] == a[:-1]) & (b[1:] == b[:-1])
        edges = edges.filter(pl.Series(~repeat))
    report.add(
        "follows table",
        follows.height,
        edges.height,
        {
            "missing follower_id or followee_id": int(missing.sum()),
            "user without events": int(unknown.sum()),
            "self follow": int(self_loop.sum()),
            "duplicate edge": int(repeat.sum()),
        },
    )
    return edges

"""Turn parsed tables into the RawData schema: column mapping, types, defaults, bad rows.

Every reader hands its tables to these functions, so all formats share one set of rules:

* ids are strings, taken as written; a null or empty user id is a bad row, and an empty
  item / query / action / context field counts as absent;
* an event needs an item or a query ("missing item_id and query" otherwise);
* timestamps are integer or float seconds (floats are floored), ISO-8601 / datetime strings,
  or native date / datetime columns; naive datetimes are read as UTC;
* ``value`` must be a finite number when present ("NaN value" covers NaN and infinities)
  that float32 can hold (at most :data:`behaviorlm.schema.MAX_VALUE` in size);
* a null action becomes ``"search"`` on a row with a query and no item, otherwise ``"view"``;
  custom action names are kept unless ``strict_actions`` is set; a null source becomes ``"self"``;
  an action or source that spells a built-in name in another case (``"Purchase"``, ``"SOCIAL"``)
  is that name (:func:`behaviorlm.schema.builtin_name`).

Bad rows are counted by reason (each row under its first reason, in the order of
:data:`EVENT_REASONS`); ``on_error="raise"`` raises for the first reason with bad rows,
``"drop"`` drops and counts them in the report.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from behaviorlm.data.errors import DataError, OnError, Report, check_bad_rows
from behaviorlm.data.raw import RAW_EVENT_DTYPES
from behaviorlm.schema import ACTIONS, EVENT_COLUMNS, MAX_VALUE, SOURCES, TRUTH_PREFIX

#: Reasons an event row is bad, in the order they are checked (a row counts under its first).
EVENT_REASONS: Final[tuple[str, ...]] = (
    "empty user_id",
    "missing item_id and query",
    "missing timestamp",
    "unparsable timestamp",
    "timestamp out of range",
    "NaN value",
    "value out of range",
    "unparsable value",
    "unknown action",
)
#: How to fix each kind of bad row (the ``how`` part of the DataError).
_FIXES: Final[dict[str, str]] = {
    "empty user_id": "fill in user_id on every row",
    "missing item_id and query": "give every event an item_id (or a query for searches)",
    "missing timestamp": "fill in the timestamp on every row",
    "unparsable timestamp": "write timestamps as integer seconds or ISO-8601 text",
    "timestamp out of range": "write every timestamp in seconds since 1970 (this one is past "
    "the year 5138, as a time in milliseconds is)",
    "NaN value": "leave value empty where there is none instead of NaN / inf",
    "value out of range": f"keep values within +-{MAX_VALUE:.3g} (they are stored as float32)",
    "unparsable value": "write value as a number",
    "unknown action": f"use one of {', '.join(ACTIONS)} or turn strict_actions off",
}
#: A header field that is a value, not a name: a number, or a date (and time).
_HEADER_VALUE: Final = re.compile(
    r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|\d{4}-\d{2}-\d{2}([T ].*)?"
)
#: Datetime layouts tried, in order, on timestamp strings that are not numbers.
DATETIME_FORMATS: Final[tuple[str, ...]] = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
#: Columns passed through from an events file besides the schema columns.
PASSTHROUGH: Final[str] = "event_id"


@dataclass(frozen=True)
class ReadOptions:
    """The user's reading options, shared by every reader.

    Attributes
    ----------
    mapping : dict[str, str]
        Schema column -> file column for the events table, e.g. ``{"user_id": "uid"}``.
    on_error : {"raise", "drop"}
        What to do with bad rows.
    strict_actions : bool
        Treat action names outside ``schema.ACTIONS`` as bad rows.
    sep : str or None
        Field separator overriding the format's default (single-file tables and sequences).
    name : str or None
        Data set name; readers default to the file or folder name.
    columns : tuple of str or None
        Names of the fields of a CSV or TSV file without a header row (its first row is
        data); None: the file's first row names them.
    """

    mapping: dict[str, str] = field(default_factory=dict)
    on_error: OnError = "raise"
    strict_actions: bool = False
    sep: str | None = None
    name: str | None = None
    columns: tuple[str, ...] | None = None


def is_event_column(name: str) -> bool:
    """True for the names a mapping may target: schema columns, event_id and truth_* columns."""
    return name in EVENT_COLUMNS or name == PASSTHROUGH or name.startswith(TRUTH_PREFIX)


def plan_columns(
    available: list[str],
    mapping: dict[str, str],
    *,
    where: str,
    need_time: bool = True,
    separator: str | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Decide which file column feeds which schema column.

    Parameters
    ----------
    available : list of str
        The columns of the file.
    mapping : dict
        Schema name -> file column; unmapped schema names are taken from same-named columns,
        in any case ("Action" is ``action`` where no column is named ``action`` itself).
    where : str
        The file, for error messages.
    need_time : bool
        Whether a timestamp column is required.
    separator : str, optional
        The field separator a delimited text file was read with (None: another format): a
        header read as one column that holds another one gets a ``--sep`` hint.

    Returns
    -------
    (dict, list)
        File column -> schema name for every column to keep, and the ignored file columns.

    Examples
    --------
    >>> plan_columns(["uid", "item_id", "timestamp", "x"], {"user_id": "uid"}, where="e.csv")
    ({'uid': 'user_id', 'item_id': 'item_id', 'timestamp': 'timestamp'}, ['x'])
    >>> plan_columns(["user_id ", " item", "ts"], {"item_id": "item", "timestamp": "ts"},
    ...              where="e.csv")[0]
    {' item': 'item_id', 'ts': 'timestamp', 'user_id ': 'user_id'}
    >>> plan_columns(["User_ID", "item_id", "Timestamp", "Action"], {}, where="e.csv")[0]
    {'User_ID': 'user_id', 'item_id': 'item_id', 'Timestamp': 'timestamp', 'Action': 'action'}
    """
    listing = ", ".join(available)
    values = [c for c in available if _HEADER_VALUE.fullmatch(c.strip())] if separator else []
    # a file without a header (its first row taken for the names): a header that names no
    # user_id, or a value mapped as a column; a header's one column named "2019" is a name
    names_user = "user_id" in mapping or any(c.strip().lower() == "user_id" for c in available)
    if values and (not names_user or set(mapping.values()) & set(values)):
        raise DataError(
            f"the first row looks like data, not a header ({', '.join(values[:3])} are values, "
            "not column names)",
            where=where,
            how="name the columns with --columns user_id,item_id,... (columns= in Python), "
            "or add a header row naming them as the file's first line",
        )
    # one column whose name holds another separator: the file is not split where it should be
    other = (
        next((c for c in ";|\t," if separator and c != separator and c in available[0]), None)
        if len(available) == 1
        else None
    )
    unsplit = (
        f"its header reads as one column: pass --sep {other!r} (sep={other!r}); " if other else ""
    )
    # a header written with spaces around a name ("user_id ") names the same column
    spaced = {c.strip(): c for c in available if c != c.strip() and c.strip() not in available}
    mapping = {target: spaced.get(column, column) for target, column in mapping.items()}
    for target, column in mapping.items():
        if not is_event_column(target):
            raise DataError(
                f"unknown schema column {target!r} in the column mapping",
                where=where,
                how=f"map one of {', '.join(EVENT_COLUMNS)}, event_id or a truth_* column",
            )
        if column not in available:
            raise DataError(
                f"mapped column {column!r} (for {target}) is not in the file",
                where=where,
                how=f"{unsplit}choose one of the available columns: {listing}",
            )
    twice = [c for c, n in Counter(mapping.values()).items() if n > 1]
    if twice:
        named = ", ".join(t for t, c in mapping.items() if c == twice[0])
        raise DataError(
            f"column {twice[0]!r} is mapped to more than one schema column ({named})",
            where=where,
            how="map each file column once",
        )
    keep = {column: target for target, column in mapping.items()}
    exact = {c.strip() for c in available}
    for column in available:
        name = column.strip()
        if not is_event_column(name) and name.lower() not in exact:
            name = name.lower()  # "Action" names action, unless the file has an "action" too
        taken = name in mapping or name in keep.values()  # the first of "Action", "ACTION"
        if column not in keep and not taken and is_event_column(name):
            keep[column] = name
    targets = set(keep.values())
    required = ["user_id"] + (["timestamp"] if need_time else [])
    for target in required:
        if target not in targets:
            raise DataError(
                f"required column {target!r} is missing",
                where=where,
                how=f"{unsplit}available columns: {listing}; pass --map {target}=COL "
                f"(mapping={{{target!r}: 'COL'}})",
            )
    if "item_id" not in targets and "query" not in targets:
        raise DataError(
            "events need an 'item_id' or a 'query' column, found neither",
            where=where,
            how=f"available columns: {listing}; pass --map item_id=COL",
        )
    ignored = [c for c in available if c not in keep]
    return keep, ignored


def blank(expr: pl.Expr) -> pl.Expr:
    """Null or empty text (ids are otherwise taken as written, whitespace included)."""
    return expr.is_null() | (expr.cast(pl.String).str.len_bytes() == 0)


#: An event id that is a number: digits without a leading zero ("007" is an id of text).
_EVENT_NUMBER: Final[re.Pattern[str]] = re.compile(r"^(0|-?[1-9]\d*)$")
#: A whole number written with a fraction of zeros ("7.0"), as pandas writes an integer column
#: that holds a missing value.
_WHOLE_TEXT: Final[re.Pattern[str]] = re.compile(r"^-?\d+\.0+$")


def all_match(text: pl.Series, pattern: re.Pattern[str]) -> bool:
    """Whether every value of a String column matches ``pattern`` (and there is one): most
    columns that do not fail on their first value, found without copying the column.

    Examples
    --------
    >>> all_match(pl.Series(["7.0", None]), _WHOLE_TEXT), all_match(pl.Series([None]), _WHOLE_TEXT)
    (True, False)
    """
    first = text.head(1024).drop_nulls().head(1)
    if not len(first):
        first = text.drop_nulls().head(1)
    return (
        len(first) > 0
        and pattern.fullmatch(first[0]) is not None
        and bool(text.str.contains(pattern.pattern).fill_null(True).all())
    )


def as_text(column: pl.Series) -> pl.Series:
    """``column`` as String; floats that are all whole numbers as integers ("7", not "7.0"),
    as pandas writes an id column with a missing value to Parquet, so that they name the same
    ids as the integers of a CSV side table.

    Text of the same form, every value a whole number written with a fraction of zeros (as
    pandas writes such a column to CSV), is read the same way, so that a table names the
    same ids in any format.

    Examples
    --------
    >>> as_text(pl.Series([7.0, None, 12.0])).to_list(), as_text(pl.Series([1.5])).to_list()
    (['7', None, '12'], ['1.5'])
    >>> as_text(pl.Series(["7.0", None, "-12.00"])).to_list(), as_text(pl.Series(["7.0", "x"]))[0]
    (['7', None, '-12'], '7.0')
    >>> as_text(pl.Series(["1.0", "1.00"])).to_list()  # two ids, not one
    ['1.0', '1.00']
    """
    if column.dtype == pl.String:
        if not all_match(column, _WHOLE_TEXT):
            return column
        read = column.str.replace(r"\.0+$", "")
        # "1.0" and "1.00" written for two ids: they stay as written
        return read if read.n_unique() == column.n_unique() else column
    if column.dtype.is_float():
        values = column.drop_nulls()
        largest = values.abs().max()  # None where there is no value
        if (
            isinstance(largest, float)
            and largest < 2**53
            and not values.is_nan().any()
            and (values == values.round(0)).all()
        ):
            return column.cast(pl.Int64).cast(pl.String)
    return column.cast(pl.String)


def builtin_names(column: pl.Series, names: tuple[str, ...]) -> pl.Series:
    """``column`` with each value that spells one of ``names`` in another case (or with spaces
    around it) replaced by that name; :func:`behaviorlm.schema.builtin_name` for a column.

    Examples
    --------
    >>> builtin_names(pl.Series(["Purchase", " view ", "Wishlist", None]), ACTIONS).to_list()
    ['purchase', 'view', 'Wishlist', None]
    """
    if bool(column.is_in(names).fill_null(True).all()):  # names as built in, as most logs
        return column
    # a column of few distinct names: each folded once, then put in place
    distinct = column.unique().drop_nulls()
    folded = distinct.str.strip_chars().str.to_lowercase()
    other = folded.is_in(names).fill_null(False) & (folded != distinct)
    if not other.any():
        return column
    return column.replace(distinct.filter(other), folded.filter(other)).alias(column.name)


def nonempty_text(column: pl.Series) -> pl.Series:
    """``column`` as String (:func:`as_text`) with empty strings turned into nulls.

    Examples
    --------
    >>> nonempty_text(pl.Series(["a", "", None, " "])).to_list()
    ['a', None, None, ' ']
    """
    text = as_text(column)
    empty = (text.str.len_bytes() == 0).fill_null(False)
    return text.set(empty, None) if empty.any() else text


def _parse_times(text: pl.Series, layout: str | None) -> pl.Series:
    """Text as float seconds (``layout=None``) or as a datetime layout, in Float64 seconds
    (microseconds kept)."""
    if layout is None:
        return text.cast(pl.Float64, strict=False)
    parsed = text.str.to_datetime(layout, strict=False, time_zone="UTC", time_unit="us")
    return parsed.dt.epoch("us").cast(pl.Float64) / 1e6


def to_times(column: pl.Series) -> tuple[pl.Series, pl.Series | None]:
    """Timestamps of any supported form as Int64 seconds (floored; null where missing or
    unparsable) and, where some of them have fractions of a second, the same times as Float64
    seconds with their fractions, which order the events within one second (None otherwise).

    Examples
    --------
    >>> seconds, finer = to_times(pl.Series(["10", "2.7", "1970-01-01T00:01:00.5Z", "x", None]))
    >>> seconds.to_list(), finer.to_list()
    ([10, 2, 60, None, None], [10.0, 2.7, 60.5, None, None])
    >>> to_times(pl.Series([10.0, 11.0]))[1] is None, to_times(pl.Series(["10", "12"]))[1]
    (True, None)
    >>> to_times(pl.Series(["1970-01-01T00:00:05Z"], dtype=pl.Categorical))[0].to_list()
    [5]
    """
    dtype = column.dtype
    if isinstance(dtype, pl.Categorical | pl.Enum):  # dictionary-encoded text
        return to_times(column.cast(pl.String))
    if isinstance(dtype, pl.Decimal):
        return to_times(column.cast(pl.Float64))
    if dtype.is_integer():
        return column.cast(pl.Int64), None
    if dtype == pl.Date:
        return column.cast(pl.Datetime("us")).dt.epoch("s"), None
    if dtype.is_float():
        finer = column.cast(pl.Float64)
    elif isinstance(dtype, pl.Datetime):
        finer = column.dt.epoch("us").cast(pl.Float64) / 1e6
    elif dtype != pl.String:
        return pl.repeat(None, len(column), dtype=pl.Int64, eager=True), None
    else:
        whole = column.cast(pl.Int64, strict=False)
        todo = whole.is_null() & column.is_not_null()
        if not todo.any():
            return whole, None
        finer = whole.cast(pl.Float64)
        # Work on the rows still unparsed only, trying float seconds, then each datetime
        # layout (the layouts that parse most of a sample first: a clean column takes one pass)
        rows = todo.arg_true()
        pending = column.gather(rows).str.strip_chars()
        sample = pending.head(1000)
        hits = {
            layout: int(sample.str.to_datetime(layout, strict=False).is_not_null().sum())
            for layout in DATETIME_FORMATS
        }
        layouts: list[str | None] = [None, *sorted(DATETIME_FORMATS, key=lambda f: -hits[f])]
        for layout in layouts:
            parsed = _parse_times(pending, layout)
            got = parsed.is_finite().fill_null(False)
            if got.any():
                finer = finer.scatter(rows.filter(got), parsed.filter(got))
                rows, pending = rows.filter(~got), pending.filter(~got)
            if pending.is_empty():
                break
    seconds = finer.floor().cast(pl.Int64, strict=False)
    fractions = (finer - finer.floor()).fill_null(0.0).fill_nan(0.0) != 0.0
    return seconds, finer if bool(fractions.any()) else None


def to_seconds(column: pl.Series) -> pl.Series:
    """Timestamps of any supported form as Int64 seconds (:func:`to_times`).

    Examples
    --------
    >>> to_seconds(pl.Series(["10", "2.7", "1970-01-01T00:01:00Z", "x", None])).to_list()
    [10, 2, 60, None, None]
    """
    return to_times(column)[0]


#: Earliest time a column must reach to be taken for epoch seconds or dates (1973-03-03):
#: smaller numbers are counts or durations.
_EPOCH_FLOOR = 100_000_000


def holds_times(column: pl.Series) -> bool:
    """Whether a column's values read as times: dates or datetimes, ISO text, or epoch
    seconds from 1973 on (not small numbers such as durations).

    Examples
    --------
    >>> holds_times(pl.Series(["2024-01-03", "2024-01-01"])), holds_times(pl.Series([120, 30]))
    (True, False)
    """
    earliest = to_times(column)[0].min()  # None where no value reads as a time
    return isinstance(earliest, int) and earliest >= _EPOCH_FLOOR


#: Latest plausible timestamp in seconds since 1970 (the year 5138): timestamps beyond it are
#: milliseconds or microseconds.
LATEST_SECONDS: Final = 100_000_000_000


#: Dates written as digits: (smallest, largest, layout, example).
_COMPACT_DATES: Final = (
    (19000101, 21001231, "%Y%m%d", "20240131"),
    (19000101000000, 21001231235959, "%Y%m%d%H%M%S", "20240131130000"),
)


def far_times(seconds: pl.Series) -> pl.Series:
    """The times past the year 5138 as seconds: a few times in milliseconds among seconds,
    which :func:`check_seconds`, reading the median, lets through (bad rows, "timestamp out
    of range").

    Examples
    --------
    >>> far_times(pl.Series([1_700_000_000, 1_700_000_000_000, None])).to_list()
    [False, True, False]
    """
    return (seconds.abs() > LATEST_SECONDS).fill_null(False)


def check_seconds(seconds: pl.Series, where: str, column: str = "timestamp") -> None:
    """DataError where the times of ``column`` are not seconds: dates written as digits
    (20240131), or a median past the year 5138, as milliseconds (about 1.7e12 for 2024) or
    microseconds have.

    Examples
    --------
    >>> check_seconds(pl.Series([1_700_000_000, None]), "x.csv")
    >>> check_seconds(pl.Series([1_700_000_000_000]), "x.csv")
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ...
    >>> check_seconds(pl.Series([20240131, 20240201]), "x.csv")
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: the timestamps look like dates written as digits ...
    """
    if seconds.is_empty() or seconds.null_count() == len(seconds):
        return
    values = seconds.drop_nulls()
    for low, high, layout, example in _COMPACT_DATES:
        # every value a date written as digits: 20240131 would read as August 1970
        if low <= int(values.min()) and int(values.max()) <= high:  # type: ignore[arg-type]
            dates = values.cast(pl.String).str.to_datetime(layout, strict=False)
            if dates.null_count() == 0:
                raise DataError(
                    f"the {_times(column)} look like dates written as digits ({example}), not "
                    "seconds since 1970",
                    where=where,
                    how="write them as ISO-8601 text (2024-01-31, 2024-01-31T13:00:00) or as "
                    "seconds since 1970 before preparing",
                )
    median = float(values.cast(pl.Float64).median())  # type: ignore[arg-type]
    if median <= LATEST_SECONDS:
        return
    unit, factor = (
        ("milliseconds", 1000)
        if median < 1e15
        else ("microseconds", 1_000_000)
        if median < 1e18
        else ("nanoseconds", 1_000_000_000)
    )
    raise DataError(
        f"the {_times(column)} look like {unit} since 1970 (median {median:.4g}, past the "
        "year 5138 as seconds); behaviorlm reads seconds",
        where=where,
        how=f"divide the {column} column by {factor:,} before preparing",
    )


def _times(column: str) -> str:
    """How a message names the times of ``column``: "timestamps", or "since times"."""
    return "timestamps" if column == "timestamp" else f"{column} times"


#: Working column of :func:`normalize_events`: the times to a fraction of a second, which
#: order the events within one second.
FINER = "__finer_time"


def to_values(column: pl.Series) -> pl.Series:
    """Event values as Float64; null where empty or not a number (NaN stays NaN).

    Examples
    --------
    >>> to_values(pl.Series(["4.5", " 3", "", "nan", "x"])).to_list()
    [4.5, 3.0, None, nan, None]
    """
    if column.dtype.is_numeric():
        return column.cast(pl.Float64)
    text = column.cast(pl.String)
    values = text.cast(pl.Float64, strict=False)
    todo = values.is_null() & text.is_not_null()
    if todo.any():
        values = values.fill_null(
            text.set(~todo, None).str.strip_chars().cast(pl.Float64, strict=False)
        )
    return values


#: A reader's data row number of each row of a table (1 = the first row after a header, a
#: JSON Lines file's first object), where it knows it: a bad-row error names the first bad row.
ROW = "__row__"


def count_first_reasons(
    frame: pl.DataFrame, flags: dict[str, pl.Expr]
) -> tuple[dict[str, int], pl.Expr, dict[str, int]]:
    """Count rows under their first bad reason; return the counts, the "any bad" expression
    and, by reason with bad rows, the position of the first of them."""
    seen = pl.lit(False)
    exprs = []
    for reason, flag in flags.items():
        flag = flag.fill_null(False)
        first = flag & ~seen
        exprs += [first.sum().alias(reason), first.arg_true().first().alias(f"{reason}#first")]
        seen = seen | flag
    row = frame.select(exprs).row(0, named=True) if exprs else {}
    counts = {k: int(v) for k, v in row.items() if not k.endswith("#first")}
    firsts = {k[:-6]: int(v) for k, v in row.items() if k.endswith("#first") and v is not None}
    return counts, seen, firsts


def _count_series(
    flags: dict[str, pl.Series], n: int
) -> tuple[dict[str, int], pl.Series, dict[str, int]]:
    """Like :func:`count_first_reasons` for precomputed boolean Series."""
    seen = pl.repeat(False, n, eager=True)
    counts, firsts = {}, {}
    for reason, flag in flags.items():
        flag = flag.fill_null(False)
        first = flag & ~seen
        counts[reason] = int(first.sum())
        if counts[reason]:
            firsts[reason] = int(first.arg_true()[0])
        seen = seen | flag
    return counts, seen, firsts


def raise_bad_rows(
    frame: pl.DataFrame,
    counts: dict[str, int],
    firsts: dict[str, int],
    fixes: dict[str, str],
    *,
    opts: ReadOptions,
    where: str,
) -> None:
    """With ``on_error="raise"``, a DataError for the first reason with bad rows, naming the
    data row of the first one where ``frame`` has the reader's :data:`ROW` numbers."""
    for reason, n in counts.items():
        if n:
            rows = frame.get_column(ROW) if ROW in frame.columns else None
            at = None if rows is None else int(rows[firsts[reason]])
            fix = fixes.get(reason, f"fix the rows with {reason}")
            check_bad_rows({reason: n}, opts.on_error, where=where, how=fix, first_row=at)
            return
    check_bad_rows({}, opts.on_error, where=where, how="")


def carried(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its ``event_id`` in one type whatever the format gave: whole numbers
    (integers in Parquet, digits in CSV or JSON Lines, floats as pandas writes them) as
    Int64, anything else as text ("e-1001", and "007", whose zero is part of the id), so
    that the same events read alike from any format; every other column is returned as it
    is.

    Examples
    --------
    >>> carried(pl.DataFrame({"event_id": ["7", "8"], "truth_x": [1, 2]})).dtypes
    [Int64, Int64]
    >>> carried(pl.DataFrame({"event_id": ["7", "007"]}))["event_id"].to_list()
    ['7', '007']
    """
    if PASSTHROUGH not in frame.columns:
        return frame
    column = frame.get_column(PASSTHROUGH)
    if column.dtype.is_integer():  # unsigned ids past 2**63 stay whole, as text
        whole = column.cast(pl.Int64, strict=False)
        fits = whole.null_count() == column.null_count()
        return frame.with_columns(whole if fits else column.cast(pl.String))
    text = as_text(column)
    if all_match(text, _EVENT_NUMBER):
        numbers = text.cast(pl.Int64, strict=False)
        if numbers.null_count() == text.null_count():  # all fit 64 bits
            return frame.with_columns(numbers)
    return frame.with_columns(text)


def fold_typed(events: pl.DataFrame) -> pl.DataFrame:
    """A table already in ``RAW_EVENT_DTYPES`` read as the readers read a file: built-in
    action and source names in any case or with spaces around them as the names
    (:func:`builtin_names`), and ``event_id`` in one type (:func:`carried`).

    Examples
    --------
    >>> typed = pl.DataFrame({"action": [" Purchase", "wish"], "source": ["SOCIAL", None]})
    >>> fold_typed(typed).rows()
    [('purchase', 'social'), ('wish', None)]
    """
    folded = events.with_columns(
        builtin_names(events.get_column("action"), ACTIONS),
        builtin_names(events.get_column("source"), SOURCES),
    )
    return carried(folded)


def normalize_events(
    frame: pl.DataFrame,
    *,
    where: str,
    opts: ReadOptions,
    report: Report,
    has_time: bool = True,
) -> pl.DataFrame:
    """Coerce, default and validate an events table whose columns carry schema names.

    Parameters
    ----------
    frame : polars.DataFrame
        Schema-named columns (any subset), plus ``event_id`` and ``truth_*`` columns.
    where : str
        The source, for the report step ``"validate <where>"`` and error messages.
    opts : ReadOptions
        ``on_error`` and ``strict_actions`` are used.
    report : Report
        Receives the validation step.
    has_time : bool
        When false, ``timestamp`` becomes the row position in the input.

    Returns
    -------
    polars.DataFrame
        ``RAW_EVENT_DTYPES`` columns in order, then ``event_id`` and ``truth_*`` columns.

    Examples
    --------
    >>> raw = pl.DataFrame({"user_id": ["a", ""], "item_id": ["x", "y"], "timestamp": ["1", "2"]})
    >>> r = Report()
    >>> normalize_events(raw, where="t", opts=ReadOptions(on_error="drop"), report=r).height
    1
    >>> r.steps[0].dropped
    {'empty user_id': 1}
    """
    n = frame.height
    none = pl.repeat(None, n, dtype=pl.String, eager=True)
    false = pl.repeat(False, n, eager=True)

    def text(name: str) -> pl.Series:
        return nonempty_text(frame.get_column(name)) if name in frame.columns else none

    finer: pl.Series | None = None  # times with fractions of a second, where the input has them
    if not has_time:
        seconds, time_missing = pl.int_range(0, n, dtype=pl.Int64, eager=True), false
    else:
        raw_time = frame.get_column("timestamp") if "timestamp" in frame.columns else none
        raw_time = nonempty_text(raw_time) if raw_time.dtype == pl.String else raw_time
        (seconds, finer), time_missing = to_times(raw_time), raw_time.is_null()
        check_seconds(seconds, where)
    if "value" in frame.columns:
        raw_value = frame.get_column("value")
        raw_value = nonempty_text(raw_value) if raw_value.dtype == pl.String else raw_value
        value = to_values(raw_value)
    else:
        raw_value = value = pl.repeat(None, n, dtype=pl.Float64, eager=True)
    work = pl.DataFrame(
        {
            "user_id": text("user_id"),
            "item_id": text("item_id"),
            "timestamp": seconds,
            "action": builtin_names(text("action"), ACTIONS),
            "value": value,
            "query": text("query"),
            "device": text("device"),
            "location": text("location"),
            "source": builtin_names(text("source"), SOURCES),
        }
    )
    flags = {
        "empty user_id": work.get_column("user_id").is_null(),
        "missing item_id and query": work.get_column("item_id").is_null()
        & work.get_column("query").is_null(),
        "missing timestamp": time_missing,
        "unparsable timestamp": seconds.is_null() & ~time_missing,
        "timestamp out of range": far_times(seconds),
        "NaN value": value.is_not_null() & ~value.is_finite(),
        "value out of range": value.is_finite() & (value.abs() > MAX_VALUE),
        "unparsable value": value.is_null() & raw_value.is_not_null(),
    }
    if opts.strict_actions:
        action = work.get_column("action")
        flags["unknown action"] = action.is_not_null() & ~action.is_in(ACTIONS)
    counts, bad, firsts = _count_series(flags, n)
    raise_bad_rows(frame, counts, firsts, _FIXES, opts=opts, where=where)
    extra = [c for c in frame.columns if c == PASSTHROUGH or c.startswith(TRUTH_PREFIX)]
    out = pl.concat([work, carried(frame.select(extra))], how="horizontal") if extra else work
    if finer is not None:  # events within one second in the order they happened
        out = out.with_columns(finer.alias(FINER))
    out = out.filter(~bad) if any(counts.values()) else out
    if finer is not None:
        out = out.sort(FINER, nulls_last=True, maintain_order=True).drop(FINER)
    default_action = (
        pl.when(pl.col("query").is_not_null() & pl.col("item_id").is_null())
        .then(pl.lit("search"))
        .otherwise(pl.lit("view"))
    )
    filled = {"source": pl.col("source").fill_null(pl.lit("self"))}
    if out.get_column("action").null_count():
        filled["action"] = pl.col("action").fill_null(default_action)
    out = out.select(
        *(filled.get(c, pl.col(c)).cast(dtype) for c, dtype in RAW_EVENT_DTYPES.items()), *extra
    )
    report.add(f"validate {where}", n, out.height, counts)
    return out

"""CSV / TSV / Parquet / JSON Lines tables: one events file, or a behaviorlm folder.

A single file is an events table whose columns are mapped to the schema (same-named columns
are taken as they are; ``mapping`` renames others; unmapped columns are dropped and named in
the report). A *behaviorlm folder* holds ``events.<ext>`` and optionally ``items.<ext>``,
``users.<ext>`` and ``follows.<ext>`` with schema column names, ``ext`` one of csv, tsv,
parquet, jsonl (or ndjson).

Files are scanned lazily with polars' native readers; columns that become ids, text or
timestamps are read as strings (so ids keep leading zeros and a bad timestamp is a counted
bad row, not a failed read) and converted in one vectorised pass.
"""

from __future__ import annotations

import csv
import functools
import gzip
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

import polars as pl

from behaviorlm.data.errors import DataError, OnError, Report, check_bad_rows
from behaviorlm.data.raw import RawData
from behaviorlm.data.readers.normalize import (
    PASSTHROUGH,
    ROW,
    ReadOptions,
    holds_times,
    normalize_events,
    plan_columns,
)
from behaviorlm.data.readers.tables import LIST_JOINS, normalize_follows, normalize_keyed
from behaviorlm.schema import EVENT_COLUMNS

#: File extension -> table format.
TABLE_EXTENSIONS: Final[dict[str, str]] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
#: Suffixes of compressed text tables that polars reads as they are (``events.csv.gz``).
COMPRESSED: Final[tuple[str, ...]] = (".gz", ".zst")


def table_name(path: Path) -> tuple[str, str]:
    """The stem and the table suffix of a file, past a compression suffix of a text table.

    Examples
    --------
    >>> table_name(Path("events.csv.gz")), table_name(Path("Events.Parquet"))
    (('events', '.csv'), ('Events', '.parquet'))
    """
    inner = Path(path.stem)
    if path.suffix.lower() in COMPRESSED and inner.suffix.lower() in (".csv", ".tsv", ".jsonl"):
        return inner.stem, inner.suffix.lower()
    return path.stem, path.suffix.lower()


#: Words of a column name that say it holds times (``ts``, ``event_time``, ``eventTime``, ...).
TIME_WORDS: Final = frozenset({"ts", "time", "times", "timestamp", "date", "datetime", "epoch"})


def time_like(name: str) -> bool:
    """Whether a column name says the column holds times: a word of :data:`TIME_WORDS`
    (words split at ``_``, ``-``, spaces and camel case), or a last word ``at`` as in
    ``created_at`` and ``occurredAt``.

    Examples
    --------
    >>> [time_like(n) for n in ("event_time", "eventTime", "created_at", "createdAt", "ts")]
    [True, True, True, True, True]
    >>> [time_like(n) for n in ("rating", "status", "category", "at", "states")]
    [False, False, False, False, False]
    """
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]
    return bool(TIME_WORDS.intersection(words)) or (len(words) > 1 and words[-1] == "at")


def refuse_unmapped_times(
    ignored: Sequence[str], sample: Callable[[list[str]], pl.DataFrame], *, where: str
) -> None:
    """DataError where an events table without a timestamp column has a column left unread
    (``ignored``) that looks like the times: named so (:func:`time_like`) and, in its first
    rows (``sample(columns)``), holding times (:func:`holds_times`; ``watchTime`` may hold
    durations). Its rows would be taken in file order.

    Examples
    --------
    >>> frame = pl.DataFrame({"date": ["2024-01-02"], "watchTime": [30]})
    >>> refuse_unmapped_times(["watchTime"], frame.select, where="e.csv")
    >>> refuse_unmapped_times(["date", "watchTime"], frame.select, where="e.csv")
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: no 'timestamp' column, but 'date' looks like the times ...
    """
    timely = [c for c in ignored if time_like(c)]
    if timely:  # the name says times; so must the values
        rows = sample(timely)
        timely = [c for c in timely if holds_times(rows[c])]
    if timely:
        raise DataError(
            f"no 'timestamp' column, but {timely[0]!r} looks like the times",
            where=where,
            how=f"pass --map timestamp={timely[0]} (mapping={{'timestamp': {timely[0]!r}}})",
        )


#: Table formats and their default field separator (None: not a delimited text format).
TABLE_FORMATS: Final[dict[str, str | None]] = {
    "csv": ",",
    "tsv": "\t",
    "parquet": None,
    "jsonl": None,
}
#: Tables of a behaviorlm folder.
FOLDER_TABLES: Final[tuple[str, ...]] = ("events", "items", "users", "follows")
#: Columns of side tables read as text (ids keep leading zeros; since is parsed like a timestamp).
_SIDE_TEXT: Final[dict[str, tuple[str, ...]]] = {
    "items": ("item_id", "title", "category", "text"),
    "users": ("user_id",),
    "follows": ("follower_id", "followee_id", "since"),
}


def _unreadable(path: Path, fmt: str, error: Exception) -> DataError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    hint = {
        "csv": "check that it is comma-separated with a header row, or pass sep= / --sep",
        "tsv": "check that it is tab-separated with a header row, or pass sep= / --sep",
        "parquet": "check that it is a Parquet file, or pass the right format=",
        "jsonl": "check that it holds one JSON object per line, or pass the right format=",
        "movielens": "check that it is an unmodified MovieLens file",
        "recbole": "check that it is a tab-separated RecBole atomic file with a typed header",
        "sequences": "check that each line is 'user item ...' (pass sep= / --sep for others)",
    }.get(fmt, "check the file and the format")
    if fmt == "jsonl" and _starts_with_bom(path):
        first, hint = "it starts with a byte-order mark", "save it as UTF-8 without a BOM"
    elif isinstance(error, OSError) and path.suffix.lower() in COMPRESSED:
        hint = f"the {path.suffix} file is damaged or cut short: copy or compress it again"
    return DataError(f"cannot read {fmt} file: {first}", where=str(path), how=hint)


def _starts_with_bom(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False


def _delimited(fmt: str, sep: str | None) -> str | None:
    """A folder's ``sep`` for one of its tables: its CSV files only (a TSV file is
    tab-separated by its name)."""
    return sep if fmt == "csv" else None


def _separator(fmt: str, sep: str | None) -> str:
    separator = sep if sep is not None else TABLE_FORMATS[fmt]
    if separator is None or len(separator.encode()) != 1:
        raise DataError(
            f"separator {separator!r} is not a single character",
            how="pass a one-character sep such as ',', ';' or '\\t'",
        )
    return separator


def _check_header(names: list[str], path: Path) -> None:
    """DataError for a CSV or TSV header that polars reads but that is not one: a file whose
    lines end with a carriage return alone, or a header that names a column twice."""
    if any("\r" in name for name in names):  # polars ends lines at \n only
        raise DataError(
            "the lines end with a carriage return alone (\\r, old Mac line endings): "
            "the whole file reads as one header row",
            where=str(path),
            how="end the lines with \\n or \\r\\n (tr '\\r' '\\n' < IN > OUT)",
        )
    for name in names:  # polars renames a repeated name to NAME_duplicated_0
        repeated = re.fullmatch(r"(.+)_duplicated_\d+", name)
        if repeated and repeated.group(1) in names:
            raise DataError(
                f"column {repeated.group(1)!r} appears more than once in the header",
                where=str(path),
                how="rename or drop all but one of them",
            )


def table_columns(
    path: Path, fmt: str, *, sep: str | None = None, names: Sequence[str] | None = None
) -> list[str]:
    """The column names of a table file: from the header or the Parquet schema; a JSON Lines
    file's keys from every line (:func:`_ndjson_schema`); ``names`` for a delimited file
    without a header, checked against its first row's number of fields."""
    try:
        if fmt in ("csv", "tsv"):
            separator = _separator(fmt, sep)
            header = names is None
            lazy = pl.scan_csv(
                path, separator=separator, has_header=header, infer_schema=False, glob=False
            )
            found = lazy.collect_schema().names()
            if names is None:
                _check_header(found, path)
                return found
            if len(found) != len(names):
                raise DataError(
                    f"{len(names)} column names for {len(found)} fields (the first row has "
                    f"{len(found)}, split at {separator!r})",
                    where=str(path),
                    how=f"name all {len(found)} fields with --columns (columns=), in order",
                )
            return list(names)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if holds_nothing(path):
            raise DataError(
                "the file holds no JSON objects", where=str(path), how="write one per line"
            )
        return _ndjson_schema(path, _version(path)).names()
    except DataError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise _unreadable(path, fmt, error) from error


def holds_nothing(path: Path) -> bool:
    """True for a JSON Lines file with nothing but white space in it, which is how a table
    without rows is written in that format (it has no header); a ``.zst`` file is read as
    having rows.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.jsonl").write_text("\\n  \\n"), (d / "b.jsonl").write_text('{"x": 1}\\n')
    >>> holds_nothing(d / "a.jsonl"), holds_nothing(d / "b.jsonl")
    (True, False)
    """
    if path.suffix.lower() == ".zst":
        return False
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


def _literal(path: Path) -> str:
    """``path`` as a pattern that matches only itself, for polars scans that take every path
    as a glob (``scan_ndjson`` has no ``glob=False``): ``[``, ``*`` and ``?`` in a folder or
    file name are escaped as one-character classes.

    Examples
    --------
    >>> _literal(Path("runs/a[1]/e?.jsonl"))
    'runs/a[[]1]/e[?].jsonl'
    """
    return re.sub(r"([\[*?])", r"[\1]", str(path))


def _version(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _ndjson_schema(path: Path, version: tuple[int, int]) -> pl.Schema:
    """The schema of a JSON Lines file from every line (a key that first appears late must
    not be left out), inferred once per version of the file (modification time and size)
    for both the column names and the scan."""
    return pl.scan_ndjson(_literal(path), infer_schema_length=None).collect_schema()


#: A time zone written as a fixed offset (``+05:30``), as pandas writes some; polars reads
#: only named zones.
_OFFSET_ZONE = re.compile(r"^[+-]\d{2}:?\d{2}$")


def _scan_parquet(path: Path) -> pl.LazyFrame:
    """A lazy scan of a Parquet file; times in a fixed-offset zone are read as the same
    instants in UTC (polars cannot read such a column's type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    offset = [
        i
        for i, field in enumerate(schema)
        if pa.types.is_timestamp(field.type) and _OFFSET_ZONE.match(field.type.tz or "")
    ]
    if not offset:
        return pl.scan_parquet(path, glob=False)
    table = pq.read_table(path)
    for i in offset:
        field = schema.field(i)
        utc = table.column(i).cast(pa.timestamp(field.type.unit, tz="UTC"))
        table = table.set_column(i, field.name, utc)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.lazy()


def scan_table(
    path: Path,
    fmt: str,
    *,
    sep: str | None = None,
    text: tuple[str, ...] | list[str] = (),
    infer_rows: int | None = 1000,
    truncate: bool = False,
    names: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """A lazy scan of a table file with the columns ``text`` read as strings; a delimited
    file's other column types are inferred from its first ``infer_rows`` rows (None: all).
    A delimited row with more fields than the header fails the read, or with ``truncate``
    loses its extra fields (:func:`read_rows` finds and counts such rows). ``names`` name
    the fields of a delimited file without a header row, all read as strings (polars would
    take the number of fields from the longest of the first rows, not from ``names``)."""
    overrides = {c: pl.String() for c in text}
    try:
        if fmt in ("csv", "tsv"):
            return pl.scan_csv(
                path,
                has_header=names is None,
                schema=None if names is None else dict.fromkeys(names, pl.String()),
                separator=_separator(fmt, sep),
                schema_overrides=overrides,
                infer_schema_length=infer_rows,
                truncate_ragged_lines=truncate,
                glob=False,
            )
        if fmt == "parquet":
            return _scan_parquet(path)
        schema = dict(_ndjson_schema(path, _version(path)))
        return pl.scan_ndjson(_literal(path), schema={**schema, **overrides})
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise _unreadable(path, fmt, error) from error


def collect(lazy: pl.LazyFrame, path: Path, fmt: str) -> pl.DataFrame:
    """Run a scan, turning parser failures into a DataError that names the file."""
    try:
        return lazy.collect()
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise _unreadable(path, fmt, error) from error


_BLANK = "__blank__"
#: The reason a delimited row with more fields than the header row is dropped under.
TOO_MANY_FIELDS = "more fields than the header"


@dataclass(frozen=True)
class LongRows:
    """The rows of a delimited file with more fields than its header row.

    Attributes
    ----------
    rows : list of int
        Their positions among the file's rows (0 = the first row after the header).
    records : int
        Rows after the header, of any length.
    line, fields : int
        The line where the first such row starts (1 = the header), and its fields.
    header : int
        Fields of the header row.
    """

    rows: list[int]
    records: int
    line: int
    fields: int
    header: int


def _open_text(path: Path) -> TextIO | None:
    """A delimited file (plain or gzip-compressed) as text for :mod:`csv`; None for other
    compressions (``.zst``: the standard library has no reader for it). Bytes that are not
    UTF-8 fail the read, as they fail polars'."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    if suffix in COMPRESSED:
        return None
    return path.open(newline="", encoding="utf-8-sig")


#: The longest field :func:`long_rows` reads (the csv module's default is 128 KiB; polars has
#: no such limit).
_FIELD_LIMIT = 2**31 - 1


def long_rows(
    path: Path, separator: str, copy: TextIO | None = None, names: Sequence[str] | None = None
) -> LongRows | None:
    """Find the rows of a delimited file with more fields than its header row (or than
    ``names``, for a file without one: the copy gets them as its header), by reading it
    with :mod:`csv` (quoted fields may hold the separator and line breaks, as polars reads
    them). None where it cannot be read that way (a ``.zst`` file, bytes that are not UTF-8,
    a quoted field never closed or with text after its closing quote, a row ended by a
    carriage return alone with more rows after it).

    With ``copy``, the file is written there as polars reads every row of it: a quote inside
    a field that does not start with one kept as text (``12" vinyl``, which polars' parser
    refuses), fields quoted where they need it, and rows with more fields than the header
    cut to the header's.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "e.csv"
    >>> _ = p.write_text('u,i\\nu1,i1\\nu2,"i,2"\\nu3,i3,x\\n\\nu4,i4,x,y\\n')
    >>> found = long_rows(p, ",")
    >>> found.rows, found.records, found.line, found.fields, found.header
    ([2, 4], 5, 4, 3, 2)
    """
    text = _open_text(path)
    if text is None:
        return None
    rows: list[int] = []
    line = fields = records = 0
    limit = csv.field_size_limit(_FIELD_LIMIT)
    write = csv.writer(copy, delimiter=separator, lineterminator="\n").writerow if copy else None
    ended_at_return = split_at_return = False

    def lines(handle: TextIO) -> Iterator[str]:
        """The file's lines (their endings kept), minding a carriage return alone: polars
        reads it as text inside an unquoted field, where the csv module ends the row."""
        nonlocal ended_at_return
        for line in handle:
            ended_at_return = line.endswith("\r")
            yield line

    try:
        with text:
            reader = csv.reader(lines(text), delimiter=separator, strict=True)
            # the header (blank lines before it skipped)
            head = list(names) if names is not None else next((r for r in reader if r), [])
            header = len(head)
            if write:
                write(head)
            start = reader.line_num + 1
            ended_before = ended_at_return
            for records, record in enumerate(reader, start=1):
                # the row before ended at a carriage return alone, and this one follows it
                split_at_return |= ended_before
                ended_before = ended_at_return
                if len(record) > header:
                    if not rows:
                        line, fields = start, len(record)
                    rows.append(records - 1)
                if write:
                    write(record[:header])
                start = reader.line_num + 1
    except (csv.Error, OSError, EOFError, UnicodeDecodeError):
        return None
    finally:
        csv.field_size_limit(limit)
    if split_at_return:  # rows split where polars would not: nothing of it is guessed at
        return None
    return LongRows(rows, records, line, fields, header)


def read_rows(
    path: Path,
    fmt: str,
    columns: dict[str, str],
    *,
    sep: str | None = None,
    text: tuple[str, ...] | list[str] = (),
    infer_rows: int | None = 1000,
    on_error: OnError = "raise",
    names: Sequence[str] | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The ``{file column: name}`` columns of a table file (:func:`scan_table`), renamed, and
    the rows dropped by reason. A delimited text file's blank lines (rows with no value, or
    only spaces, in every column of the file, read or not) are skipped and counted as
    ``"blank line"``; its rows with more fields than the header (a value holding the
    separator unquoted) raise a DataError naming the first one's line, or with
    ``on_error="drop"`` are dropped and counted as ``"more fields than the header"``.
    ``names`` name the fields of a delimited file without a header row.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "e.csv"
    >>> _ = p.write_text("a,b\\nx,1\\n,\\n,2\\n  ,\\ny,3,extra\\n")
    >>> frame, dropped = read_rows(p, "csv", {"a": "user"}, text=["a"], on_error="drop")
    >>> frame["user"].to_list(), dropped
    (['x', None], {'blank line': 2, 'more fields than the header': 1})
    """
    lazy = scan_table(path, fmt, sep=sep, text=text, infer_rows=infer_rows, names=names)
    picked = [pl.col(column).alias(name) for column, name in columns.items()]
    if fmt not in ("csv", "tsv"):  # other formats have no blank lines
        return collect(lazy.select(picked).with_row_index(ROW, offset=1), path, fmt), {}
    # a line of spaces is blank too: it fills the first column alone (so one column is
    # stripped, not all: the check stays cheap on large files)
    try:  # a damaged file (a cut .gz) fails here first
        first, *rest = lazy.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise _unreadable(path, fmt, error) from error
    stripped = pl.col(first).cast(pl.String).str.strip_chars()
    empty = pl.col(first).is_null() | (stripped == "")
    blank = (pl.all_horizontal(pl.col(rest).is_null()) & empty if rest else empty).alias(_BLANK)
    long = 0
    try:
        frame = collect(lazy.select(*picked, blank).with_row_index(ROW, offset=1), path, fmt)
    except DataError as error:
        # rows with more fields than the header, or quotes inside fields, which polars'
        # parser refuses: read by the csv module, and by polars from its copy of the file
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / f"rows.{fmt}"
            with copy.open("w", newline="", encoding="utf-8") as out:
                found = long_rows(path, _separator(fmt, sep), out, names)
            if found is None:
                raise
            if found.rows:
                named = "the header" if names is None else "--columns names"
                what = (
                    f"{TOO_MANY_FIELDS} (line {found.line} has {found.fields} fields, "
                    f"{named} {found.header})"
                )
                how = "quote the values that hold the separator"
                check_bad_rows({what: len(found.rows)}, on_error, where=str(path), how=how)
            every = scan_table(copy, fmt, sep=sep, text=text, infer_rows=infer_rows)
            try:
                frame = collect(every.select(*picked, blank).with_row_index(ROW), path, fmt)
            except DataError:
                raise error from None
        if frame.height != found.records:  # polars read the copy otherwise than csv wrote it
            raise
        frame = frame.filter(~pl.col(ROW).is_in(found.rows)).with_columns(pl.col(ROW) + 1)
        long = len(found.rows)
    kept = frame.filter(~pl.col(_BLANK)).drop(_BLANK)
    return kept, {"blank line": frame.height - kept.height, TOO_MANY_FIELDS: long}


def _refuse_nested(path: Path, fmt: str, columns: dict[str, str]) -> None:
    """A DataError for the first of ``columns`` (``{file column: event column}``) that holds
    lists or objects (a Transformers4Rec session table, JSON arrays): an event has one item,
    one action, one time."""
    schema = scan_table(path, fmt).collect_schema()
    for column, target in columns.items():
        dtype = schema.get(column)
        if dtype is not None and dtype.is_nested():
            kind = "objects" if isinstance(dtype, pl.Struct) else "lists"
            named = "" if column == target else f" (read as {target})"
            raise DataError(
                f"column {column!r}{named} holds {kind} ({dtype}); an event has one value there",
                where=str(path),
                how="write one event per row (a session of lists becomes one row per item: "
                "polars' or pandas' explode), or map another column",
            )


def read_events_table(
    path: Path, fmt: str, *, opts: ReadOptions, report: Report, sep: str | None = None
) -> tuple[pl.DataFrame, bool]:
    """Read, map and validate one events table; also whether it has timestamps (without a
    timestamp column the rows are taken to be in time order, and their positions stand in).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.csv"
    >>> _ = p.write_text("uid,item_id,timestamp,junk\\nu1,i1,5,x\\n")
    >>> r = Report()
    >>> frame, has_time = read_events_table(
    ...     p, "csv", opts=ReadOptions(mapping={"user_id": "uid"}), report=r
    ... )
    >>> frame.row(0), has_time
    (('u1', 'i1', 5, 'view', None, None, None, None, 'self'), True)
    >>> r.steps[0].step
    'read e.csv (ignored columns: junk)'
    """
    names = opts.columns
    columns = table_columns(path, fmt, sep=sep, names=names)
    # a header row is checked for a wrong separator and for values (a file without one)
    delimited = _separator(fmt, sep) if fmt in ("csv", "tsv") and names is None else None
    keep, ignored = plan_columns(
        columns, opts.mapping, where=str(path), need_time=False, separator=delimited
    )
    # without a timestamp column the rows are in time order (as sequence files are), unless
    # a column that is not read looks like the times under another name
    has_time = "timestamp" in keep.values()
    if not has_time:
        refuse_unmapped_times(
            ignored,
            lambda columns: collect(
                scan_table(path, fmt, sep=sep, truncate=True, names=names)
                .select(columns)
                .head(1000),
                path,
                fmt,
            ),
            where=str(path),
        )
    # the schema's columns and the client's event ids are text (ids keep leading zeros; times
    # and values are parsed later), and so are the columns not read: a delimited file's types
    # are guessed from its first rows, and a guess that a later row breaks must not stop the
    # read of a column nobody asked for (the blank-line check reads every column)
    text = [c for c, target in keep.items() if target in EVENT_COLUMNS or target == PASSTHROUGH]
    if fmt in ("parquet", "jsonl"):
        _refuse_nested(path, fmt, {c: keep[c] for c in text})
    text += ignored if fmt in ("csv", "tsv") else []
    frame, blank = read_rows(
        path, fmt, keep, sep=sep, text=text, on_error=opts.on_error, names=names
    )
    # columns taken by their name in another case ("Action"), named so the reader can check
    cased = [f"{c} as {t}" for c, t in keep.items() if c.strip() != t and c.strip().lower() == t]
    notes = (
        ([f"ignored columns: {', '.join(ignored)}"] if ignored else [])
        + ([f"read {', '.join(cased)}"] if cased else [])
        + ([] if has_time else ["no timestamp column: rows in file order"])
    )
    step = f"read {path.name}" + (f" ({'; '.join(notes)})" if notes else "")
    report.add(step, frame.height + sum(blank.values()), frame.height, blank)
    events = normalize_events(frame, where=path.name, opts=opts, report=report, has_time=has_time)
    return events, has_time


def read_file(path: Path, fmt: str, opts: ReadOptions) -> RawData:
    """Read a single events file (csv, tsv, parquet or jsonl) into RawData."""
    report = Report()
    events, has_time = read_events_table(path, fmt, opts=opts, report=report, sep=opts.sep)
    name = opts.name or table_name(path)[0]
    return RawData(events=events, name=name, report=report, has_time=has_time)


def table_files(folder: Path, table: str) -> list[Path]:
    """The files in ``folder`` that a folder read takes for ``table`` (any format the
    readers know, compressed too; ``Items.csv`` too: a name written in capitals is the same
    table), sorted; more than one is ambiguous.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("events.csv.gz", "Events.pq", "events_old.csv"):
    ...     _ = (d / name).write_text("")
    >>> [p.name for p in table_files(d, "events")]
    ['Events.pq', 'events.csv.gz']
    """
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and table_name(p)[0].lower() == table
        and table_name(p)[1] in TABLE_EXTENSIONS
    )


def folder_tables(folder: Path) -> dict[str, tuple[Path, str]]:
    """The tables of a behaviorlm folder: name -> (file, format); raises on ambiguous files."""
    found: dict[str, tuple[Path, str]] = {}
    for table in FOLDER_TABLES:
        matches = table_files(folder, table)
        if len(matches) > 1:
            raise DataError(
                f"more than one {table} table: {', '.join(p.name for p in matches)}",
                where=str(folder),
                how=f"keep one {table}.<csv|tsv|parquet|jsonl> file in the folder",
            )
        if matches:
            found[table] = (matches[0], TABLE_EXTENSIONS[table_name(matches[0])[1]])
    return found


#: The columns a side table without rows has (a JSON Lines file of none has no header).
_SIDE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "items": ("item_id",),
    "users": ("user_id",),
    "follows": ("follower_id", "followee_id"),
}


def _read_side(
    table: str, path: Path, fmt: str, sep: str | None, opts: ReadOptions
) -> tuple[pl.DataFrame, dict[str, int]]:
    """A side table's rows as read (:func:`read_rows`), with blank lines counted; an empty
    JSON Lines file is the table without rows, as a delimited file with only its header."""
    if fmt == "jsonl" and holds_nothing(path):
        return pl.DataFrame(schema=dict.fromkeys(_SIDE_KEYS[table], pl.String)), {}
    columns = table_columns(path, fmt, sep=sep)
    delimited = fmt in ("csv", "tsv")
    # a delimited file's every column as text, its other columns typed below
    text = columns if delimited else [c for c in _SIDE_TEXT[table] if c in columns]
    if fmt == "jsonl" and table == "items":  # lists of item text stay lists, to be
        schema = _ndjson_schema(path, _version(path))  # joined (tables.item_text)
        text = [c for c in text if not (c in LIST_JOINS and isinstance(schema[c], pl.List))]
    # types from every row: a side table is small, and a price of 1.5 after 1,000 whole
    # numbers must not fail the read
    frame, blank = read_rows(
        path,
        fmt,
        {c: c for c in columns},
        sep=sep,
        text=text,
        infer_rows=None,
        on_error=opts.on_error,
    )
    if delimited:  # price is read by the items' rules (tables.normalize_keyed)
        kept = {*_SIDE_TEXT[table], "price"}
        frame = frame.with_columns(
            typed_text(frame[c])
            for c in frame.columns
            if c not in kept and frame.schema[c] == pl.String
        )
    return frame, blank


#: A number written with a leading zero ("007", "01234"): a code, kept as text.
_LEADING_ZERO: Final = r"^[+-]?0[0-9]"
#: A whole number, and a number in decimal or exponent notation (no nan, no inf), in ASCII
#: digits (a regex's \d takes every script's digits, which a number's cast refuses).
_INTEGER: Final = r"^[+-]?[0-9]+$"
_NUMBER: Final = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def typed_text(column: pl.Series) -> pl.Series:
    """A delimited file's text column as the values it holds: whole numbers, numbers, or
    true and false, where every value is one, and text otherwise. A value with a leading zero
    (a code: a ZIP code, a UPC), a whole number past 64 bits, or ``nan`` / ``inf`` keeps
    the column text, as a JSON Lines file or Parquet keeps it, where a guess from the file
    would drop the zero.

    Examples
    --------
    >>> [typed_text(pl.Series(v)).to_list() for v in (["7", None], ["1.5", "2"], ["TRUE", "false"])]
    [[7, None], [1.5, 2.0], [True, False]]
    >>> typed_text(pl.Series(["012345", "12"])).to_list(), typed_text(pl.Series(["a"])).dtype
    (['012345', '12'], String)
    >>> typed_text(pl.Series(["12345678901234567891"])).dtype, typed_text(pl.Series(["nan"])).dtype
    (String, String)
    >>> typed_text(pl.Series(["1e999", "1"])).dtype, typed_text(pl.Series(["١.٥", "3"])).dtype
    (String, String)
    """
    stripped = column.str.strip_chars()
    values = stripped.drop_nulls()
    if values.is_empty() or values.str.contains(_LEADING_ZERO).any():
        return column
    if values.str.to_lowercase().is_in(["true", "false"]).all():
        return stripped.str.to_lowercase() == "true"
    for pattern, dtype in ((_INTEGER, pl.Int64), (_NUMBER, pl.Float64)):
        if values.str.contains(pattern).all():  # exact (within 64 bits, finite) or text
            typed = stripped.cast(dtype, strict=False)
            exact = typed.null_count() == column.null_count()
            return typed if exact and bool(typed.drop_nulls().is_finite().all()) else column
    return column


def read_folder(folder: Path, opts: ReadOptions) -> RawData:
    """Read a behaviorlm folder: events plus optional items, users and follows tables.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "events.csv").write_text("user_id,item_id,timestamp\\nu1,i1,5\\n")
    >>> _ = (d / "items.csv").write_text("item_id,title\\ni1,One\\n")
    >>> raw = read_folder(d, ReadOptions())
    >>> raw.events.height, raw.items is not None and raw.items["title"].to_list()
    (1, ['One'])
    """
    tables = folder_tables(folder)
    if "events" not in tables:
        raise DataError(
            "no events table in the folder",
            where=str(folder),
            how="add events.<csv|tsv|parquet|jsonl> or pass the events file itself",
        )
    report = Report()
    path, fmt = tables["events"]
    events, has_time = read_events_table(
        path, fmt, opts=opts, report=report, sep=_delimited(fmt, opts.sep)
    )
    sides: dict[str, pl.DataFrame] = {}
    for table in ("items", "users", "follows"):
        if table not in tables:
            continue
        path, fmt = tables[table]
        frame, blank = _read_side(table, path, fmt, _delimited(fmt, opts.sep), opts)
        report.add(f"read {path.name}", frame.height + sum(blank.values()), frame.height, blank)
        if table == "follows":
            sides[table] = normalize_follows(frame, where=path.name, opts=opts, report=report)
        else:
            key = "item_id" if table == "items" else "user_id"
            sides[table] = normalize_keyed(
                frame, key=key, where=path.name, opts=opts, report=report
            )
    return RawData(
        events=events,
        items=sides.get("items"),
        users=sides.get("users"),
        follows=sides.get("follows"),
        name=opts.name or folder.resolve().name,
        report=report,
        has_time=has_time,
    )

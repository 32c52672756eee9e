"""Read behaviour logs of every supported format into :class:`~behaviorlm.data.raw.RawData`.

:func:`read` is the one entry point. It detects the format from the path (or takes
``format=``), hands the files to a reader in :mod:`behaviorlm.data.readers`, and returns
events in the schema with every reading step's rows in and out recorded in ``raw.report``.

Formats and how ``format="auto"`` recognises them:

============  =====================================================================
format        recognised by
============  =====================================================================
folder        a folder holding ``events.<csv|tsv|parquet|jsonl>`` (+ items/users/follows)
movielens     a folder with ``u.data`` (100K), ``ratings.dat`` (1M/10M) or
              ``ratings.csv`` + ``movies.csv`` (20M/25M/latest), or its ratings file
              (one of another name, as the 100K split ``u1.base``, with ``format=``)
recbole       a ``NAME.inter`` file, or a folder holding one
csv, tsv      ``.csv`` / ``.tsv`` files: one events table with a header
parquet       ``.parquet`` / ``.pq`` files
jsonl         ``.jsonl`` / ``.ndjson`` files: one JSON object per line
sequences     ``.txt`` files: SASRec pairs or S3Rec rows, no timestamps
============  =====================================================================

Rules shared by all formats (see :mod:`behaviorlm.data.readers.normalize`): ids are
strings as written; timestamps are seconds (integers, floored floats, ISO-8601 text or
native datetimes, naive ones read as UTC); a missing action is ``"view"`` (``"search"`` for a
query without an item); a missing source is ``"self"``; an action or source that spells a
built-in name in another case is that name; bad rows are counted by reason and
either raise (``on_error="raise"``) or are dropped (``"drop"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, get_args

from behaviorlm.data.errors import DataError, OnError
from behaviorlm.data.raw import RawData
from behaviorlm.data.readers.movielens import movielens_layout, read_movielens
from behaviorlm.data.readers.normalize import ReadOptions
from behaviorlm.data.readers.recbole import read_recbole
from behaviorlm.data.readers.seqtext import read_sequences
from behaviorlm.data.readers.tabular import (
    TABLE_EXTENSIONS,
    TABLE_FORMATS,
    folder_tables,
    read_file,
    read_folder,
    table_name,
)

Format = Literal[
    "auto", "csv", "tsv", "parquet", "jsonl", "folder", "movielens", "recbole", "sequences"
]
#: Every value ``format=`` accepts.
FORMATS: Final[tuple[str, ...]] = get_args(Format)
#: File names that stand for their MovieLens folder.
MOVIELENS_FILES: Final[tuple[str, ...]] = ("u.data", "ratings.dat")


#: Archives and compressions that are not read: what to do with each.
UNREAD_PACKING: Final[dict[str, str]] = {
    **dict.fromkeys(
        (".zip", ".tar", ".tgz", ".7z", ".rar"), "unpack it and pass the folder or file inside"
    ),
    **dict.fromkeys(
        (".bz2", ".xz", ".lz4"), "decompress it, or compress it with gzip (.gz) or zstd (.zst)"
    ),
}


def _refuse_packing(path: Path) -> None:
    """DataError for an archive or a compression that no reader opens."""
    suffix = path.suffix.lower()
    if path.is_file() and suffix in UNREAD_PACKING:
        kind = "archive" if "unpack" in UNREAD_PACKING[suffix] else "compressed file"
        raise DataError(
            f"a {suffix} {kind} is not read", where=str(path), how=UNREAD_PACKING[suffix]
        )


def detect_format(path: str | Path) -> str:
    """The format :func:`read` would use for ``path`` with ``format="auto"``.

    Examples
    --------
    >>> detect_format("logs/events.parquet"), detect_format("Beauty.txt")
    ('parquet', 'sequences')
    """
    path = Path(path)
    if path.is_dir():
        if "events" in folder_tables(path):
            return "folder"
        if movielens_layout(path) is not None:
            return "movielens"
        if any(path.glob("*.inter")):
            return "recbole"
        listing = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
        raise DataError(
            f"cannot tell the format of this folder (it holds {listing})",
            where=str(path),
            how="add events.<csv|tsv|parquet|jsonl>, or pass the events file or format=",
        )
    if path.name in MOVIELENS_FILES or (
        path.name == "ratings.csv" and movielens_layout(path.parent) == "20m"
    ):
        return "movielens"
    suffix = table_name(path)[1]  # events.csv.gz: polars reads it compressed
    if suffix == ".inter":
        return "recbole"
    if suffix in TABLE_EXTENSIONS:
        return TABLE_EXTENSIONS[suffix]
    if suffix == ".txt":
        return "sequences"
    _refuse_packing(path)
    raise DataError(
        f"cannot tell the format of a {suffix or 'extension-less'} file",
        where=str(path),
        how=f"pass format= one of {', '.join(FORMATS[1:])} (--format)",
    )


def _column_names(columns: Sequence[str], path: Path) -> tuple[str, ...]:
    """``columns`` checked to name each field once."""
    names = tuple(columns)
    if (
        isinstance(columns, str)
        or not names
        or any(not isinstance(n, str) or not n.strip() for n in names)
    ):
        raise DataError(
            f"columns must be a list of non-empty names, got {columns!r}",
            where=str(path),
            how="pass columns=['user_id', 'item_id', ...] (--columns user_id,item_id,...)",
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(
            f"columns names {', '.join(map(repr, twice))} more than once",
            where=str(path),
            how="give every field its own name",
        )
    return names


def _check_arguments(path: Path, fmt: str, opts: ReadOptions) -> None:
    if opts.on_error not in get_args(OnError):
        raise DataError(f"on_error must be 'raise' or 'drop', got {opts.on_error!r}")
    if opts.mapping and fmt in ("movielens", "sequences"):
        raise DataError(
            f"a column mapping does not apply to the {fmt} format",
            where=str(path),
            how="drop the mapping (--map), or convert the data to a CSV events file",
        )
    if opts.sep is not None and fmt not in ("csv", "tsv", "sequences", "folder"):
        raise DataError(
            f"sep applies to csv, tsv and sequence files (and those of a folder), not to the "
            f"{fmt} format",
            where=str(path),
            how="drop sep (--sep)",
        )
    if opts.columns is not None and fmt not in ("csv", "tsv"):
        raise DataError(
            f"columns name the fields of a CSV or TSV file without a header, not of the "
            f"{fmt} format",
            where=str(path),
            how="drop columns (--columns), or pass the CSV or TSV file itself",
        )
    if fmt == "folder" and not path.is_dir():
        raise DataError(
            "format 'folder' needs a folder",
            where=str(path),
            how="pass the folder holding events.*",
        )
    if fmt in (*TABLE_FORMATS, "sequences") and path.is_dir():
        raise DataError(
            f"format {fmt!r} needs a file, got a folder",
            where=str(path),
            how="pass the file itself, or format='auto' for a folder",
        )


def read(
    path: str | Path,
    *,
    format: str = "auto",
    mapping: dict[str, str] | None = None,
    on_error: OnError = "raise",
    strict_actions: bool = False,
    sep: str | None = None,
    name: str | None = None,
    columns: Sequence[str] | None = None,
) -> RawData:
    """Read behaviour logs into RawData (events in the schema, side tables, report).

    Parameters
    ----------
    path : str or Path
        A file or folder; see the module docstring for what each format looks like.
    format : str
        ``"auto"`` (detect from the path) or one of ``csv, tsv, parquet, jsonl, folder,
        movielens, recbole, sequences``.
    mapping : dict, optional
        Schema column -> file column of the events table, e.g. ``{"user_id": "uid"}``.
    on_error : {"raise", "drop"}
        Raise a DataError for bad rows, or drop them and count them by reason in the report.
    strict_actions : bool
        Count actions outside ``schema.ACTIONS`` as bad rows ("unknown action");
        otherwise custom action names are kept as they are. A built-in name in another case
        (``Purchase``) is the built-in one either way.
    sep : str, optional
        Field separator of a csv / tsv file, or token separator of a sequence file.
    name : str, optional
        Data set name; defaults to the file stem or folder name.
    columns : sequence of str, optional
        Names of the fields of a CSV or TSV file without a header row, in order (its first
        row is then data); ``mapping`` applies to these names as to a header's.

    Returns
    -------
    RawData
        ``events`` with the ``RAW_EVENT_DTYPES`` columns in order (plus ``event_id`` and
        ``truth_*`` where the input has them), optional items / users / follows, and a report.

    Raises
    ------
    DataError
        For a missing or unreadable file, an unknown format, a missing required column, no
        events at all, or (with ``on_error="raise"``) bad rows.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
    >>> _ = p.write_text("uid,item_id,timestamp\\nu1,i1,2024-01-01\\n,i2,5\\n")
    >>> raw = read(p, mapping={"user_id": "uid"}, on_error="drop")
    >>> raw.events.select("user_id", "timestamp", "action").rows()
    [('u1', 1704067200, 'view')]
    >>> raw.report.lines()[-1]
    'validate log.csv: 2 -> 1 rows (dropped empty user_id: 1)'
    """
    path = Path(path).expanduser()
    if format not in FORMATS:
        raise DataError(
            f"unknown format {format!r}", where=str(path), how=f"use one of {', '.join(FORMATS)}"
        )
    if not path.exists():
        raise DataError("no such file or folder", where=str(path), how="check the path")
    opts = ReadOptions(
        mapping=dict(mapping or {}),
        on_error=on_error,
        strict_actions=strict_actions,
        sep="\t" if sep == "\\t" else sep,  # a tab as users type it on a command line
        name=name,
        columns=None if columns is None else _column_names(columns, path),
    )
    _refuse_packing(path)
    fmt = detect_format(path) if format == "auto" else format
    _check_arguments(path, fmt, opts)
    if fmt == "folder":
        raw = read_folder(path, opts)
    elif fmt == "movielens":
        raw = read_movielens(path, opts)
    elif fmt == "recbole":
        raw = read_recbole(path, opts)
    elif fmt == "sequences":
        raw = read_sequences(path, opts)
    else:
        raw = read_file(path, fmt, opts)
    if raw.events.height == 0:
        dropped = {k: v for s in raw.report.steps for k, v in s.dropped.items()}
        why = ", ".join(f"{k}: {v:,}" for k, v in dropped.items())
        raise DataError(
            f"no events left (dropped {why})" if why else "no events in the input",
            where=str(path),
            how="check the file and the column mapping",
        )
    return raw

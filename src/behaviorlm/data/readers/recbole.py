"""RecBole atomic files: ``NAME.inter`` with optional ``NAME.item`` and ``NAME.user``.

A split file such as ``NAME.train.inter`` reads the data set's ``NAME.item`` and
``NAME.user`` when it has none of its own.

Atomic files are tab-separated text with a typed header such as
``user_id:token	item_id:token	rating:float	timestamp:float`` (Zhao et al., RecBole, CIKM 2021).
The ``:type`` suffix is stripped; ``rating`` becomes ``value`` unless the mapping says
otherwise, and events with a value but no action field are ``"rate"`` events. Other fields
named like schema columns are taken as they are; the rest are dropped (and named in the
report). Without a ``timestamp`` field the rows keep file order and ``timestamp`` is the
row position (``has_time=False``).

In ``.item``, ``movie_title`` / ``title`` becomes ``title`` and ``genre`` / ``class`` /
``categories`` becomes ``category`` with its space-separated tokens joined by ``"|"``; fields
typed ``float`` are numbers, the rest strings (``token_seq`` fields stay space separated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from behaviorlm.data.errors import DataError, Report
from behaviorlm.data.raw import RawData
from behaviorlm.data.readers.normalize import ReadOptions, normalize_events, plan_columns
from behaviorlm.data.readers.tables import normalize_keyed
from behaviorlm.data.readers.tabular import collect, refuse_unmapped_times

#: .item fields that feed the schema's title and category, in order of preference.
TITLE_FIELDS: Final[tuple[str, ...]] = ("movie_title", "title")
CATEGORY_FIELDS: Final[tuple[str, ...]] = ("genre", "class", "categories")


def find_inter(path: Path) -> Path:
    """The ``.inter`` file given itself or the folder holding exactly one."""
    if path.is_file():
        return path
    found = sorted(path.glob("*.inter"))
    if len(found) != 1:
        what = "no .inter file" if not found else f"{len(found)} .inter files"
        raise DataError(
            f"{what} in the folder",
            where=str(path),
            how="pass the NAME.inter file itself"
            if found
            else "point to a RecBole atomic-file folder",
        )
    return found[0]


def side_file(inter: Path, kind: str) -> Path:
    """The ``.item`` or ``.user`` file of an ``.inter`` file: ``NAME.item`` beside
    ``NAME.inter``, or beside a split file such as ``NAME.train.inter`` (RecBole's
    ``benchmark_filename`` files share their data set's side files).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ml.item").write_text("item_id:token\\n")
    >>> side_file(d / "ml.train.inter", "item").name
    'ml.item'
    >>> side_file(d / "ml.inter", "user").name
    'ml.user'
    """
    parts = inter.stem.split(".")
    names = [".".join(parts[:end]) for end in range(len(parts), 0, -1)]
    found = (inter.with_name(f"{name}.{kind}") for name in names)
    return next((path for path in found if path.is_file()), inter.with_name(f"{names[0]}.{kind}"))


def _header(path: Path) -> list[tuple[str, str]]:
    """(name, type) of every field of an atomic file."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            line = handle.readline().rstrip("\r\n")
    except OSError as error:
        raise DataError(f"cannot read file: {error.strerror}", where=str(path)) from error
    if not line:
        raise DataError("the file is empty", where=str(path), how="write a typed header line first")
    if "\t" not in line and len(line.split()) > 1:
        raise DataError(
            f"the header ({line[:80]}) is not tab-separated",
            where=str(path),
            how="separate the fields of RecBole atomic files with tabs, in the header and rows",
        )
    fields = []
    for field in line.split("\t"):
        name, _, kind = field.partition(":")
        fields.append((name, kind or "token"))
    return fields


def _read_atomic(path: Path) -> tuple[pl.DataFrame, dict[str, str], int]:
    """All columns as String with the type suffix stripped, name -> declared type, and the
    number of blank lines skipped (as RecBole's own loader skips them)."""
    fields = _header(path)
    lazy = pl.scan_csv(path, separator="\t", quote_char=None, infer_schema=False, glob=False)
    names = lazy.collect_schema().names()
    lazy = lazy.rename({old: name for old, (name, _) in zip(names, fields, strict=True)})
    frame = collect(lazy, path, "recbole")
    kept = frame.filter(~pl.all_horizontal(pl.all().is_null() | (pl.all().str.strip_chars() == "")))
    return kept, dict(fields), frame.height - kept.height


def _blank(lines: int) -> dict[str, int]:
    return {"blank line": lines} if lines else {}


def _typed(frame: pl.DataFrame, kinds: dict[str, str], where: str) -> pl.DataFrame:
    floats = [c for c, kind in kinds.items() if kind == "float" and c in frame.columns]
    try:
        return frame.with_columns(pl.col(floats).str.strip_chars().cast(pl.Float64))
    except pl.exceptions.PolarsError as error:
        raise DataError(
            "a field typed float holds text that is not a number",
            where=where,
            how=f"fix the values of {', '.join(floats)} or declare them :token",
        ) from error


def _side(path: Path, key: str, opts: ReadOptions, report: Report) -> pl.DataFrame | None:
    if not path.is_file():
        return None
    frame, kinds, blank = _read_atomic(path)
    report.add(f"read {path.name}", frame.height + blank, frame.height, _blank(blank))
    mapped = opts.mapping.get(key)
    if key not in frame.columns and mapped in frame.columns:
        frame = frame.rename({mapped: key})
    frame = _typed(frame, kinds, path.name)
    if key == "item_id":
        title = next((c for c in TITLE_FIELDS if c in frame.columns), None)
        category = next((c for c in CATEGORY_FIELDS if c in frame.columns), None)
        if title is not None and "title" not in frame.columns:
            frame = frame.rename({title: "title"})
        if category is not None and "category" not in frame.columns:
            tokens = pl.col(category).str.strip_chars().str.replace_all(r"\s+", "|")
            frame = frame.with_columns(
                pl.when(tokens == "").then(None).otherwise(tokens).alias(category)
            ).rename({category: "category"})
    return normalize_keyed(frame, key=key, where=path.name, opts=opts, report=report)


def read_recbole(path: Path, opts: ReadOptions) -> RawData:
    """Read RecBole atomic files (a ``.inter`` file or its folder) into RawData.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> header = "user_id:token\\titem_id:token\\trating:float\\n"
    >>> _ = (d / "toy.inter").write_text(header + "1\\t5\\t3\\n")
    >>> raw = read_recbole(d, ReadOptions())
    >>> raw.events.select("user_id", "item_id", "timestamp", "action", "value").rows()
    [('1', '5', 0, 'rate', 3.0)]
    >>> raw.has_time
    False
    """
    inter = find_inter(path)
    report = Report()
    frame, _, blank = _read_atomic(inter)
    mapping = dict(opts.mapping)
    if "value" not in mapping and "value" not in frame.columns and "rating" in frame.columns:
        mapping["value"] = "rating"
    has_time = "timestamp" in mapping or "timestamp" in frame.columns
    keep, ignored = plan_columns(frame.columns, mapping, where=str(inter), need_time=has_time)
    if not has_time:  # a 'date' field of times must be mapped, as in a CSV file
        refuse_unmapped_times(ignored, frame.head(1000).select, where=str(inter))
    frame = frame.select(pl.col(c).alias(t) for c, t in keep.items())
    if "value" in frame.columns and "action" not in frame.columns:
        frame = frame.with_columns(action=pl.lit("rate"))
    notes = ([f"ignored columns: {', '.join(ignored)}"] if ignored else []) + (
        [] if has_time else ["no timestamp field: rows in file order"]
    )
    step = f"read {inter.name}" + (f" ({'; '.join(notes)})" if notes else "")
    report.add(step, frame.height + blank, frame.height, _blank(blank))
    events = normalize_events(frame, where=inter.name, opts=opts, report=report, has_time=has_time)
    items = _side(side_file(inter, "item"), "item_id", opts, report)
    users = _side(side_file(inter, "user"), "user_id", opts, report)
    return RawData(
        events=events,
        items=items,
        users=users,
        name=opts.name or inter.stem,
        has_time=has_time,
        report=report,
    )

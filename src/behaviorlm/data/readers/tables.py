"""Side tables (items, users, follows): required columns, types and bad rows.

Items and users are keyed by their external id (String); a row with an empty id or an id
seen before (the first one is kept) is a bad row. Item ``price`` is a number; a list of
categories (or of title or text parts) is joined into text (:func:`item_text`). Follows carry
``follower_id``, ``followee_id`` and an optional ``since`` parsed like event timestamps.
Bad rows follow ``on_error`` exactly like events and are counted in the report.
"""

from __future__ import annotations

import json
from typing import Final

import polars as pl

from behaviorlm.data.errors import DataError, Report
from behaviorlm.data.readers.normalize import (
    ROW,
    ReadOptions,
    as_text,
    blank,
    check_seconds,
    count_first_reasons,
    raise_bad_rows,
    to_seconds,
)
from behaviorlm.schema import FOLLOW_COLUMNS, ITEM_COLUMNS


def _require(frame: pl.DataFrame, columns: tuple[str, ...], where: str) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"required column {column!r} is missing",
                where=where,
                how=f"available columns: {', '.join(c for c in frame.columns if c != ROW)}; "
                f"rename a column to {column}",
            )


def _finish(
    frame: pl.DataFrame,
    flags: dict[str, pl.Expr],
    fixes: dict[str, str],
    *,
    where: str,
    opts: ReadOptions,
    report: Report,
) -> pl.DataFrame:
    counts, bad, firsts = count_first_reasons(frame, flags)
    raise_bad_rows(frame, counts, firsts, fixes, opts=opts, where=where)
    out = frame.filter(~bad) if any(counts.values()) else frame
    report.add(f"validate {where}", frame.height, out.height, counts)
    return out.drop(ROW, strict=False)


#: How the values of a list are joined, by column: a category list is the ``"a|b"`` form
#: that ``recommend --category`` reads (``Artifact.category_mask``); other text with spaces.
LIST_JOINS: Final[dict[str, str]] = {"category": "|", "title": " ", "text": " "}

#: A JSON array written as text (a JSON Lines file whose lines mix lists and strings).
_JSON_ARRAY = r"^\s*\[.*\]\s*$"


def joined_list(column: pl.Series, sep: str) -> pl.Series:
    """A list column's values as text, stripped, empty ones and nulls left out, joined by
    ``sep``; null where nothing is left (also the MovieLens genres).

    Examples
    --------
    >>> joined_list(pl.Series("c", [[" a ", None, "", "b"], [], None]), "|").to_list()
    ['a|b', None, None]
    """
    parts = column.list.eval(pl.element().cast(pl.String).str.strip_chars())
    text = parts.list.eval(pl.element().filter(pl.element().str.len_bytes() > 0))
    out = text.list.join(sep)
    return out.set(out.str.len_bytes() == 0, None).alias(column.name)


def _decoded(text: str | None, sep: str) -> str | None:
    """A JSON array of scalars as its values joined by ``sep``; anything else as it is."""
    try:
        values = json.loads(text or "")
    except ValueError:
        return text
    if not isinstance(values, list) or any(isinstance(v, (list, dict)) for v in values):
        return text
    parts = [(v if isinstance(v, str) else json.dumps(v)).strip() for v in values if v is not None]
    return sep.join(p for p in parts if p) or None


def item_text(column: pl.Series, *, where: str) -> pl.Series:
    """An items table's ``title``, ``category`` or ``text`` column as String: a list's values
    (a Parquet list column, a JSON Lines array) joined by :data:`LIST_JOINS`, so a list of
    categories is the ``"a|b"`` text that category filters read; a category written as a JSON
    array of scalars in text is read the same way. Empty lists and values are null.

    Raises DataError for lists of lists or of objects.

    Examples
    --------
    >>> item_text(pl.Series("category", [["a", "b"], [], None]), where="i").to_list()
    ['a|b', None, None]
    >>> item_text(pl.Series("category", ['["a", 1]', "[refurbished]"]), where="i").to_list()
    ['a|1', '[refurbished]']
    """
    sep = LIST_JOINS[column.name]
    dtype = column.dtype
    if isinstance(dtype, (pl.List, pl.Array)):
        if dtype.inner.is_nested():
            raise DataError(
                f"column {column.name!r} holds lists of {dtype.inner}",
                where=where,
                how="give a flat list of names (or one text value) per item",
            )
        return joined_list(column.cast(pl.List(dtype.inner)), sep)
    if dtype.is_nested():
        raise DataError(
            f"column {column.name!r} holds {dtype} values",
            where=where,
            how="give one text value (or a list of names) per item",
        )
    text = column.cast(pl.String)
    if column.name != "category":
        return text
    listed = text.str.contains(_JSON_ARRAY).fill_null(False)
    if not listed.any():
        return text
    fixed = [_decoded(v, sep) for v in text.filter(listed).to_list()]
    return text.scatter(listed.arg_true(), pl.Series(fixed, dtype=pl.String))


def normalize_keyed(
    frame: pl.DataFrame, *, key: str, where: str, opts: ReadOptions, report: Report
) -> pl.DataFrame:
    """Validate an items (``key="item_id"``) or users (``key="user_id"``) table.

    Items get their known columns first (item_id, title, category, text, price) and
    ``price`` as Float64; other columns are kept as read.

    Examples
    --------
    >>> items = pl.DataFrame({"item_id": [1, 1, 2], "title": ["a", "b", "c"]})
    >>> r = Report()
    >>> normalize_keyed(items, key="item_id", where="i", opts=ReadOptions(on_error="drop"),
    ...                 report=r)["title"].to_list()
    ['a', 'c']
    """
    _require(frame, (key,), where)
    frame = frame.with_columns(as_text(frame.get_column(key)))
    flags = {f"empty {key}": blank(pl.col(key))}
    fixes = {f"empty {key}": f"fill in {key} on every row"}
    if key == "item_id":
        known = [c for c in ITEM_COLUMNS if c in frame.columns]
        frame = frame.select(*known, pl.exclude(known))
        text = [c for c in ("title", "category", "text") if c in frame.columns]
        frame = frame.with_columns(item_text(frame.get_column(c), where=where) for c in text)
        if "price" in frame.columns and not frame.schema["price"].is_numeric():
            given = ~blank(pl.col("price").cast(pl.String))
            frame = frame.with_columns(
                pl.col("price").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False),
                _price_given=given,
            )
            flags["unparsable price"] = pl.col("price").is_null() & pl.col("_price_given")
            fixes["unparsable price"] = "write price as a number"
        if "price" in frame.columns:
            frame = frame.with_columns(pl.col("price").cast(pl.Float64))
    flags[f"duplicate {key}"] = ~pl.col(key).is_first_distinct()
    fixes[f"duplicate {key}"] = f"keep one row per {key}"
    out = _finish(frame, flags, fixes, where=where, opts=opts, report=report)
    return out.drop("_price_given", strict=False)


def normalize_follows(
    frame: pl.DataFrame, *, where: str, opts: ReadOptions, report: Report
) -> pl.DataFrame:
    """Validate a follow-edge table: ``follower_id``, ``followee_id`` (String), ``since`` (Int64).

    Examples
    --------
    >>> f = pl.DataFrame({"follower_id": [1, 2], "followee_id": [2, 1], "since": ["5", "x"]})
    >>> r = Report()
    >>> normalize_follows(f, where="f", opts=ReadOptions(on_error="drop"), report=r).rows()
    [('1', '2', 5)]
    """
    _require(frame, ("follower_id", "followee_id"), where)
    since = frame.get_column("since") if "since" in frame.columns else None
    given = ~blank(pl.col("since").cast(pl.String)) if since is not None else pl.lit(False)
    seconds = to_seconds(since) if since is not None else pl.lit(None, dtype=pl.Int64)
    if isinstance(seconds, pl.Series):  # in milliseconds, every follow would start too late
        check_seconds(seconds, where, "since")
    frame = frame.with_columns(
        as_text(frame.get_column("follower_id")),
        as_text(frame.get_column("followee_id")),
        _since_given=given,
    ).with_columns(since=seconds)
    flags = {
        "empty follower_id or followee_id": blank(pl.col("follower_id"))
        | blank(pl.col("followee_id")),
        "unparsable since": pl.col("since").is_null() & pl.col("_since_given"),
    }
    fixes = {
        "empty follower_id or followee_id": "fill in both ids on every follow edge",
        "unparsable since": "write since as integer seconds or ISO-8601 text",
    }
    out = _finish(frame, flags, fixes, where=where, opts=opts, report=report)
    return out.select(FOLLOW_COLUMNS)

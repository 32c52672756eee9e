"""Coding of external ids and categorical values into contiguous integer codes.

Ids are coded in natural order (text before the trailing digits, then the trailing number's
value, then the whole text), so ``u2 < u10`` and ids that already run ``1..n`` keep their
numbers. Integer ids are parsed directly when ids are a common prefix plus a number; other
ids take one categorical hashing pass. Nothing here loops over rows in Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from behaviorlm.schema import Bool, Int

#: Integer codes (-1 = missing for ids, 0 = missing for vocabularies).
Codes = npt.NDArray[np.int32]
#: Largest span of integer ids coded with a presence table instead of a sort.
_DENSE_SPAN = 1 << 26


@dataclass(frozen=True)
class _Coded:
    """External ids coded 0..n-1 in id order; ``codes`` is -1 where the id is missing."""

    codes: Codes
    values: pl.Series


def code_ids(ids: pl.Series) -> _Coded:
    """Code external ids 0..n-1 in natural order (see :func:`_natural_order`); -1 = missing.

    Fast path: when every id is one common prefix followed by a canonical non-negative integer
    (``"u17"``, ``"42"``), the integers are coded directly, without hashing strings.
    """
    ids = ids.cast(pl.String)
    n_null = ids.null_count()
    if n_null == len(ids):
        return _Coded(np.full(len(ids), -1, dtype=np.int32), pl.Series([], dtype=pl.String))
    coded = _code_prefixed_ints(ids, n_null)
    if coded is not None:
        return coded
    codes, distinct = _categorize(ids.alias("id").to_frame())["id"]
    return _reorder(codes, distinct, _natural_order(distinct))


def _code_prefixed_ints(ids: pl.Series, n_null: int) -> _Coded | None:
    """Codes of ids ``<prefix><integer>`` (one prefix for all, canonical integers), else None."""
    first = ids[int(ids.is_not_null().arg_max() or 0)]
    match = re.fullmatch(r"(.*?)([0-9]*)", first, flags=re.DOTALL)
    prefix = match.group(1) if match else first
    chars, width_of_prefix = len(prefix), len(prefix.encode())
    col = pl.col("id")
    prefixed = col.str.starts_with(prefix).sum() if prefix else pl.lit(len(ids) - n_null)
    parsed = (
        ids.alias("id")
        .to_frame()
        .select(
            (col.str.slice(chars) if prefix else col).cast(pl.Int64, strict=False).alias("value"),
            (col.str.len_bytes().cast(pl.Int32) - width_of_prefix).alias("width"),
            prefixed.alias("prefixed"),
        )
    )
    value = parsed["value"]
    if int(parsed["prefixed"][0]) != len(ids) - n_null or value.null_count() != n_null:
        return None
    if int(value.min()) < 0:  # type: ignore[arg-type]
        return None
    valid = ids.is_not_null().to_numpy()
    codes, unique = _code_ints(value.fill_null(0).to_numpy(), valid)
    printed = pl.Series(unique, dtype=pl.Int64).cast(pl.String)
    # canonical ("7", not "007" or "+7"): each id is exactly as long as its integer printed
    printed_width = printed.str.len_bytes().to_numpy().astype(np.int32)
    width = parsed["width"].fill_null(0).to_numpy()
    if n_null:
        canonical = np.array_equal(width[valid], printed_width[codes[valid]])
    else:
        canonical = np.array_equal(width, printed_width[codes])
    if not canonical:
        return None
    values = printed.to_frame("id").select(pl.lit(prefix) + pl.col("id")).to_series()
    return _Coded(codes, values.alias("id"))


def _code_ints(x: Int, valid: Bool) -> tuple[Codes, Int]:
    """Codes of the integers ``x[valid]`` 0..n-1 in numeric order (-1 elsewhere), and the
    distinct integers."""
    xv = x[valid] if not valid.all() else x
    lo, hi = int(xv.min()), int(xv.max())
    if hi - lo < _DENSE_SPAN:
        seen = np.zeros(hi - lo + 1, dtype=np.bool_)
        seen[xv - lo] = True
        rank = (np.cumsum(seen, dtype=np.int64) - 1).astype(np.int32)
        unique = np.flatnonzero(seen) + lo
        code = rank[xv - lo]
    else:
        unique, inverse = np.unique(xv, return_inverse=True)
        code = inverse.astype(np.int32)
    if len(xv) == len(x):
        return code, unique
    codes = np.full(len(x), -1, dtype=np.int32)
    codes[valid] = code
    return codes, unique


def _natural_order(distinct: pl.Series) -> Int:
    """Positions of ``distinct`` (unique strings) in natural order.

    Ids compare by the text before their trailing digits, then by the value of the trailing
    number (any length), then by the whole text: ``u2 < u10 < v1``, ``2 < 10``.
    """
    parts = distinct.alias("id").to_frame()
    pattern = r"(?s)^(.*?)([0-9]*)$"
    number = pl.col("id").str.extract(pattern, 2).str.strip_chars_start("0")
    key = parts.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("position"),
        pl.col("id").str.extract(pattern, 1).alias("prefix"),
        number.str.len_bytes().alias("width"),
        number.alias("number"),
        pl.col("id"),
    )
    ordered = key.sort("prefix", "width", "number", "id")
    return ordered["position"].to_numpy()


def _categorize(frame: pl.DataFrame) -> dict[str, tuple[Codes, pl.Series]]:
    """Per column: codes 0..k-1 (-1 = null) and the k distinct strings in code order.

    One cast per column to a Categorical with a fresh ``Categories`` (the columns in parallel)
    hashes each string once; the physical codes are then made dense through a lookup table.
    """
    cats = frame.select(
        pl.col(c).cast(pl.String).cast(pl.Categorical(pl.Categories.random()))
        for c in frame.columns
    )
    out = {}
    for name in cats.columns:
        cat = cats[name]
        physical = cat.to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        distinct = cat.drop_nulls().unique()
        distinct_physical = distinct.to_physical().to_numpy().astype(np.int64)
        dense = np.full(int(distinct_physical.max(initial=-1)) + 2, -1, dtype=np.int32)
        dense[distinct_physical] = np.arange(len(distinct), dtype=np.int32)  # dense[-1] = -1
        out[name] = dense[physical], distinct.cast(pl.String)
    return out


def _reorder(codes: Codes, values: pl.Series, order: Int) -> _Coded:
    """Recode so that code k is ``values[order[k]]`` (-1 stays -1)."""
    rank = np.empty(len(values) + 1, dtype=np.int32)
    rank[order] = np.arange(len(values), dtype=np.int32)
    rank[-1] = -1  # codes of -1 (missing) index the last entry
    return _Coded(rank[codes], values.gather(order).alias("id"))


def code_vocabs(
    frame: pl.DataFrame, builtin: dict[str, Sequence[str]]
) -> dict[str, tuple[Codes, list[str]]]:
    """Per column: codes 1..len(vocab) (0 = missing) and the vocabulary, which is the
    column's ``builtin`` names followed by the other values, sorted."""
    out = {}
    for name, (codes, distinct) in _categorize(frame.select(list(builtin))).items():
        present = distinct.to_list()
        vocab = list(builtin[name]) + sorted(set(present) - set(builtin[name]))
        position = {value: k for k, value in enumerate(vocab, start=1)}
        remap = np.zeros(len(present) + 1, dtype=np.int32)  # last entry: missing -> 0
        remap[: len(present)] = [position[value] for value in present]
        out[name] = remap[codes], vocab
    return out


def renumber(codes: Codes, n: int) -> tuple[Int, Bool]:
    """Codes 0..n-1 (-1 = none) -> ids 1..m over the codes that occur (0 = none)."""
    shifted = codes.astype(np.int64) + 1
    present = np.bincount(shifted, minlength=n + 1)[1:] > 0
    new = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(present, out=new[1:])
    return new[shifted], present


def compact_vocab(codes: Codes, vocab: list[str], n_fixed: int) -> tuple[Codes, list[str]]:
    """Drop vocabulary entries after the first ``n_fixed`` that no kept event uses."""
    present = np.bincount(codes, minlength=len(vocab) + 1)[1:] > 0
    present[:n_fixed] = True
    if present.all():
        return codes, vocab
    remap = np.zeros(len(vocab) + 1, dtype=np.int32)
    remap[1:] = np.where(present, np.cumsum(present), 0)
    return remap[codes], [v for v, p in zip(vocab, present, strict=True) if p]


# ---------------------------------------------------------------------------- side tables

"""MovieLens folders as published by GroupLens (Harper & Konstan, TiiS 2015).

Three layouts are recognised by the files in the folder:

* **100K** (``u.data``): tab-separated ``user item rating timestamp``; ``u.item`` is
  pipe-separated Latin-1 text ``id|title|release date|video release date|IMDb URL|19 genre
  flags``; ``u.user`` is ``id|age|gender|occupation|zip``.
* **1M / 10M** (``ratings.dat``): ``user::movie::rating::timestamp``; ``movies.dat`` is
  ``id::title::genres``; ``users.dat`` (1M only) is ``id::gender::age::occupation::zip`` with
  occupation codes, translated to the names of the 1M README.
* **20M / 25M / latest** (``ratings.csv`` + ``movies.csv``): CSV with a header
  ``userId,movieId,rating,timestamp`` and ``movieId,title,genres`` (titles may be quoted).

Ratings become events with action ``"rate"`` and the rating as ``value``; movies become items
with ``title`` and ``category`` = genres joined by ``"|"`` (``"(no genres listed)"`` becomes
null). Text files that are not valid UTF-8 are decoded as Latin-1.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import polars as pl

from behaviorlm.data.errors import DataError, Report
from behaviorlm.data.raw import RawData
from behaviorlm.data.readers.normalize import ReadOptions, normalize_events
from behaviorlm.data.readers.tables import normalize_keyed
from behaviorlm.data.readers.tabular import collect

#: The 19 genre flags of u.item, in file order (as listed in the 100K u.genre file).
GENRES_100K: Final[tuple[str, ...]] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: Occupation codes of the 1M users.dat (from the 1M README).
OCCUPATIONS_1M: Final[tuple[str, ...]] = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
NO_GENRES: Final[str] = "(no genres listed)"


def movielens_layout(folder: Path) -> str | None:
    """``"100k"``, ``"1m"`` (1M and 10M) or ``"20m"`` (20M, 25M, latest), or None."""
    if (folder / "u.data").is_file():
        return "100k"
    if (folder / "ratings.dat").is_file():
        return "1m"
    ratings = folder / "ratings.csv"
    if ratings.is_file() and (folder / "movies.csv").is_file() and _movielens_header(ratings):
        return "20m"
    return None


def ratings_file_layout(path: Path) -> str:
    """The layout of one ratings file, by its name and first line: ``"1m"`` for
    ``ratings.dat`` or ``::`` fields, ``"20m"`` for MovieLens' CSV header, else ``"100k"``
    (tab-separated, as ``u.data`` and its splits ``u1.base``, ``ua.test``, ...)."""
    if path.name == "ratings.dat":
        return "1m"
    if _movielens_header(path):
        return "20m"
    try:
        with path.open("rb") as data:
            first = data.readline()
    except OSError:
        first = b""
    return "1m" if b"::" in first else "100k"


def _movielens_header(path: Path) -> bool:
    """Whether a ``ratings.csv`` has MovieLens' header (``userId,movieId,...``): a CSV events
    file of another header beside a movies.csv is read as CSV, where ``--map`` applies."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as text:
            header = text.readline()
    except OSError:
        return False
    return [name.strip().strip('"') for name in header.split(",")][:2] == ["userId", "movieId"]


def _decoded(path: Path) -> io.BytesIO:
    """The file as UTF-8 bytes (Latin-1 files are re-encoded)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read file: {error.strerror}", where=str(path)) from error
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("latin-1").encode("utf-8")
    return io.BytesIO(data)


def _split_lines(path: Path, separator: str, names: list[str]) -> pl.DataFrame:
    """A small text table with a multi-character (or quote-free) separator, all String."""
    try:
        lines = pl.read_csv(
            _decoded(path),
            has_header=False,
            separator="\x1f",
            quote_char=None,
            schema={"line": pl.String()},
        ).filter(pl.col("line").str.len_bytes() > 0)
    except pl.exceptions.PolarsError as error:
        raise DataError(
            f"cannot read movielens file: {error}", where=str(path), how="check the file"
        ) from error
    parts = pl.col("line").str.splitn(separator, len(names))
    frame = lines.select(parts.struct.rename_fields(names).alias("row")).unnest("row")
    missing = frame.select(pl.col(names[-1]).is_null().sum()).item()
    if missing:
        raise DataError(
            f"{missing:,} line(s) have fewer than {len(names)} fields",
            where=str(path),
            how=f"each line must be {separator.join(names)}",
        )
    return frame


def _ratings(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("user_id", "item_id", "timestamp", action=pl.lit("rate"), value="rating")


def _read_ratings(path: Path, layout: str, report: Report) -> pl.DataFrame:
    names = ["user_id", "item_id", "rating", "timestamp"]
    if layout == "100k":
        lazy = pl.scan_csv(
            path,
            has_header=False,
            separator="\t",
            quote_char=None,
            schema=dict.fromkeys(names, pl.String()),
            glob=False,
        )
    elif layout == "1m":
        # "u::i::r::t" split on ":" gives u, "", i, "", r, "", t: read the even fields.
        fields = [f"f{k}" for k in range(7)]
        lazy = pl.scan_csv(
            path,
            has_header=False,
            separator=":",
            quote_char=None,
            schema=dict.fromkeys(fields, pl.String()),
            glob=False,
        ).select(pl.col(f).alias(n) for f, n in zip(fields[::2], names, strict=True))
    else:
        lazy = pl.scan_csv(
            path,
            schema_overrides={
                "userId": pl.String(),
                "movieId": pl.String(),
                "rating": pl.String(),
                "timestamp": pl.String(),
            },
            glob=False,
        )
        lazy = lazy.select(
            pl.col("userId").alias("user_id"),
            pl.col("movieId").alias("item_id"),
            "rating",
            "timestamp",
        )
    frame = collect(lazy, path, "movielens")
    # a blank line (one at the end, say) reads as a row without a value: skipped and counted,
    # as in CSV files, not a bad row
    # a line of spaces fills the first field alone: only it is stripped (as tabular.read_rows)
    empty = pl.col(names[0]).is_null() | (pl.col(names[0]).str.strip_chars() == "")
    blank = empty & pl.all_horizontal(pl.col(names[1:]).is_null())
    kept = frame.filter(~blank) if frame.select(blank.any()).item() else frame
    report.add(
        f"read {path.name}", frame.height, kept.height, {"blank line": frame.height - kept.height}
    )
    return _ratings(kept)


def _items_100k(path: Path) -> pl.DataFrame:
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES_100K]
    frame = _split_lines(path, "|", names)
    genres = pl.concat_list(pl.when(pl.col(g) == "1").then(pl.lit(g)) for g in GENRES_100K)
    category = genres.list.drop_nulls().list.join("|")
    return frame.select(
        "item_id",
        "title",
        pl.when(category == "").then(None).otherwise(category).alias("category"),
        "release_date",
        "imdb_url",
    )


def _genres(column: str) -> pl.Expr:
    return (
        pl.when(pl.col(column) == NO_GENRES).then(None).otherwise(pl.col(column)).alias("category")
    )


def _read_items(folder: Path, layout: str) -> tuple[Path, pl.DataFrame] | None:
    if layout == "100k":
        path = folder / "u.item"
        return (path, _items_100k(path)) if path.is_file() else None
    if layout == "1m":
        path = folder / "movies.dat"
        if not path.is_file():
            return None
        frame = _split_lines(path, "::", ["item_id", "title", "genres"])
        return path, frame.select("item_id", "title", _genres("genres"))
    path = folder / "movies.csv"
    try:  # read whole, as the other layouts' movie files are: a Latin-1 file is decoded
        frame = pl.read_csv(_decoded(path), infer_schema=False)
    except pl.exceptions.PolarsError as error:
        raise DataError(
            f"cannot read movielens file: {error}".splitlines()[0], where=str(path)
        ) from error
    if not {"movieId", "title", "genres"} <= set(frame.columns):
        raise DataError(
            f"movies.csv needs columns movieId, title, genres; found {', '.join(frame.columns)}",
            where=str(path),
        )
    return path, frame.select(pl.col("movieId").alias("item_id"), "title", _genres("genres"))


def _read_users(folder: Path, layout: str) -> tuple[Path, pl.DataFrame] | None:
    if layout == "100k":
        path = folder / "u.user"
        if not path.is_file():
            return None
        frame = _split_lines(path, "|", ["user_id", "age", "gender", "occupation", "zip"])
    elif layout == "1m":
        path = folder / "users.dat"
        if not path.is_file():
            return None
        frame = _split_lines(path, "::", ["user_id", "gender", "age", "occupation", "zip"])
        codes = [str(k) for k in range(len(OCCUPATIONS_1M))]
        frame = frame.with_columns(
            pl.col("occupation").replace_strict(codes, OCCUPATIONS_1M, default=pl.col("occupation"))
        )
    else:
        return None
    frame = frame.select(
        "user_id", pl.col("age").cast(pl.Int64, strict=False), "gender", "occupation", "zip"
    )
    return path, frame


def read_movielens(path: Path, opts: ReadOptions) -> RawData:
    """Read a MovieLens folder (100K, 1M, 10M, 20M, 25M or latest) into RawData, or one
    ratings file of such a folder (``u1.base``, ``ratings.dat``; its layout by
    :func:`ratings_file_layout`) with the movies and users of its folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "ratings.dat").write_text("1::10::4::978300760\\n2::10::5::978300761\\n")
    >>> raw = read_movielens(d, ReadOptions())
    >>> raw.events.select("user_id", "action", "value").rows()
    [('1', 'rate', 4.0), ('2', 'rate', 5.0)]
    """
    if path.is_dir():
        folder, layout = path, movielens_layout(path)
        if layout is None:
            raise DataError(
                "not a MovieLens folder",
                where=str(folder),
                how="point to the folder holding u.data (100K), ratings.dat (1M/10M) or "
                "ratings.csv and movies.csv (20M/25M/latest)",
            )
        ratings = folder / {"100k": "u.data", "1m": "ratings.dat", "20m": "ratings.csv"}[layout]
    else:  # the file given, never another file of its folder
        folder, layout, ratings = path.parent, ratings_file_layout(path), path
    report = Report()
    frame = _read_ratings(ratings, layout, report)
    events = normalize_events(frame, where=ratings.name, opts=opts, report=report)
    tables: dict[str, pl.DataFrame] = {}
    for key, found in (
        ("item_id", _read_items(folder, layout)),
        ("user_id", _read_users(folder, layout)),
    ):
        if found is None:
            continue
        path, table = found
        report.add(f"read {path.name}", table.height, table.height)
        tables[key] = normalize_keyed(table, key=key, where=path.name, opts=opts, report=report)
    return RawData(
        events=events,
        items=tables.get("item_id"),
        users=tables.get("user_id"),
        name=opts.name or folder.resolve().name,
        report=report,
    )

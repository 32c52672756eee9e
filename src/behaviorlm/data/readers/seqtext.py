"""Sequence text files: SASRec-style pairs and S3Rec-style rows, without timestamps.

Two layouts are common in sequential-recommendation code:

* **pairs** (SASRec, Kang & McAuley, ICDM 2018): one ``user item`` per line, lines in time
  order within each user;
* **rows** (S3Rec, Zhou et al., CIKM 2020): one ``user item_1 item_2 ...`` per line, items in
  time order.

Tokens are separated by whitespace (or by ``sep`` when given); blank lines are skipped.
The layout is named in the report by this rule: a file is *pairs* when every line has exactly
two tokens and some user appears on more than one line, otherwise *rows* (a file of unique
users with one item each is read as rows). Both readings give the same events: user = first
token, one event per following token, in file order. A line with a user and no item becomes a
bad row ("missing item_id and query"). Lines of one length, 3 to 5 tokens, on which users
repeat and which hold ratings (``2.5``) or epoch seconds in their last token are refused:
that is a table without a header (``user item rating timestamp``), which read as rows would
turn ratings and times into items.

There are no times: ``timestamp`` is the position of the event in the file, ``has_time`` is
false, and every event is a ``"view"``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from behaviorlm.data.errors import DataError, Report
from behaviorlm.data.raw import RawData
from behaviorlm.data.readers.normalize import ReadOptions, normalize_events
from behaviorlm.data.readers.tabular import collect


def sequence_layout(tokens: pl.DataFrame) -> str:
    """``"pairs"`` or ``"rows"`` for a frame with a ``tokens`` list column (one row per line).

    Examples
    --------
    >>> lines = pl.DataFrame({"tokens": [["u1", "a"], ["u1", "b"], ["u2", "a"]]})
    >>> sequence_layout(lines), sequence_layout(lines.head(1))
    ('pairs', 'rows')
    """
    lengths = tokens.get_column("tokens").list.len()
    if tokens.height == 0 or not bool((lengths == 2).all()):
        return "rows"
    users = tokens.get_column("tokens").list.first()
    return "pairs" if users.n_unique() < tokens.height else "rows"


#: First-line words that say a ``.txt`` file is a table with a header, not a sequence file.
HEADER_WORDS = frozenset(
    {"user_id", "item_id", "timestamp", "user", "item", "rating", "userid", "itemid"}
)


def _refuse_a_header(first: list[str], path: Path) -> None:
    """DataError where the first line of a sequence file reads as a table's header."""
    words = {w.strip(",;\"'").lower() for token in first for w in token.split(",")}
    if words & HEADER_WORDS:
        raise DataError(
            f"the first line ({' '.join(first)[:80]}) looks like the header of a table, "
            "not a sequence of items",
            where=str(path),
            how="pass --format csv or --format tsv (format= in Python) to read it as a table",
        )


def _refuse_one_token_lines(lines: pl.DataFrame, path: Path) -> None:
    """DataError where every line is one token that holds a separator: items separated by
    ``,`` (say) read with whitespace as the separator.

    Examples
    --------
    >>> _refuse_one_token_lines(pl.DataFrame({"tokens": [["1,10,11"]]}), Path("seq.txt"))
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ... pass --sep ',' ...
    """
    tokens = lines.get_column("tokens")
    if not bool((tokens.list.len() == 1).all()):
        return
    first = tokens[0][0]
    sep = next((c for c in ",;|:" if c in first), None)
    if sep is not None:
        raise DataError(
            f"every line is one token ({first[:80]}): the items are not separated by whitespace",
            where=str(path),
            how=f"pass --sep '{sep}' (sep='{sep}' in Python)",
        )


def _refuse_a_table(lines: pl.DataFrame, path: Path) -> None:
    """DataError where lines of one length, 3 to 5 tokens, repeat users and hold a rating
    (a third token with a decimal point) or a time (every last token an integer of 9 digits or
    more, epoch seconds): a table without a header (``user item rating timestamp``), not
    S3Rec rows (one line per user) or windows of items (``u1 i1 i2 i3``).

    Examples
    --------
    >>> table = pl.DataFrame({"tokens": [["1", "31", "2.5", "1260759144"]] * 2})
    >>> _refuse_a_table(table, Path("ratings.txt"))
    Traceback (most recent call last):
    ...
    behaviorlm.data.errors.DataError: ...
    """
    tokens = lines.get_column("tokens")
    lengths = set(tokens.list.len().unique().to_list())
    if len(lengths) != 1 or not 3 <= min(lengths) <= 5:
        return
    if tokens.list.first().n_unique() == lines.height:
        return
    rating = bool(tokens.list.get(2).str.contains(r"^-?\d+\.\d*$").any())
    times = bool(tokens.list.last().str.contains(r"^\d{9,}$").all())
    if not (rating or times):
        return
    first = " ".join(tokens[0].to_list())[:80]
    raise DataError(
        f"every line has {min(lengths)} fields and users repeat from line to line "
        f"({first}): this reads as a table without a header, not as sequences (one line "
        "per user)",
        where=str(path),
        how="read it as a table of fields split by spaces, naming them in order: --format csv "
        "--sep ' ' --columns user_id,item_id,value,timestamp (say; split by tabs: --format tsv; "
        "format=, sep= and columns= in Python)",
    )


def read_sequences(path: Path, opts: ReadOptions) -> RawData:
    """Read a SASRec (pairs) or S3Rec (rows) sequence file into RawData.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "seq.txt"
    >>> _ = p.write_text("1 10 11\\n2 12\\n")
    >>> raw = read_sequences(p, ReadOptions())
    >>> raw.events.select("user_id", "item_id", "timestamp").rows()
    [('1', '10', 0), ('1', '11', 1), ('2', '12', 2)]
    """
    lazy = pl.scan_csv(
        path,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        schema={"line": pl.String()},
        glob=False,
    )
    line = pl.col("line").str.strip_chars()
    split = line.str.extract_all(r"\S+") if opts.sep is None else line.str.split(opts.sep)
    lines = collect(
        lazy.filter(line.str.len_bytes() > 0).select(split.alias("tokens")), path, "sequences"
    )
    if lines.height:  # with any separator: a header would become a user and items
        _refuse_a_header(lines.get_column("tokens")[0].to_list(), path)
        if opts.sep is None:
            _refuse_one_token_lines(lines, path)
    layout = sequence_layout(lines)
    if layout == "rows":
        _refuse_a_table(lines, path)
    events = lines.select(
        pl.col("tokens").list.first().alias("user_id"),
        pl.col("tokens").list.slice(1).alias("item_id"),
    ).explode("item_id", empty_as_null=True)
    if opts.sep is not None:
        events = events.with_columns(pl.col("user_id", "item_id").str.strip_chars())
    report = Report()
    report.add(f"read {path.name} ({layout}, {lines.height:,} lines)", events.height, events.height)
    frame = normalize_events(events, where=path.name, opts=opts, report=report, has_time=False)
    return RawData(events=frame, name=opts.name or path.stem, has_time=False, report=report)

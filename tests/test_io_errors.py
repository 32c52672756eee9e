"""Bad input: whole-file problems raise one clear DataError; bad rows raise or are counted."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import polars as pl
import pytest

from behaviorlm.data.errors import DataError
from behaviorlm.data.io import read
from behaviorlm.data.preprocess import preprocess
from behaviorlm.data.readers.normalize import EVENT_REASONS

FIXTURES = Path(__file__).parent / "fixtures" / "io"
HEADER = "user_id,item_id,timestamp,action,value,query\n"
GOOD = "u1,i1,100,view,,\nu2,i2,2024-01-01T00:00:00+01:00,click,1.5,\n"

#: One bad row per reason (on top of the two good rows).
BAD_ROWS = {
    "empty user_id": ",i1,100,view,,",
    "missing item_id and query": "u1,,100,view,,",
    "missing timestamp": "u1,i1,,view,,",
    "unparsable timestamp": "u1,i1,yesterday,view,,",
    "timestamp out of range": "u1,i1,1700000050000,view,,",  # milliseconds among seconds
    "NaN value": "u1,i1,100,rate,NaN,",
    "value out of range": "u1,i1,100,rate,-1e39,",  # infinite as float32
    "unparsable value": "u1,i1,100,rate,five,",
    "unknown action": "u1,i1,100,teleport,,",
}


def write(tmp_path: Path, body: str, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + GOOD + body + "\n")
    return path


def test_every_reason_has_a_case() -> None:
    assert set(BAD_ROWS) == set(EVENT_REASONS)


@pytest.mark.parametrize("reason", list(BAD_ROWS))
def test_bad_row_raises(tmp_path: Path, reason: str) -> None:
    path = write(tmp_path, BAD_ROWS[reason])
    with pytest.raises(DataError) as info:
        read(path, strict_actions=True)
    message = str(info.value)
    # the header, two good rows, then the bad one: the third row after the header
    assert f"1 bad row(s): {reason}, the first on data row 3 (the first problem found" in message
    assert "events.csv" in message
    assert "on_error='drop'" in message


def test_the_first_bad_row_is_named_by_its_place_in_the_file(tmp_path: Path) -> None:
    # a blank line, skipped before the checks, still counts
    csv = tmp_path / "e.csv"
    csv.write_text(HEADER + GOOD + "\nu4,i4,soon,view,,\n")
    with pytest.raises(DataError, match="unparsable timestamp, the first on data row 4"):
        read(csv)
    lines = tmp_path / "e.jsonl"
    good, bad = (
        '{"user_id": "u", "item_id": "i", "timestamp": 1}',
        '{"user_id": "", "item_id": "i"}',
    )
    lines.write_text(f"{good}\n{bad}\n")
    with pytest.raises(DataError, match="empty user_id, the first on data row 2"):
        read(lines)
    folder = folder_with_items(tmp_path, "item_id,title,price\ni1,A,1\ni2,B,2\ni3,C,cheap\n")
    with pytest.raises(DataError, match="unparsable price, the first on data row 3"):
        read(folder)
    raw = read(folder, on_error="drop")
    assert raw.items is not None
    assert raw.items.columns == ["item_id", "title", "price"]  # the row numbers left out


@pytest.mark.parametrize("reason", list(BAD_ROWS))
def test_bad_row_dropped_and_counted(tmp_path: Path, reason: str) -> None:
    path = write(tmp_path, BAD_ROWS[reason])
    raw = read(path, on_error="drop", strict_actions=True)
    assert raw.events["user_id"].to_list() == ["u1", "u2"]
    assert raw.events["timestamp"].to_list() == [100, 1704063600]
    step = raw.report.steps[-1]
    assert (step.step, step.rows_in, step.rows_out, step.dropped) == (
        "validate events.csv",
        3,
        2,
        {reason: 1},
    )


def test_custom_actions_kept_without_strict_mode(tmp_path: Path) -> None:
    raw = read(write(tmp_path, BAD_ROWS["unknown action"]))
    assert raw.events["action"].to_list() == ["view", "click", "teleport"]


def test_built_in_names_in_another_case_are_the_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,timestamp,action,source\n"
        "u1,i1,100,Purchase,SOCIAL\n"
        "u1,i2,101, view ,self\n"
        "u1,i3,102,AddToWishlist,Friend\n"
    )
    raw = read(path, strict_actions=False)
    assert raw.events["action"].to_list() == ["purchase", "view", "AddToWishlist"]
    assert raw.events["source"].to_list() == ["social", "self", "Friend"]
    ds = preprocess(raw)
    assert ds.vocab["action"].count("purchase") == 1  # one entry, the built-in one
    # strict mode checks the names after folding: only the custom action is a bad row
    dropped = read(path, strict_actions=True, on_error="drop")
    assert dropped.events["action"].to_list() == ["purchase", "view"]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_schema_columns_named_in_another_case_are_read(tmp_path: Path, suffix: str) -> None:
    # "Action" and "Value" used to be ignored columns: every purchase read as a view
    frame = pl.DataFrame(
        {
            "User_ID": ["u1", "u1"],
            "item_id": ["i1", None],
            "Timestamp": [100, 101],
            "Action": ["purchase", "search"],
            "Value": [5.0, None],
            "QUERY": [None, "red shoes"],
        }
    )
    path = tmp_path / f"events.{suffix}"
    frame.write_csv(path) if suffix == "csv" else frame.write_parquet(path)
    raw = read(path)
    assert raw.events["action"].to_list() == ["purchase", "search"]
    assert raw.events["value"].to_list() == [5.0, None]
    assert raw.events["query"].to_list() == [None, "red shoes"]
    assert raw.events["timestamp"].to_list() == [100, 101]
    assert "ignored" not in raw.report.steps[0].step
    assert "read User_ID as user_id, Timestamp as timestamp, Action as action" in (
        raw.report.steps[0].step
    )


def test_a_column_named_exactly_wins_over_one_in_another_case(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,Action,action\nu1,i1,100,cart,purchase\n")
    raw = read(path)
    assert raw.events["action"].to_list() == ["purchase"]
    assert "ignored columns: Action" in raw.report.steps[0].step


def test_counts_by_reason_and_accounting(tmp_path: Path) -> None:
    body = "\n".join(
        [
            ",i1,100,view,,",  # empty user_id
            ",,,view,,",  # several problems: counted once, under the first reason
            "u1,,100,view,,",
            "u1,,100,,,boots",  # a search: fine
            "u1,i1,yesterday,view,,",
            "u1,i1,soon,view,,",
            "u1,i1,100,rate,inf,",
            "u3,i1,100,wishlist,,",  # custom action: fine
        ]
    )
    raw = read(write(tmp_path, body), on_error="drop")
    step = raw.report.steps[-1]
    assert step.dropped == {
        "empty user_id": 2,
        "missing item_id and query": 1,
        "unparsable timestamp": 2,
        "NaN value": 1,
    }
    assert step.rows_in == 10
    assert step.rows_out == 4
    for s in raw.report.steps:
        assert s.rows_in - s.rows_out == sum(s.dropped.values())
    assert raw.events["action"].to_list() == ["view", "click", "search", "wishlist"]
    with pytest.raises(DataError, match="2 bad row"):
        read(write(tmp_path, body))


def folder_with_items(tmp_path: Path, items: str) -> Path:
    """A copy of the fixture folder whose items table is ``items`` (CSV text)."""
    folder = tmp_path / "f"
    shutil.copytree(FIXTURES / "folder", folder)
    (folder / "items.csv").write_text(items)
    return folder


def test_bad_side_table_rows(tmp_path: Path) -> None:
    folder = folder_with_items(tmp_path, "item_id,title,price\ni1,A,1\ni1,B,2\n,C,3\ni2,D,cheap\n")
    (folder / "follows.csv").write_text("follower_id,followee_id,since\nu1,,1\nu1,u2,never\n")
    with pytest.raises(DataError, match=r"1 bad row\(s\): empty item_id"):
        read(folder)
    raw = read(folder, on_error="drop")
    assert raw.items is not None
    assert raw.follows is not None
    assert raw.items.rows() == [("i1", "A", 1.0)]
    steps = {s.step: s.dropped for s in raw.report.steps}
    assert steps["validate items.csv"] == {
        "empty item_id": 1,
        "duplicate item_id": 1,
        "unparsable price": 1,
    }
    assert steps["validate follows.csv"] == {
        "empty follower_id or followee_id": 1,
        "unparsable since": 1,
    }
    assert raw.follows.height == 0


def test_a_header_of_one_column_with_another_separator_names_sep(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("user_id;item_id;timestamp\nu1;i1;1\n")
    with pytest.raises(DataError, match="required column 'user_id' is missing") as error:
        read(path)
    assert "its header reads as one column: pass --sep ';'" in error.value.line()
    assert read(path, sep=";").events["item_id"].to_list() == ["i1"]
    with pytest.raises(DataError, match="mapped column 'uid'") as error:  # --map first
        read(path, mapping={"user_id": "uid"})
    assert "pass --sep ';'" in error.value.line()
    quoted = tmp_path / "quoted.csv"  # the separator read with: no hint to pass it again
    quoted.write_text('"user_id,item_id"\nx\n')
    with pytest.raises(DataError, match="required column 'user_id' is missing") as error:
        read(quoted)
    assert "--sep" not in error.value.line()
    table = tmp_path / "one.parquet"  # no separator to pass
    pl.DataFrame({"user_id;item_id": ["a"]}).write_parquet(table)
    with pytest.raises(DataError, match="required column 'user_id' is missing") as error:
        read(table)
    assert "--sep" not in error.value.line()


def test_follow_times_in_milliseconds_are_refused(tmp_path: Path) -> None:
    """A follow since 1.69e12 (milliseconds) would start every follow long after the events
    and leave the followees' feeds empty without a word."""
    folder = folder_with_items(tmp_path, "item_id,title\ni1,A\n")
    (folder / "follows.csv").write_text("follower_id,followee_id,since\nu1,u2,1690000000000\n")
    with pytest.raises(DataError, match="the since times look like milliseconds") as error:
        read(folder)
    assert "divide the since column by 1,000" in error.value.line()
    (folder / "follows.csv").write_text("follower_id,followee_id,since\nu1,u2,1690000000\n")
    assert read(folder).follows is not None


def test_sequence_line_without_items(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("1 10 11\n2\n3 12\n")
    with pytest.raises(DataError, match="missing item_id and query"):
        read(path)
    raw = read(path, on_error="drop")
    assert raw.events["user_id"].to_list() == ["1", "1", "3"]
    assert raw.report.steps[-1].dropped == {"missing item_id and query": 1}


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder") as info:
        read(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)


def test_missing_required_column_lists_columns_and_suggests_map(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("uid,item_id,timestamp\nu,i,1\n")
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert "required column 'user_id' is missing" in message
    assert "uid, item_id, timestamp" in message
    assert "--map user_id=COL" in message


def test_other_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user_id,timestamp\na,1\n")
    with pytest.raises(DataError, match="'item_id' or a 'query'"):
        read(path)


@pytest.mark.parametrize("name", ["e.csv", "e.jsonl", "e.parquet"])
def test_a_table_without_timestamps_keeps_the_order_of_its_rows(tmp_path: Path, name: str) -> None:
    rows = {"user_id": ["a", "a", "b", "a"], "item_id": ["x", "y", "x", "z"]}
    path = tmp_path / name
    frame = pl.DataFrame(rows)
    {"e.csv": frame.write_csv, "e.jsonl": frame.write_ndjson, "e.parquet": frame.write_parquet}[
        name
    ](path)
    raw = read(path)
    assert raw.has_time is False
    assert raw.events["timestamp"].to_list() == [0, 1, 2, 3]  # the row positions
    assert preprocess(raw).sequences().row(0).items.tolist() == [1, 2, 3]  # a: x, y, z


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"user_id": "nope"}, "mapped column 'nope'"),
        ({"colour": "item_id"}, "unknown schema column 'colour'"),
    ],
)
def test_bad_mapping(mapping: dict[str, str], expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        read(FIXTURES / "events.csv", mapping=mapping)


def test_mapping_on_a_format_without_columns() -> None:
    with pytest.raises(DataError, match="does not apply"):
        read(FIXTURES / "ml-1m", mapping={"user_id": "x"})


def test_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "e.parquet"
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match="cannot read parquet file"):
        read(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="cannot read csv file"):
        read(empty)
    ragged = tmp_path / "movies.dat"
    (tmp_path / "ratings.dat").write_text("1::1::5::1\n")
    ragged.write_text("1::Title only\n")
    with pytest.raises(DataError, match="fewer than 3 fields"):
        read(tmp_path)


def test_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown format 'xml'"):
        read(FIXTURES / "events.csv", format="xml")
    odd = tmp_path / "log.xyz"
    odd.write_text("x")
    with pytest.raises(DataError, match=r"cannot tell the format of a \.xyz file"):
        read(odd)
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "readme.md").write_text("hi")
    with pytest.raises(DataError, match="cannot tell the format of this folder"):
        read(folder)
    with pytest.raises(DataError, match="needs a file"):
        read(FIXTURES / "folder", format="csv")


def test_ambiguous_folders(tmp_path: Path) -> None:
    (tmp_path / "a.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    (tmp_path / "b.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"2 \.inter files"):
        read(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    pl.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [1]}).write_csv(
        other / "events.csv"
    )
    (other / "events.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="more than one events table"):
        read(other)


def test_on_error_must_be_known() -> None:
    with pytest.raises(DataError, match="on_error"):
        read(FIXTURES / "events.csv", on_error="ignore")  # type: ignore[arg-type]


def test_no_events(tmp_path: Path) -> None:
    header_only = tmp_path / "h.csv"
    header_only.write_text(HEADER)
    with pytest.raises(DataError, match="no events in the input"):
        read(header_only)
    all_bad = tmp_path / "b.csv"
    all_bad.write_text(HEADER + ",i,1,,,\n")
    with pytest.raises(DataError, match=r"no events left \(dropped empty user_id: 1\)"):
        read(all_bad, on_error="drop")


def test_bad_json_and_ragged_csv(tmp_path: Path) -> None:
    bad_json = tmp_path / "e.jsonl"
    bad_json.write_text('{"user_id": "u", "item_id": "i", "timestamp": 1}\n{not json\n')
    with pytest.raises(DataError, match="cannot read jsonl file"):
        read(bad_json)


def test_rows_with_more_fields_than_the_header_are_named_or_dropped(tmp_path: Path) -> None:
    ragged = tmp_path / "r.csv"
    lines = [
        "user_id,item_id,timestamp,title",
        "u1,i1,1,plain",
        'u2,i2,2,"quoted, with a comma and a',
        'line break"',
        "u3,i3,3,a title, unquoted",  # line 5: one field too many
        "",
        "u4,i4,4,x,y,z",
        "u5,i5,5,fine",
    ]
    ragged.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"2 bad row\(s\): more fields than the header") as error:
        read(ragged)
    assert "line 5 has 5 fields, the header 4" in error.value.line()
    assert "--on-error drop" in error.value.line()
    raw = read(ragged, on_error="drop")
    assert raw.events["user_id"].to_list() == ["u1", "u2", "u5"]
    assert raw.report.steps[0].dropped == {"blank line": 1, "more fields than the header": 2}
    assert raw.report.steps[0].rows_in == 6
    # a compressed file is read the same way, whatever the case of its suffix
    for name in ("r.csv.gz", "R.CSV.GZ"):
        packed = tmp_path / "packed" / name
        packed.parent.mkdir(exist_ok=True)
        packed.write_bytes(gzip.compress(ragged.read_bytes()))
        assert read(packed, on_error="drop").events["user_id"].to_list() == ["u1", "u2", "u5"]
        packed.unlink()


def test_long_rows_are_found_past_blank_lines_and_long_fields(tmp_path: Path) -> None:
    lead = tmp_path / "lead.csv"  # polars skips blank lines before the header
    lead.write_text("\nuser_id,item_id,timestamp\nu1,i1,1\nu1,i2,2,x\nu1,i3,3\n")
    with pytest.raises(DataError, match=r"1 bad row\(s\): more fields than the header \(line 4"):
        read(lead)
    assert read(lead, on_error="drop").events["item_id"].to_list() == ["i1", "i3"]
    big = tmp_path / "big.csv"  # a field longer than the csv module's default limit
    big.write_text(f'user_id,item_id,timestamp,text\nu1,i1,1,"{"x" * 200_000}"\nu1,i2,2,a,b\n')
    assert read(big, on_error="drop").events["item_id"].to_list() == ["i1"]


def test_side_table_rows_with_more_fields_are_dropped(tmp_path: Path) -> None:
    folder = folder_with_items(tmp_path, "item_id,title,price\ni1,A,1\ni2,B, C,2\n")
    with pytest.raises(DataError, match="line 3 has 4 fields"):
        read(folder)
    raw = read(folder, on_error="drop")
    assert raw.items is not None
    assert raw.items.rows() == [("i1", "A", 1)]
    steps = {s.step: s.dropped for s in raw.report.steps}
    assert steps["read items.csv"] == {"more fields than the header": 1}


def test_a_quote_inside_a_field_is_text(tmp_path: Path) -> None:
    """Polars' parser refuses a quote inside a field that does not start with one (a title
    such as 12" vinyl); it is read as written, in events and side tables, beside quoted
    fields and rows with more fields than the header."""
    folder = folder_with_items(tmp_path, 'item_id,title,price\ni1,12" vinyl,1\ni2,"B, C",2\n')
    raw = read(folder)
    assert raw.items is not None
    assert raw.items.rows() == [("i1", '12" vinyl', 1), ("i2", "B, C", 2)]
    events = tmp_path / "quotes.tsv"
    events.write_text('user_id\titem_id\ttimestamp\nu1\ta"b\t1\nu1\ti2\t2\textra\nu2\t"c\td"\t3\n')
    with pytest.raises(DataError, match=r"1 bad row\(s\): more fields than the header \(line 3"):
        read(events)
    raw = read(events, on_error="drop")
    assert raw.events["item_id"].to_list() == ['a"b', "c\td"]
    assert raw.report.steps[0].dropped == {"more fields than the header": 1}


def test_a_carriage_return_in_quotes_or_at_the_end_is_read(tmp_path: Path) -> None:
    """Where the csv module and polars split the rows alike (a carriage return inside a
    quoted field, or ending the file), the fallback reads the file."""
    inside = tmp_path / "inside.csv"
    inside.write_text(
        'user_id,item_id,title,timestamp\nu1,i1,"a\rb",1\nu1,i2,c,2,extra\n', newline=""
    )
    raw = read(inside, on_error="drop")
    assert raw.events["item_id"].to_list() == ["i1"]
    assert raw.report.steps[0].dropped == {"more fields than the header": 1}
    last = tmp_path / "last.csv"
    last.write_text('user_id,item_id,timestamp\r\nu1,12" vinyl,1\r\nu1,i2,2\r', newline="")
    assert read(last).events["item_id"].to_list() == ['12" vinyl', "i2"]


@pytest.mark.parametrize(
    "body",
    [
        'u1,"i1,1\nu2,i2,2\n',
        'u1,"i1"x,1\nu2,i2,2\n',
        "u1,caf\xe9,1\n",
        'u1,i1,1\nu1,12" vinyl,2\nu1,ab\rcd,3\n',
    ],
    ids=["never closed", "text after the closing quote", "not UTF-8", "a carriage return alone"],
)
def test_a_file_the_csv_module_reads_otherwise_fails_as_polars_said(
    tmp_path: Path, body: str
) -> None:
    """Where polars' parser and the csv module's strict one both refuse a file, the read
    fails with polars' message: nothing of the file is guessed at."""
    path = tmp_path / "e.csv"
    path.write_bytes(("user_id,item_id,timestamp\n" + body).encode("latin-1"))
    for on_error in ("raise", "drop"):
        with pytest.raises(DataError, match="cannot read csv file"):
            read(path, on_error=on_error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scale", "unit"),
    [(1000, "milliseconds"), (1_000_000, "microseconds"), (1_000_000_000, "nanoseconds")],
)
def test_timestamps_in_milliseconds_or_microseconds_are_refused(
    tmp_path: Path, scale: int, unit: str
) -> None:
    path = tmp_path / "ms.csv"
    path.write_text(
        "user_id,item_id,timestamp\n"
        + "".join(f"u1,i{k},{(1_700_000_000 + k) * scale}\n" for k in range(3))
    )
    with pytest.raises(DataError, match=f"look like {unit}") as error:
        read(path)
    assert f"divide the timestamp column by {scale:,}" in error.value.line()


def test_a_compressed_table_is_read_by_its_inner_suffix(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(b"user_id,item_id,timestamp\na,x,1\na,y,2\n"))
    assert read(path).events["item_id"].to_list() == ["x", "y"]


def test_a_file_column_mapped_twice_is_named(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user,item,ts\na,x,1\n")
    with pytest.raises(DataError, match="'user' is mapped to more than one"):
        read(path, mapping={"user_id": "user", "item_id": "user", "timestamp": "ts"})


def test_a_table_saved_as_txt_is_not_read_as_sequences(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("user_id\titem_id\tts\nu1\ti1\t5\n")
    with pytest.raises(DataError, match="looks like the header of a table"):
        read(path)
    path.write_text("1 10 11\n2 12\n")  # a sequence file still reads
    assert read(path).events.height == 3


def test_a_time_column_under_another_name_is_not_taken_for_row_order(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user_id,item_id,event_time\na,x,1700000000\n")
    with pytest.raises(DataError, match="'event_time' looks like the times") as error:
        read(path)
    assert "--map timestamp=event_time" in error.value.line()
    # neither a name that says nothing of times, nor one whose values are no times
    for column in ("candidate", "watchTime"):
        path.write_text(f"user_id,item_id,{column}\na,x,5\na,y,120\n")
        step = read(path).report.steps[0].step
        assert step.endswith("no timestamp column: rows in file order)")


def test_a_folder_with_a_compressed_events_table(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "events.csv.gz").write_bytes(gzip.compress(b"user_id,item_id\na,x\nb,y\n"))
    assert read(tmp_path).events.height == 2
    assert read(tmp_path / "events.csv.gz").name == "events"


def test_fractions_of_a_second_order_the_events_within_it(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    # y happened first, though it is written second
    path.write_text("user_id,item_id,timestamp\na,x,10.9\na,y,10.1\na,z,11.0\n")
    ds = preprocess(read(path))
    names = ds.items["item_id"].to_list()
    assert [names[i - 1] for i in ds.sequences().row(0).items] == ["y", "x", "z"]
    iso = tmp_path / "iso.csv"
    iso.write_text(
        "user_id,item_id,timestamp\na,x,2024-01-01T00:00:00.900Z\na,y,2024-01-01T00:00:00.100Z\n"
    )
    ds = preprocess(read(iso))
    names = ds.items["item_id"].to_list()
    assert [names[i - 1] for i in ds.sequences().row(0).items] == ["y", "x"]


@pytest.mark.parametrize("stamps", [("20240131", "20240201"), ("20240131130000", "20240131140500")])
def test_dates_written_as_digits_are_not_taken_for_seconds(
    tmp_path: Path, stamps: tuple[str, str]
) -> None:
    path = tmp_path / "e.csv"
    path.write_text(f"user_id,item_id,timestamp\nu1,a,{stamps[0]}\nu1,b,{stamps[1]}\n")
    with pytest.raises(DataError, match="dates written as digits") as error:
        read(path)
    assert "ISO-8601" in error.value.line()


def test_a_cut_compressed_file_says_so(tmp_path: Path) -> None:
    data = gzip.compress((HEADER + GOOD * 200).encode())
    path = tmp_path / "events.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="damaged or cut short"):
        read(path)


@pytest.mark.parametrize(
    ("fmt", "column", "kind"),
    [
        ("jsonl", "item_id", "lists"),
        ("jsonl", "action", "lists"),
        ("jsonl", "user_id", "objects"),
        ("parquet", "item_id", "lists"),
        ("parquet", "timestamp", "lists"),
        ("parquet", "item_id", "objects"),
    ],
)
def test_an_event_column_of_lists_or_objects_is_refused_by_name(
    tmp_path: Path, fmt: str, column: str, kind: str
) -> None:
    row: dict[str, object] = {"user_id": "u1", "item_id": "a", "timestamp": 1, "action": "view"}
    row[column] = {"id": row[column]} if kind == "objects" else [row[column], row[column]]
    frame = pl.DataFrame([row])
    path = tmp_path / f"sessions.{fmt}"
    frame.write_ndjson(path) if fmt == "jsonl" else frame.write_parquet(path)
    with pytest.raises(DataError, match=f"column '{column}' holds {kind}") as info:
        read(path)
    assert "one row per item" in str(info.value)
    # a mapped column is named as in the file and as read
    renamed = tmp_path / f"renamed.{fmt}"
    other = frame.rename({column: "x"})
    other.write_ndjson(renamed) if fmt == "jsonl" else other.write_parquet(renamed)
    with pytest.raises(DataError, match=f"column 'x' \\(read as {column}\\) holds {kind}"):
        read(renamed, mapping={column: "x"})


@pytest.mark.parametrize(
    ("name", "content", "expected", "fix"),
    [
        (
            "twice.csv",
            b"user_id,item_id,timestamp,item_id\nu1,a,1,b\n",
            "column 'item_id' appears more than once",
            "rename or drop all but one",
        ),
        (
            "mac.csv",
            b"user_id,item_id,timestamp\r1,2,3\r4,5,6\r",
            "carriage return alone",
            "tr '\\r' '\\n'",
        ),
        (
            "spaces.inter",
            b"user_id:token item_id:token rating:float\n1 10 4\n",
            "is not tab-separated",
            "with tabs",
        ),
        ("seq.txt", b"1,10,11,12\n2,13,14\n", "not separated by whitespace", "--sep ','"),
    ],
)
def test_a_file_laid_out_otherwise_says_what_to_do(
    tmp_path: Path, name: str, content: bytes, expected: str, fix: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        read(path)
    assert fix in info.value.line()


def test_the_layouts_those_errors_point_to_are_read(tmp_path: Path) -> None:
    path = tmp_path / "windows.csv"
    path.write_bytes(b"user_id,item_id,timestamp\r\n1,2,3\r\n")
    assert read(path).events.height == 1
    path = tmp_path / "seq.txt"
    path.write_text("1,10,11,12\n2,13,14\n")
    assert read(path, sep=",").events.height == 5
    lone = tmp_path / "lone.txt"  # one token without a separator: the bad-row message stays
    lone.write_text("u1\nu2\n")
    with pytest.raises(DataError, match="missing item_id and query"):
        read(lone)


@pytest.mark.parametrize(
    "first",
    ["1,2014-04-07T10:51:09.277Z,214536502,0", "7,42,5,881250949", "u1,i1,2014-04-07"],
)
def test_a_file_without_a_header_is_named_as_such(tmp_path: Path, first: str) -> None:
    """Its first row would be taken for column names and the error would list values as columns."""
    path = tmp_path / "clicks.csv"
    path.write_text(f"{first}\n{first}\n")
    with pytest.raises(DataError, match="the first row looks like data, not a header") as info:
        read(path)
    assert "add a header row" in info.value.line()
    # a header whose names merely hold digits is a header, and so is one that names the
    # events' columns beside a column named like a value (a year)
    named = tmp_path / "named.csv"
    named.write_text("user_id,item_id,timestamp,v2\nu1,i1,1,0\n")
    assert read(named).events.height == 1
    named.write_text("user_id,item_id,timestamp,2019\nu1,i1,100,a\nu2,i2,200,b\n")
    assert read(named).events.height == 2


@pytest.mark.parametrize(
    ("name", "what"),
    [("events.zip", "unpack it"), ("events.tar", "unpack it"), ("events.csv.bz2", "gzip")],
)
def test_archives_and_unread_compressions_say_what_to_do(
    tmp_path: Path, name: str, what: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not a table")
    for fmt in ("auto", "csv"):
        with pytest.raises(DataError, match="is not read") as info:
            read(path, format=fmt)  # type: ignore[arg-type]
        assert what in info.value.line()


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["user_id", "item_id"], "2 column names for 3 fields"),
        (["user_id", "item_id", "timestamp", "value"], "4 column names for 3 fields"),
        (["user_id", "item_id", "user_id"], "names 'user_id' more than once"),
        ([], "a list of non-empty names"),
        ("user_id,item_id,timestamp", "a list of non-empty names"),
        (["user_id", " ", "timestamp"], "a list of non-empty names"),
        (["user_id", 2, "timestamp"], "a list of non-empty names"),
    ],
)
def test_bad_columns_are_named(tmp_path: Path, columns: list[str], expected: str) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("u1,i1,1\nu2,i2,2\n")
    with pytest.raises(DataError, match=expected):
        read(path, columns=columns)


def test_columns_apply_to_delimited_files_only(tmp_path: Path) -> None:
    table = tmp_path / "e.parquet"
    pl.DataFrame({"user_id": ["u1"], "item_id": ["i1"]}).write_parquet(table)
    with pytest.raises(DataError, match="not of the parquet format"):
        read(table, columns=["user_id", "item_id"])
    (tmp_path / "events.csv").write_text("u1,i1\n")
    with pytest.raises(DataError, match="not of the folder format"):
        read(tmp_path, columns=["user_id", "item_id"])


def test_a_side_table_without_its_key_lists_only_the_files_columns(tmp_path: Path) -> None:
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp\nu1,i1,1\nu2,i1,2\n")
    (tmp_path / "follows.csv").write_text("follower,followee\nu1,u2\n")
    with pytest.raises(DataError, match="required column 'follower_id' is missing") as info:
        read(tmp_path)
    assert "available columns: follower, followee;" in info.value.line()

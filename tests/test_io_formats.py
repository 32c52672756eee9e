"""Every input format reads into the RawData schema (tables, folders, MovieLens, RecBole, text)."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

import polars as pl
import pytest

from behaviorlm.data.dataset import Dataset
from behaviorlm.data.errors import DataError, Report
from behaviorlm.data.io import detect_format, read
from behaviorlm.data.preprocess import prepare, preprocess
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.data.readers.normalize import to_seconds

FIXTURES = Path(__file__).parent / "fixtures" / "io"


def assert_schema(raw: RawData) -> None:
    """Events start with exactly the RAW_EVENT_DTYPES columns, in order, with those dtypes."""
    head = raw.events.columns[: len(RAW_EVENT_DTYPES)]
    assert head == list(RAW_EVENT_DTYPES)
    for column, dtype in RAW_EVENT_DTYPES.items():
        assert raw.events.schema[column] == dtype, column
    for column in raw.events.columns[len(RAW_EVENT_DTYPES) :]:
        assert column == "event_id" or column.startswith("truth_")
    assert_accounting(raw.report)


def assert_accounting(report: Report) -> None:
    for step in report.steps:
        assert step.rows_in - step.rows_out == sum(step.dropped.values()), step


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("events.csv", "csv"),
        ("events.tsv", "tsv"),
        ("events.jsonl", "jsonl"),
        ("folder", "folder"),
        ("ml-100k", "movielens"),
        ("ml-100k/u.data", "movielens"),
        ("ml-1m", "movielens"),
        ("ml-1m/ratings.dat", "movielens"),
        ("ml-20m", "movielens"),
        ("ml-20m/ratings.csv", "movielens"),
        ("recbole", "recbole"),
        ("recbole/toy.inter", "recbole"),
        ("sasrec.txt", "sequences"),
        ("s3rec.txt", "sequences"),
    ],
)
def test_detect_format_and_schema(path: str, fmt: str) -> None:
    assert detect_format(FIXTURES / path) == fmt
    raw = read(FIXTURES / path)
    assert_schema(raw)
    assert raw.events.height > 0


def test_csv_all_columns_defaults_and_custom_actions() -> None:
    raw = read(FIXTURES / "events.csv")
    ev = raw.events
    assert ev["user_id"].to_list() == ["u1", "u1", "u2", "u2", "007"]  # ids kept as written
    assert ev["timestamp"].to_list() == [
        1700000000,
        1700000060,
        1700000060,  # 2023-11-14T22:14:20Z
        1700000200,  # 1700000200.9 floored
        1700035200,  # 2023-11-15 08:00:00, naive = UTC
    ]
    # null action: search when the row has a query and no item, else view; custom kept
    assert ev["action"].to_list() == ["view", "purchase", "search", "wishlist", "view"]
    assert ev["source"].to_list() == ["self", "self", "self", "social", "self"]
    assert ev["value"].to_list() == [None, 19.5, None, None, None]
    assert ev["query"].to_list()[2] == "red shoes"
    assert ev["item_id"].to_list()[2] is None
    assert ev["device"].to_list() == ["mobile", "mobile", "desktop", "desktop", None]
    assert raw.name == "events"
    assert raw.has_time
    assert raw.report.steps[0].step == "read events.csv (ignored columns: note)"
    assert "note" not in ev.columns


def test_tsv_and_forced_format(tmp_path: Path) -> None:
    raw = read(FIXTURES / "events.tsv")
    assert raw.events.select("user_id", "item_id", "timestamp", "action").rows() == [
        ("u1", "i1", 10, "click"),
        ("u2", "i2", 20, "view"),
    ]
    renamed = tmp_path / "log.data"
    renamed.write_bytes((FIXTURES / "events.tsv").read_bytes())
    assert read(renamed, format="tsv").events.equals(raw.events)


def test_custom_separator(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("user_id;item_id;timestamp\nu1;i1;5\n")
    assert read(path, sep=";").events.select("user_id", "item_id").rows() == [("u1", "i1")]


def test_jsonl_mixed_types() -> None:
    raw = read(FIXTURES / "events.jsonl")
    assert raw.events.select("user_id", "item_id", "timestamp", "action", "value").rows() == [
        ("1", "i1", 1700000000, "like", 1.0),
        ("u2", "42", 1699920000, "view", None),
    ]
    assert "extra" in raw.report.steps[0].step


def test_parquet_native_types(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "user": [1, 2, 3],
            "item_id": [10, 20, 30],
            "timestamp": [
                dt.datetime(2024, 1, 1),
                dt.datetime(2024, 1, 1, 0, 1),
                dt.datetime(2024, 1, 1, 0, 2, 30),
            ],
            "value": [1, 2, 3],
            "truth_cause_event": [-1, 0, 1],
        }
    )
    path = tmp_path / "events.parquet"
    frame.write_parquet(path)
    raw = read(path, mapping={"user_id": "user"})
    assert_schema(raw)
    assert raw.events["user_id"].to_list() == ["1", "2", "3"]
    assert raw.events["item_id"].to_list() == ["10", "20", "30"]
    assert raw.events["timestamp"].to_list() == [1704067200, 1704067260, 1704067350]
    assert raw.events["value"].to_list() == [1.0, 2.0, 3.0]
    assert raw.events["truth_cause_event"].to_list() == [-1, 0, 1]


def test_parquet_dates_and_float_seconds(tmp_path: Path) -> None:
    path = tmp_path / "d.pq"
    pl.DataFrame(
        {"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [dt.date(1970, 1, 2)] * 2}
    ).write_parquet(path)
    assert read(path).events["timestamp"].to_list() == [86400, 86400]
    pl.DataFrame({"user_id": ["a"], "item_id": ["x"], "timestamp": [12.9]}).write_parquet(path)
    assert read(path).events["timestamp"].to_list() == [12]


def test_column_mapping() -> None:
    mapping = {
        "user_id": "uid",
        "item_id": "iid",
        "timestamp": "ts",
        "value": "rating",
        "action": "event",
    }
    raw = read(FIXTURES / "mapped.csv", mapping=mapping)
    assert raw.events.select("user_id", "item_id", "timestamp", "action", "value").rows() == [
        ("a", "x", 100, "rate", 4.0),
        ("a", "y", 200, "rate", 5.0),
        ("b", "x", 150, "rate", 3.0),
    ]
    assert "ignored" not in raw.report.steps[0].step


def test_mapping_replaces_same_named_column(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user_id,account,item_id,timestamp\nold,new,i,1\n")
    raw = read(path, mapping={"user_id": "account"})
    assert raw.events["user_id"].to_list() == ["new"]
    assert raw.report.steps[0].step == "read e.csv (ignored columns: user_id)"


def test_search_events_without_item_column(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("user_id,query,timestamp\nu,boots,1\n")
    assert read(path).events.select("item_id", "action", "query").rows() == [
        (None, "search", "boots")
    ]


def test_behaviorlm_folder_with_side_tables() -> None:
    raw = read(FIXTURES / "folder")
    assert_schema(raw)
    ev = raw.events
    assert ev.columns[len(RAW_EVENT_DTYPES) :] == [
        "event_id",
        "truth_cause_event",
        "truth_cause_group",
    ]
    assert ev["source"].to_list() == ["self", "self", "social"]
    assert ev["action"].to_list() == ["view", "share", "view"]
    assert raw.items is not None
    assert raw.users is not None
    assert raw.follows is not None
    assert raw.items.columns == ["item_id", "title", "category", "text", "price", "brand"]
    assert raw.items.row(0) == ("i1", "Red shoe, size 42", "shoes", "A red shoe", 19.99, "acme")
    assert raw.items.schema["price"] == pl.Float64
    assert raw.users.columns == ["user_id", "age", "city", "truth_influence"]
    assert raw.users["user_id"].to_list() == ["u1", "u2"]
    assert raw.follows.rows() == [("u1", "u2", 50), ("u2", "u1", 1672531200)]
    assert [s.step for s in raw.report.steps] == [
        "read events.csv",
        "validate events.csv",
        "read items.csv",
        "validate items.csv",
        "read users.csv",
        "validate users.csv",
        "read follows.csv",
        "validate follows.csv",
    ]
    assert raw.name == "folder"


def test_folder_of_parquet_and_jsonl(tmp_path: Path) -> None:
    pl.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [3]}).write_parquet(
        tmp_path / "events.parquet"
    )
    (tmp_path / "items.jsonl").write_text('{"item_id": 7, "title": "T", "price": "2.5"}\n')
    raw = read(tmp_path, name="mine")
    assert raw.name == "mine"
    assert raw.items is not None
    assert raw.items.rows() == [("7", "T", 2.5)]


def test_lists_of_categories_become_a_or_b(tmp_path: Path) -> None:
    """A category list (JSON Lines arrays, also mixed with strings; Parquet lists) is stored as
    the "a|b" text that category filters read; title parts are joined by spaces."""

    def folder(name: str, items: list[str]) -> Path:
        """A folder of three events and the JSON Lines items table ``items``."""
        path = tmp_path / name
        path.mkdir()
        (path / "events.csv").write_text("user_id,item_id,timestamp\nu1,a,1\nu1,b,2\nu2,c,3\n")
        (path / "items.jsonl").write_text("\n".join(items) + "\n")
        return path

    jsonl = folder(
        "jsonl",
        [
            '{"item_id": "a", "category": ["x", " y ", null, ""], "title": ["Big", "Box"]}',
            '{"item_id": "b", "category": [], "title": ["T"]}',
            '{"item_id": "c", "category": null, "title": []}',
            '{"item_id": "d", "category": [7], "title": null}',
        ],
    )
    # an id written as a list is no list of names: read as its text, as before
    (jsonl / "users.jsonl").write_text('{"user_id": ["u1"]}\n{"user_id": ["u2"]}\n')
    raw = read(jsonl)
    assert raw.users is not None
    assert raw.users["user_id"].to_list() == ['["u1"]', '["u2"]']
    items = raw.items
    assert items is not None
    assert items.select("category", "title").rows() == [
        ("x|y", "Big Box"),
        (None, "T"),
        (None, None),
        ("7", None),
    ]
    mixed = folder(
        "mixed",
        [
            '{"item_id": "a", "category": "x"}',
            '{"item_id": "b", "category": ["y", "z"]}',
            '{"item_id": "c", "category": "[refurbished]"}',
        ],
    )
    items = read(mixed).items
    assert items is not None
    assert items["category"].to_list() == ["x", "y|z", "[refurbished]"]
    parquet = folder("parquet", [])
    (parquet / "items.jsonl").unlink()
    frame = pl.DataFrame({"item_id": ["a", "b"], "category": [["x", "y"], None]})
    frame.write_parquet(parquet / "items.parquet")
    items = read(parquet).items
    assert items is not None
    assert items["category"].to_list() == ["x|y", None]
    nested = pl.DataFrame({"item_id": ["a"], "category": [[["x"]]]})
    nested.write_parquet(parquet / "items.parquet")
    with pytest.raises(DataError, match="lists of"):
        read(parquet)


def test_paths_with_glob_characters_are_read_literally(tmp_path: Path) -> None:
    """Folder and file names with [, ?, * are paths, not patterns: a sibling that the pattern
    would match is not read, and a prepared data set in such a folder loads."""
    for name in ("a[1]", "a1", "a?"):
        folder = tmp_path / name
        folder.mkdir()
        pl.DataFrame(
            {"user_id": ["u", "u"], "item_id": [name, "j"], "timestamp": [1, 2]}
        ).write_ndjson(folder / "events.jsonl")
        pl.DataFrame({"item_id": [name]}).write_parquet(folder / "items.parquet")
        (folder / "log.csv").write_text(f"user_id,item_id\nu,{name}\n")
    for name in ("a[1]", "a?"):
        raw = read(tmp_path / name)
        assert raw.events["item_id"].to_list() == [name, "j"]
        assert raw.items is not None
        assert raw.items["item_id"].to_list() == [name]
        assert read(tmp_path / name / "log.csv").events["item_id"].to_list() == [name]
    dataset = preprocess(read(tmp_path / "a?"))
    dataset.save(tmp_path / "d[x]?")
    other = preprocess(read(tmp_path / "a1" / "log.csv"))  # "dxa" matches the pattern "d[x]?"
    other.save(tmp_path / "dxa")
    assert other.n_events != dataset.n_events
    assert Dataset.load(tmp_path / "d[x]?").n_events == dataset.n_events


def test_movielens_100k() -> None:
    raw = read(FIXTURES / "ml-100k")
    assert raw.events.select("user_id", "item_id", "timestamp", "action", "value").rows() == [
        ("1", "10", 881250949, "rate", 4.0),
        ("1", "20", 881250950, "rate", 3.0),
        ("2", "10", 881250951, "rate", 5.0),
    ]
    assert raw.items is not None
    assert raw.users is not None
    assert raw.items.select("item_id", "title", "category").rows() == [
        ("10", "Toy Story (1995)", "Animation|Children's|Comedy"),
        ("20", "Misérables, Les (1995)", "unknown"),  # Latin-1 decoded
        ("30", "Nothing (1999)", None),
    ]
    assert raw.users.rows() == [
        ("1", 24, "M", "technician", "85711"),
        ("2", 53, "F", "other", "94043"),
    ]
    assert raw.users.columns == ["user_id", "age", "gender", "occupation", "zip"]


def test_a_movielens_ratings_file_is_read_itself_not_its_folders_u_data(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ml-100k"
    shutil.copytree(FIXTURES / "ml-100k", folder)
    (folder / "u1.base").write_text("7\t30\t2\t881250999\n")
    raw = read(folder / "u1.base", format="movielens")
    assert raw.events.select("user_id", "item_id", "value").rows() == [("7", "30", 2.0)]
    assert raw.items is not None  # the folder's movies and users come along
    assert raw.items.height == 3
    # a 1M ratings file beside a 100K u.data is the 1M file
    shutil.copy(FIXTURES / "ml-1m" / "ratings.dat", folder / "ratings.dat")
    raw = read(folder / "ratings.dat")
    assert raw.events["item_id"].to_list() == ["1", "2", "3"]
    assert raw.report.steps[0].step == "read ratings.dat"


def test_movielens_1m() -> None:
    raw = read(FIXTURES / "ml-1m")
    assert raw.events.select("user_id", "item_id", "timestamp", "action", "value").rows() == [
        ("1", "1", 978300760, "rate", 5.0),
        ("1", "2", 978302109, "rate", 3.0),
        ("2", "3", 978301968, "rate", 4.0),
    ]
    assert raw.items is not None
    assert raw.users is not None
    assert raw.items.rows() == [
        ("1", "Toy Story (1995)", "Animation|Children's|Comedy"),
        ("2", "Star Wars: Episode IV - A New Hope (1977)", "Action|Sci-Fi"),
        ("3", "Misérables, Les (1995)", "Drama"),
    ]
    assert raw.users.rows() == [
        ("1", 1, "F", "K-12 student", "48067"),
        ("2", 56, "M", "self-employed", "70072"),
    ]


def test_movielens_10m_layout_without_users(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::122::5::838985046\n1::185::4.5::838983525\n")
    (tmp_path / "movies.dat").write_text("122::Boomerang (1992)::Comedy|Romance\n")
    raw = read(tmp_path)
    assert raw.events["value"].to_list() == [5.0, 4.5]
    assert raw.users is None
    assert raw.items is not None
    assert raw.items["category"].to_list() == ["Comedy|Romance"]


def test_movielens_20m_quoted_titles() -> None:
    raw = read(FIXTURES / "ml-20m")
    assert raw.events.select("user_id", "item_id", "timestamp", "value").rows() == [
        ("1", "1", 964982703, 4.0),
        ("1", "3", 964981247, 4.5),
        ("2", "2", 964982224, 0.5),
    ]
    assert set(raw.events["action"].to_list()) == {"rate"}
    assert raw.items is not None
    assert raw.items.rows() == [
        ("1", "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
        ("2", "American President, The (1995)", "Comedy|Drama|Romance"),
        ("3", "Some Film (2015)", None),
    ]


@pytest.mark.parametrize(
    ("layout", "ratings"),
    [("ml-100k", "u.data"), ("ml-1m", "ratings.dat"), ("ml-20m", "ratings.csv")],
)
def test_movielens_blank_lines_are_skipped_and_counted(
    tmp_path: Path, layout: str, ratings: str
) -> None:
    folder = tmp_path / layout
    shutil.copytree(FIXTURES / layout, folder)
    path = folder / ratings
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", *lines[1:]]) + "\n\n")
    raw = read(folder)
    header = layout == "ml-20m"  # ratings.csv has a header line
    assert raw.events.height == len(lines) - header
    assert raw.report.steps[0].dropped == {"blank line": 2}


def test_movielens_20m_latin1_movies(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    shutil.copytree(FIXTURES / "ml-20m", folder)
    (folder / "movies.csv").write_bytes(
        "movieId,title,genres\n1,Misérables (1995),Drama\n".encode("latin-1")
    )
    raw = read(folder)
    assert raw.items is not None
    assert raw.items.rows()[0] == ("1", "Misérables (1995)", "Drama")


def test_a_csv_of_another_header_beside_movies_csv_is_read_as_csv(tmp_path: Path) -> None:
    """The README's --map example for a ratings.csv of its own: a movies.csv beside it does
    not make it MovieLens' file."""
    (tmp_path / "ratings.csv").write_text("uid,movie,ts,rating\nu1,m1,1700000000,4\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\nm1,A,Drama\n")
    mapping = {"user_id": "uid", "item_id": "movie", "timestamp": "ts", "value": "rating"}
    raw = read(tmp_path / "ratings.csv", mapping=mapping)
    assert raw.events.select("user_id", "item_id", "value").rows() == [("u1", "m1", 4.0)]
    with pytest.raises(DataError, match="cannot tell the format of this folder"):
        read(tmp_path)  # nor is the folder MovieLens'


def test_recbole_times_under_another_name_must_be_mapped(tmp_path: Path) -> None:
    """RecBole's Yelp file keeps its times in a 'date' field: read without it, the rows
    would be taken in file order."""
    header = "review_id:token\tuser_id:token\tbusiness_id:token\tstars:float\tdate:float\n"
    rows = "r1\tu1\tb1\t4\t1500000000\nr2\tu1\tb2\t5\t1400000000\n"
    path = tmp_path / "yelp.inter"
    path.write_text(header + rows)
    with pytest.raises(DataError, match="no 'timestamp' column, but 'date' looks like the times"):
        read(path, mapping={"item_id": "business_id"})
    raw = read(path, mapping={"item_id": "business_id", "timestamp": "date", "value": "stars"})
    assert raw.events.select("item_id", "timestamp").rows() == [
        ("b1", 1500000000),
        ("b2", 1400000000),
    ]
    path.write_text(header.replace("date", "votes") + rows)  # no times: file order, said so
    raw = read(path, mapping={"item_id": "business_id"})
    assert "no timestamp field: rows in file order" in raw.report.steps[0].step
    bom = tmp_path / "bom.inter"  # a byte-order mark before the first field's name
    bom.write_text("\ufeffuser_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1500000000\n")
    assert read(bom).events.select("user_id", "item_id").rows() == [("u1", "i1")]


def test_recbole_atomic_files() -> None:
    raw = read(FIXTURES / "recbole")
    assert raw.name == "toy"
    assert raw.has_time
    assert raw.events.select("user_id", "item_id", "timestamp", "action", "value").rows() == [
        ("1", "10", 881250949, "rate", 4.0),
        ("1", "20", 881250950, "rate", 3.0),
        ("2", "10", 881250951, "rate", 5.0),
    ]
    assert raw.report.steps[0].step == "read toy.inter (ignored columns: label)"
    assert raw.items is not None
    assert raw.users is not None
    assert raw.items.rows() == [
        ("10", "Toy Story", "Animation|Children's|Comedy", "1995"),
        ("20", "GoldenEye", "Action", "1995"),
    ]
    assert raw.items.columns == ["item_id", "title", "category", "release_year"]
    assert raw.users.columns == ["user_id", "age", "gender", "occupation", "zip_code"]


def test_a_recbole_split_file_reads_its_data_sets_side_files(tmp_path: Path) -> None:
    """RecBole's benchmark files (ml-100k.train.inter, ...) share ml-100k.item and .user."""
    source = FIXTURES / "recbole"
    for name in ("toy.item", "toy.user"):
        shutil.copy(source / name, tmp_path / name)
    shutil.copy(source / "toy.inter", tmp_path / "toy.train.inter")
    raw = read(tmp_path / "toy.train.inter")
    assert raw.items is not None
    assert raw.items.height == 2
    assert raw.users is not None
    assert raw.users.height > 0
    assert {"read toy.item", "read toy.user"} <= {s.step for s in raw.report.steps}
    shutil.copy(source / "toy.item", tmp_path / "toy.train.item")  # its own comes first
    (tmp_path / "toy.item").write_text("item_id:token\tmovie_title:token_seq\n10\tOther\n")
    raw = read(tmp_path / "toy.train.inter")
    assert raw.items is not None
    assert raw.items.height == 2


def test_recbole_without_timestamp_keeps_file_order(tmp_path: Path) -> None:
    (tmp_path / "x.inter").write_text("session_id:token\titem_id:token\ns1\ta\ns2\tb\ns1\tc\n")
    raw = read(tmp_path / "x.inter", mapping={"user_id": "session_id"})
    assert not raw.has_time
    assert raw.events.select("user_id", "item_id", "timestamp", "action").rows() == [
        ("s1", "a", 0, "view"),
        ("s2", "b", 1, "view"),
        ("s1", "c", 2, "view"),
    ]


def test_sasrec_pairs() -> None:
    raw = read(FIXTURES / "sasrec.txt")
    assert not raw.has_time
    assert raw.events.select("user_id", "item_id", "timestamp", "action").rows() == [
        ("1", "10", 0, "view"),
        ("1", "11", 1, "view"),
        ("2", "10", 2, "view"),
        ("1", "12", 3, "view"),
        ("2", "13", 4, "view"),
    ]
    assert raw.report.steps[0].step == "read sasrec.txt (pairs, 5 lines)"


def test_s3rec_rows() -> None:
    raw = read(FIXTURES / "s3rec.txt")
    assert raw.events.select("user_id", "item_id", "timestamp").rows() == [
        ("1", "10", 0),
        ("1", "11", 1),
        ("1", "12", 2),
        ("2", "10", 3),
        ("2", "13", 4),
        ("3", "14", 5),
    ]
    # "3 14" has two tokens but users never repeat and other lines are longer: rows
    assert raw.report.steps[0].step == "read s3rec.txt (rows, 3 lines)"


def test_two_token_lines_with_unique_users_are_rows(tmp_path: Path) -> None:
    path = tmp_path / "one_each.txt"
    path.write_text("1 10\n2 11\n\n3\t12\n")
    raw = read(path)
    assert raw.report.steps[0].step == "read one_each.txt (rows, 3 lines)"
    assert raw.events.select("user_id", "item_id").rows() == [("1", "10"), ("2", "11"), ("3", "12")]


def test_sequence_separator(tmp_path: Path) -> None:
    path = tmp_path / "comma.txt"
    path.write_text("u1,a,b\nu2,c\n")
    raw = read(path, sep=",")
    assert raw.events.select("user_id", "item_id").rows() == [("u1", "a"), ("u1", "b"), ("u2", "c")]


def test_timestamp_forms() -> None:
    column = pl.Series(
        [
            "1700000000",
            " 1700000000 ",
            "1700000000.99",
            "2023-11-14T22:13:20Z",
            "2023-11-14T23:13:20+01:00",
            "2023-11-14T22:13:20.5",
            "2023-11-14 22:13:20",
            "2023-11-14T22:13",
            "2023-11-14",
            "14/11/2023",
            None,
        ]
    )
    assert to_seconds(column).to_list() == [
        1700000000,
        1700000000,
        1700000000,
        1700000000,
        1700000000,
        1700000000,
        1700000000,
        1699999980,
        1699920000,
        None,
        None,
    ]


def test_jsonl_keys_that_first_appear_late_are_read(tmp_path: Path) -> None:
    lines = [f'{{"user_id": "u1", "item_id": "i{n}", "timestamp": {n}}}' for n in range(150)]
    lines.append('{"user_id": "u1", "item_id": "x", "timestamp": 200, "action": "purchase"}')
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines) + "\n")
    events = read(path).events
    assert events.row(-1)[:4] == ("u1", "x", 200, "purchase")


def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "events.csv").write_text(
        "user_id,item_id,timestamp\r\nu1,i1,1\r\n\r\nu2,i2,2\r\n\r\n"
    )
    (folder / "items.csv").write_text("item_id,title\ni1,one\n\ni2,two\n")
    raw = read(folder)
    assert raw.events.height == 2
    assert raw.items is not None
    assert raw.items.height == 2
    assert raw.report.steps[0].dropped == {"blank line": 2}
    assert_accounting(raw.report)
    # a row with a value only in a column that is not read is no blank line: a bad row
    (folder / "events.csv").write_text("user_id,item_id,timestamp,note\nu1,i1,1,\n,,,orphan\n")
    with pytest.raises(DataError, match="1 bad row"):
        read(folder)


def test_a_folder_of_semicolon_files_with_sep_and_a_typed_tab(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "events.csv").write_text("user_id;item_id;timestamp\nu1;i1;1\nu1;i2;2\n")
    # a side table's types come from every row: a price of 1.5 after 1,000 whole numbers
    prices = "".join(f"i{n};{n}\n" for n in range(1200)) + "late;1.5\n"
    (folder / "items.csv").write_text("item_id;price\n" + prices)
    raw = read(folder, sep=";")
    assert raw.events.height == 2
    assert raw.items is not None
    assert raw.items.filter(pl.col("item_id") == "late")["price"].to_list() == [1.5]
    tabbed = tmp_path / "t.csv"
    tabbed.write_text("user_id\titem_id\ttimestamp\nu1\ti1\t1\n")
    assert read(tabbed, sep="\\t").events.height == 1  # as typed: backslash, t


@pytest.mark.parametrize("name", ["created_at", "eventTime", "occurredAt", "event_date"])
def test_a_time_column_under_a_common_name_is_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / "e.csv"
    path.write_text(f"user_id,item_id,{name}\nu1,a,2024-01-03\nu1,b,2024-01-01\n")
    with pytest.raises(DataError, match=f"'{name}' looks like the times"):
        read(path)


def test_parquet_times_of_offset_zones_categories_and_decimals(tmp_path: Path) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    utc = [dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in (0, 1)]
    columns = {
        "offset": pa.array(utc, pa.timestamp("us", tz="+05:30")),
        "categorical": pa.array(
            ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"]
        ).dictionary_encode(),
        "decimal": pa.array(
            [decimal.Decimal("1704103200.00"), decimal.Decimal("1704106800.00")],
            pa.decimal128(12, 2),
        ),
    }
    for name, times in columns.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(
            pa.table({"user_id": ["u1", "u1"], "item_id": ["a", "b"], "timestamp": times}), path
        )
        assert read(path).events["timestamp"].to_list() == [1704103200, 1704106800], name


def test_a_side_table_named_in_capitals_and_a_jsonl_bom(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "events.csv").write_text("user_id,item_id,timestamp\nu1,i1,1\n")
    (folder / "Items.csv").write_text("item_id,title\ni1,one\n")
    raw = read(folder)
    assert raw.items is not None
    assert raw.items["title"].to_list() == ["one"]
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"user_id": "u1", "item_id": "i1", "timestamp": 1}\n')
    with pytest.raises(DataError, match="byte-order mark"):
        read(path)


def test_header_names_with_spaces_around_them(tmp_path: Path) -> None:
    path = tmp_path / "e.tsv"
    path.write_text("user_id \t item\ttimestamp\nu1\ti1\t1\n")
    events = read(path, mapping={"item_id": "item"}).events  # as --map strips the name
    assert events.select("user_id", "item_id", "timestamp").rows() == [("u1", "i1", 1)]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_whole_float_ids_name_the_same_items_as_integer_ids(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    # as pandas writes an id column with a missing value: floats, "7.0" in a CSV file
    events = pl.DataFrame(
        {"user_id": [1.0, 2.0, 2.0], "item_id": [7.0, 12.0, None], "timestamp": [1, 2, 3]}
    ).with_columns(query=pl.Series([None, None, "mug"]))
    path = folder / f"events.{fmt}"
    {"parquet": events.write_parquet, "csv": events.write_csv, "jsonl": events.write_ndjson}[fmt](
        path
    )
    (folder / "items.csv").write_text("item_id,title\n7,seven\n12,twelve\n")
    raw = read(folder)
    assert raw.events["item_id"].to_list() == ["7", "12", None]
    assert raw.events["user_id"].to_list() == ["1", "2", "2"]
    assert raw.items is not None
    assert raw.items["item_id"].to_list() == ["7", "12"]
    assert raw.items["title"].to_list() == ["seven", "twelve"]


def test_columns_not_read_and_event_ids_are_text(tmp_path: Path) -> None:
    # a delimited file's types are guessed from its first rows: a column nobody reads that
    # changes type later must not stop the read, and event ids keep their leading zeros
    rows = "".join(f"u{n % 7},i{n % 13},{n},{n % 5},{n},{n}\n" for n in range(1200))
    path = tmp_path / "e.csv"
    path.write_text(
        "user_id,item_id,timestamp,price,session,event_id\n"
        + rows
        + "u1,i1,5000,2.5,abc,e-x\nu1,i1,5001,3,s,007\n"
    )
    with path.open("a") as f:
        f.write("   \n")  # a line of spaces: blank, not a row without an item
    raw = read(path)
    assert raw.events.height == 1202
    assert raw.report.steps[0].dropped == {"blank line": 1}
    assert raw.events["event_id"].tail(2).to_list() == ["e-x", "007"]
    assert "ignored columns: price, session" in raw.report.steps[0].step


def test_more_readers_edge_cases(tmp_path: Path) -> None:
    # a RecBole file's blank lines are skipped and counted, as RecBole's loader skips them
    (tmp_path / "rb.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n1\t10\t5\n\n1\t11\t6\n\n"
    )
    raw = read(tmp_path / "rb.inter")
    assert raw.events["item_id"].to_list() == ["10", "11"]
    assert raw.report.steps[0].dropped == {"blank line": 2}
    # a sequence file's header is refused whatever the separator
    (tmp_path / "seq.txt").write_text("user,item\n1,10\n1,11\n")
    with pytest.raises(DataError, match="looks like the header of a table"):
        read(tmp_path / "seq.txt", sep=",")
    # a headerless ratings table saved as .txt is no S3Rec file (users repeat, rows of one length)
    (tmp_path / "ratings.txt").write_text("1 31 2.5 1260759144\n1 29 3.0 1260759179\n2 10 4 1\n")
    with pytest.raises(DataError, match="table without a header"):
        read(tmp_path / "ratings.txt")
    # ... and the fix the message gives reads it
    fields = ["user_id", "item_id", "value", "timestamp"]
    table = read(tmp_path / "ratings.txt", format="csv", sep=" ", columns=fields)
    assert table.events["value"].to_list() == [2.5, 3.0, 4.0]
    # S3Rec rows of one length stay rows (one line per user), as do rows of users repeated
    # at other lengths
    (tmp_path / "rows.txt").write_text("1 31 29 30\n2 10 11 12\n")
    assert read(tmp_path / "rows.txt").events.height == 6
    (tmp_path / "sessions.txt").write_text("1 31 29 30\n1 10 11\n")
    assert read(tmp_path / "sessions.txt").events.height == 5
    # windows of items of one length repeat users too: no rating, no time
    (tmp_path / "windows.txt").write_text("u1 i1 i2 i3\nu1 i2 i3 i4\nu2 i5 i6 i7\n")
    assert read(tmp_path / "windows.txt").events.height == 9
    # MovieLens 100K's u.data layout, whole-number ratings and epoch seconds, saved as .txt
    (tmp_path / "u.txt").write_text("196\t242\t3\t881250949\n196\t302\t3\t891717742\n")
    with pytest.raises(DataError, match="table without a header"):
        read(tmp_path / "u.txt")
    # ISO-8601 minutes with a zone
    path = tmp_path / "t.csv"
    path.write_text(
        "user_id,item_id,timestamp\nu,a,2024-01-01T10:00Z\nu,b,2024-01-01 10:00+02:00\n"
    )
    assert read(path).events["timestamp"].to_list() == [1704103200, 1704096000]
    # a folder's sep is for its CSV files: a TSV file stays tab-separated
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "events.csv").write_text("user_id;item_id;timestamp\nu1;i1;1\n")
    (folder / "items.tsv").write_text("item_id\ttitle\ni1\tsalt; pepper\n")
    raw = read(folder, sep=";")
    assert raw.items is not None
    assert raw.items["title"].to_list() == ["salt; pepper"]


def test_a_file_without_a_header_is_read_with_columns(tmp_path: Path) -> None:
    """As pandas' ``names=``: the first row is data, ``mapping`` applies to the names."""
    rows = "1,10,4,881250949\n2,20,3,881250950\n\n3,30,5,881250951\n"
    path = tmp_path / "ratings.csv"
    path.write_text(rows)
    names = ["user_id", "item_id", "value", "timestamp"]
    raw = read(path, columns=names)
    assert raw.events.select("user_id", "item_id", "timestamp", "value").rows() == [
        ("1", "10", 881250949, 4.0),
        ("2", "20", 881250950, 3.0),
        ("3", "30", 881250951, 5.0),
    ]
    assert raw.report.steps[0].dropped == {"blank line": 1}
    assert prepare(path, tmp_path / "prepared", columns=names).n_events == 3  # the same option
    mapped = read(path, columns=["u", "i", "r", "t"], mapping={"user_id": "u", "item_id": "i"})
    assert mapped.events["user_id"].to_list() == ["1", "2", "3"]
    assert not mapped.has_time  # t is not mapped: the rows are in file order
    tsv = tmp_path / "ratings.tsv.gz"
    tsv.write_bytes(gzip.compress(rows.replace(",", "\t").encode()))
    assert read(tsv, columns=names).events.height == 3
    # a row with more fields than the names is a bad row, named by its line
    long = tmp_path / "long.csv"
    long.write_text('1,10,4,881250949\n2,20,3,881250950,x\n3,"3,0",5,881250951\n')
    with pytest.raises(DataError, match=r"line 2 has 5 fields, --columns names 4"):
        read(long, columns=names)
    dropped = read(long, columns=names, on_error="drop")
    assert dropped.events["item_id"].to_list() == ["10", "3,0"]


def test_prepare_reads_a_file_without_a_header_with_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from behaviorlm.cli import main

    path = tmp_path / "log.csv"
    path.write_text("".join(f"u{u % 3},i{u % 5},{100 + u}\n" for u in range(12)))
    out = tmp_path / "ds"
    assert main(["prepare", str(path), str(out), "--columns", "user_id,item_id,timestamp"]) == 0
    assert Dataset.load(out).n_users == 3
    assert main(["prepare", str(path), str(tmp_path / "no")]) == 2
    assert "--columns user_id,item_id" in capsys.readouterr().err


def test_an_empty_json_lines_side_table_is_a_table_without_rows(tmp_path: Path) -> None:
    # a JSON Lines table without rows has no header: it is an empty file, as the simulator
    # writes a follow graph without edges; the folder still reads, events included
    from behaviorlm.data.synthetic import SimConfig, simulate, write_simulation

    raw = simulate(config=SimConfig(n_users=30, seed=1, follows_per_user=0.0))
    assert raw.follows is not None
    assert raw.follows.height == 0
    folder = write_simulation(raw, tmp_path / "sim", format="jsonl")
    assert (folder / "follows.jsonl").read_text().strip() == ""
    back = read(folder)
    assert back.events.height == raw.events.height
    csv = read(write_simulation(raw, tmp_path / "csv", format="csv"))  # a header, no rows
    assert back.follows is not None
    assert csv.follows is not None
    assert back.follows.equals(csv.follows)
    (folder / "events.jsonl").write_text("\n \n")
    with pytest.raises(DataError, match="holds no JSON objects"):
        read(folder)


def test_a_side_tables_other_columns_read_alike_from_csv_and_json_lines(tmp_path: Path) -> None:
    # a code with a leading zero (a UPC) stays text; numbers and true/false are typed
    items = pl.DataFrame(
        {
            "item_id": ["i1", "i2"],
            "upc": ["012345678905", "123456789012"],
            "stock": [3, None],
            "weight": [1.5, 2.0],
            "active": [True, False],
            "note": ["x", "7"],
        }
    )
    events = pl.DataFrame({"user_id": ["u1", "u1"], "item_id": ["i1", "i2"], "timestamp": [1, 2]})
    read_back = {}
    for fmt in ("csv", "jsonl"):
        folder = tmp_path / fmt
        folder.mkdir()
        events.write_csv(folder / "events.csv")
        if fmt == "csv":
            items.write_csv(folder / "items.csv")
        else:
            items.write_ndjson(folder / "items.jsonl")
        raw = read(folder)
        assert raw.items is not None
        read_back[fmt] = raw.items
    assert read_back["csv"].equals(read_back["jsonl"])
    assert read_back["csv"]["upc"].to_list() == ["012345678905", "123456789012"]
    assert read_back["csv"].schema["stock"] == pl.Int64


def test_event_ids_past_63_bits_stay_whole_as_text() -> None:
    from behaviorlm.data.readers.normalize import carried

    big = pl.DataFrame({"event_id": pl.Series([2**63, 7], dtype=pl.UInt64)})
    assert carried(big)["event_id"].to_list() == [str(2**63), "7"]
    small = pl.DataFrame({"event_id": pl.Series([3, None], dtype=pl.UInt32)})
    assert carried(small)["event_id"].dtype == pl.Int64

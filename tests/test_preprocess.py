"""Preprocessing: dedupe, repeats, k-core, stable sort, id maps, vocabularies, side tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from behaviorlm.artifact import Artifact
from behaviorlm.config import ConfigError
from behaviorlm.data.dataset import EVENT_DTYPES, Dataset
from behaviorlm.data.errors import DataError
from behaviorlm.data.preprocess import PrepareConfig, prepare, preprocess
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.data.synthetic import simulate
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.schema import ACTIONS, SOURCES
from behaviorlm.serve.store import EventRecord
from behaviorlm.serve.timelines import LiveTimelines


def events(rows: list[dict[str, object]], **extra: list[object]) -> pl.DataFrame:
    """A raw events frame in RAW_EVENT_DTYPES order from partial rows (absent -> null)."""
    frame = pl.DataFrame(
        {name: [row.get(name) for row in rows] for name in RAW_EVENT_DTYPES},
        schema=RAW_EVENT_DTYPES,
    )
    if extra:
        frame = frame.with_columns(pl.Series(k, v) for k, v in extra.items())
    return frame


def ev(
    user: str, item: str | None, ts: int, action: str | None = "view", **kw: object
) -> dict[str, object]:
    return {"user_id": user, "item_id": item, "timestamp": ts, "action": action, **kw}


def rows_of(ds: Dataset, *columns: str) -> list[tuple[object, ...]]:
    return ds.events.select(columns).rows()


def check_accounting(ds: Dataset) -> None:
    for step in ds.meta["quality"]:
        assert step["rows_in"] - step["rows_out"] == sum(step["dropped"].values()), step


def test_dedupe_keeps_first_exact_duplicate_and_counts_it() -> None:
    raw = RawData(
        events=events(
            [
                ev("a", "x", 1),
                ev("a", "x", 1),  # exact duplicate of row 0
                ev("a", "x", 1, value=5.0),  # differs in value: not a duplicate
                ev("a", "y", 2),
                ev("a", "x", 1),  # another duplicate, not adjacent
            ],
            event_id=[10, 11, 12, 13, 14],
        )
    )
    ds = preprocess(raw)
    assert ds.events["event_id"].to_list() == [10, 12, 13]
    step = next(s for s in ds.meta["quality"] if s["step"] == "dedupe")
    assert step == {
        "step": "dedupe",
        "rows_in": 5,
        "rows_out": 3,
        "dropped": {"duplicate event": 2},
    }
    assert preprocess(raw, PrepareConfig(dedupe=False)).n_events == 5
    check_accounting(ds)


def test_collapse_repeats_drops_immediate_repeats_only() -> None:
    raw = RawData(
        events=events(
            [
                ev("a", "x", 1),
                ev("a", "x", 2),  # repeat -> dropped
                ev("a", "x", 3, "cart"),  # other action -> kept
                ev("a", "y", 4),
                ev("a", "x", 5),  # not immediate -> kept
                ev("a", None, 6, "search", query="shoes"),
                ev("a", None, 7, "search", query="shoes"),  # same query -> dropped
                ev("a", None, 8, "search", query="hats"),
                ev("b", "hats", 9),
                ev("b", "hats", 10),  # repeat within b -> dropped
            ],
            event_id=list(range(10)),
        )
    )
    ds = preprocess(raw, PrepareConfig(collapse_repeats=True))
    assert ds.events["event_id"].to_list() == [0, 2, 3, 4, 5, 7, 8]
    step = next(s for s in ds.meta["quality"] if s["step"] == "collapse repeats")
    assert step["dropped"] == {"repeat of previous event": 3}
    assert preprocess(raw).n_events == 10
    check_accounting(ds)


def test_k_core_is_iterative() -> None:
    # min 2 events per user and per item. Round 1 drops item z (1 event) -> user c has 1 event
    # left; round 2 drops c -> item y has 1 event left; round 3 drops y -> user b has 1 event
    # left; round 4 drops b -> x still has a, a and d: stable.
    rows = [
        ev("a", "x", 1),
        ev("a", "x", 2),
        ev("d", "x", 1),
        ev("d", "w", 2),
        ev("d", "w", 3),
        ev("b", "x", 1),
        ev("b", "y", 2),
        ev("c", "y", 1),
        ev("c", "z", 2),
    ]
    ds = preprocess(
        RawData(events=events(rows)), PrepareConfig(min_user_events=2, min_item_events=2)
    )
    assert ds.users["user_id"].to_list() == ["a", "d"]
    assert ds.items["item_id"].to_list() == ["w", "x"]
    assert ds.n_events == 5
    assert ds.meta["min_counts"] == {"iterations": 4, "users_dropped": 2, "items_dropped": 2}
    step = next(s for s in ds.meta["quality"] if s["step"] == "min counts")
    assert step["rows_in"] == 9
    assert step["rows_out"] == 5
    assert step["dropped"] == {
        "item with fewer than 2 events": 2,  # z (round 1), y (round 3)
        "user with fewer than 2 events": 2,  # c (round 2), b (round 4)
    }
    counts_u = ds.events.group_by("user").len()["len"].to_list()
    counts_i = ds.events.group_by("item").len()["len"].to_list()
    assert min(counts_u) >= 2
    assert min(counts_i) >= 2
    check_accounting(ds)
    # the same settings as a mapping, as blm.train takes its config
    as_mapping = preprocess(
        RawData(events=events(rows)), {"min_user_events": 2, "min_item_events": 2}
    )
    assert as_mapping.events.equals(ds.events)
    with pytest.raises(ConfigError, match="min_user_event"):
        preprocess(RawData(events=events(rows)), {"min_user_event": 2})
    with pytest.raises(TypeError, match="PrepareConfig or a mapping"):
        preprocess(RawData(events=events(rows)), 2)  # type: ignore[arg-type]


def test_searches_do_not_count_for_items_and_stay_with_their_user() -> None:
    rows = [
        ev("a", "x", 1),
        ev("a", None, 2, "search", query="q"),
        ev("b", "x", 1),
        ev("b", "y", 2),  # y has one event -> dropped
        ev("c", None, 1, "search", query="q"),
        ev("c", "z", 2),  # z has one event -> dropped, the search stays
    ]
    ds = preprocess(RawData(events=events(rows)), PrepareConfig(min_item_events=2))
    assert rows_of(ds, "user", "item", "action") == [
        (1, 1, ACTIONS.index("view") + 1),
        (1, 0, ACTIONS.index("search") + 1),
        (2, 1, ACTIONS.index("view") + 1),
        (3, 0, ACTIONS.index("search") + 1),
    ]
    with pytest.raises(DataError, match="did not converge"):
        preprocess(
            RawData(events=events(rows)),
            PrepareConfig(min_user_events=2, min_item_events=2, max_iterations=1),
        )


def test_a_long_chain_is_filtered_to_its_fixed_point_without_a_cap() -> None:
    """A chain that the k-core peels one user at a time took more than 100 rounds, and
    refused it with a setting the command line does not have."""
    rows = [ev(f"u{k}", f"i{j}", j) for k in range(120) for j in (k, k + 1)]
    rows += [ev(f"c{a}", f"d{b}", b) for a in range(3) for b in range(3)]
    ds = preprocess(
        RawData(events=events(rows)), PrepareConfig(min_user_events=2, min_item_events=2)
    )
    assert ds.n_events == 9
    assert ds.meta["min_counts"]["iterations"] > 100


def test_query_words_are_split_on_white_space_as_the_service_codes_them() -> None:
    events = pl.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["i1", None, "i2"],
            "timestamp": [1, 2, 3],
            "query": [None, "  Red   shoes\tsize 42 ", None],
        }
    )
    ds = preprocess(RawData(events=events))
    assert ds.query_vocab() == ["42", "red", "shoes", "size"]
    # before, repeated spaces and the tab held the four slots with empty and unknown words
    assert ds.query_words()[1].tolist() == [2, 3, 4, 1]
    art = Artifact(model=Pop(PopConfig()).fit(ds.sequences()), dataset=ds)
    live = EventRecord(
        user_id="u", item_id=None, timestamp=9, action="search", query="red  shoes\tsize  42"
    )
    assert LiveTimelines(art).code([live])["query_words"][0].tolist() == [2, 3, 4, 1]
    # the separators \x1c to \x1f split words in the data set as in the service
    odd = preprocess(
        RawData(events=events.with_columns(query=pl.Series([None, "red\x1fshoes", None])))
    )
    assert odd.query_vocab() == ["red", "shoes"]
    one = Artifact(model=Pop(PopConfig()).fit(odd.sequences()), dataset=odd)
    coded = LiveTimelines(one).code([replace(live, query="red\x1fshoes")])["query_words"][0]
    assert coded.tolist() == odd.query_words()[1].tolist() == [1, 2, 0, 0]


def test_a_word_vocabulary_made_before_the_white_space_rule_codes_as_it_was_trained() -> None:
    events = pl.DataFrame(
        {
            "user_id": ["u", "u"],
            "item_id": [None, "i1"],
            "timestamp": [1, 2],
            "query": ["red  shoes\tsize 42", None],
        }
    )
    ds = preprocess(RawData(events=events))
    ds.vocab["query_word"] = ["42", "red", "shoes\tsize"]  # as a data set saved then holds it
    assert ds.query_split == "space"
    assert ds.query_words()[0].tolist() == [2, 0, 3, 1]  # as the model was trained
    art = Artifact(model=Pop(PopConfig()).fit(ds.sequences()), dataset=ds)
    live = EventRecord(
        user_id="u", item_id=None, timestamp=9, action="search", query="red  shoes\tsize 42"
    )
    assert LiveTimelines(art).code([live])["query_words"][0].tolist() == [2, 0, 3, 1]


def test_nothing_left_raises() -> None:
    raw = RawData(events=events([ev("a", "x", 1), ev("b", "y", 1)]))
    with pytest.raises(DataError, match="no events left"):
        preprocess(raw, PrepareConfig(min_item_events=2))


def test_searches_alone_left_raise() -> None:
    """A k-core that leaves the searches alone leaves nothing to recommend: refused, not a
    data set of 0 items."""
    search = {"action": "search", "query": "red shoes"}
    rows = [
        ev("a", "x", 1),
        ev("a", None, 2, **search),
        ev("b", "y", 3),
        ev("b", None, 4, **search),
    ]
    with pytest.raises(DataError, match="no item left after preprocessing") as error:
        preprocess(RawData(events=events(rows)), PrepareConfig(min_item_events=2))
    assert "lower min_user_events / min_item_events" in error.value.line()
    searches = RawData(events=events([r for r in rows if r["item_id"] is None]))
    for config in (PrepareConfig(), PrepareConfig(min_item_events=2)):
        with pytest.raises(DataError, match="every event left is a search") as error:
            preprocess(searches, config)
        assert "a data set needs events on items" in error.value.line()


def test_stable_time_sort_keeps_input_order_for_equal_timestamps() -> None:
    rows = [
        ev("b", "p", 5),
        ev("a", "z", 3),
        ev("a", "x", 1),
        ev("a", "y", 3),  # same time as z, later in the input -> after z
        ev("b", "q", 5),
        ev("b", "r", 4),
    ]
    ds = preprocess(RawData(events=events(rows, event_id=[0, 1, 2, 3, 4, 5])))
    assert rows_of(ds, "user", "timestamp", "event_id") == [
        (1, 1, 2),
        (1, 3, 1),
        (1, 3, 3),
        (2, 4, 5),
        (2, 5, 0),
        (2, 5, 4),
    ]


def test_order_only_input_keeps_order() -> None:
    # SASRec-style input: timestamps are input positions, users interleaved
    items = ["5", "3", "9", "1", "3"]
    users = ["2", "1", "2", "1", "2"]
    raw = RawData(
        events=events([ev(u, i, k) for k, (u, i) in enumerate(zip(users, items, strict=True))]),
        has_time=False,
    )
    ds = preprocess(raw)
    assert ds.meta["has_time"] is False
    external = ds.items["item_id"].to_list()
    timelines = ds.events.group_by("user", maintain_order=True).agg(pl.col("item"))["item"]
    assert [[external[i - 1] for i in t] for t in timelines.to_list()] == [
        ["3", "1"],
        ["5", "9", "3"],
    ]


def test_id_maps_natural_order_padding_and_round_trip() -> None:
    rows = [
        ev("u10", "i2", 1),
        ev("u2", "i10", 2),
        ev("u2", None, 3, "search", query="red"),
        ev("u1", "i1", 4),
    ]
    ds = preprocess(RawData(events=events(rows)))
    assert ds.users.rows() == [(1, "u1"), (2, "u2"), (3, "u10")]
    assert ds.items.rows() == [(1, "i1"), (2, "i2"), (3, "i10")]
    assert ds.user_index(["u10", "u1", "nobody"]).tolist() == [3, 1, 0]
    assert ds.item_index(ds.items["item_id"]).tolist() == [1, 2, 3]
    assert rows_of(ds, "user", "item") == [(1, 1), (2, 3), (2, 0), (3, 2)]
    assert ds.events["item"].min() == 0
    assert ds.events["user"].min() == 1


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["10", "2", "1"], ["1", "2", "10"]),  # canonical integers: numeric
        (["10", "2", "007"], ["2", "007", "10"]),  # not canonical: natural order, still by value
        (["b", "a10", "a9", "a"], ["a", "a9", "a10", "b"]),
        (["x-1", "x-0", "7"], ["7", "x-0", "x-1"]),
        (["é10", "é2"], ["é2", "é10"]),  # prefix of several bytes
        (["u1x", "u2"], ["u2", "u1x"]),  # "u1x" has prefix "u1x" and no number
    ],
)
def test_id_order(ids: list[str], expected: list[str]) -> None:
    ds = preprocess(RawData(events=events([ev(u, "i", k) for k, u in enumerate(ids)])))
    assert ds.users["user_id"].to_list() == expected


def test_row_order_does_not_change_the_dataset() -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = events(
        [
            ev(f"u{rng.integers(20)}", f"i{rng.integers(30)}", k, str(rng.choice(["view", "buy"])))
            for k in range(n)
        ],
        event_id=list(range(n)),
    )
    a = preprocess(RawData(events=frame))
    b = preprocess(RawData(events=frame.sample(fraction=1.0, shuffle=True, seed=1)))
    assert a.events.equals(b.events)
    assert a.users.equals(b.users)
    assert a.items.equals(b.items)
    assert a.vocab == b.vocab


def test_vocabularies_builtin_first_custom_sorted_compacted() -> None:
    rows = [
        ev("a", "x", 1, "zap", device="web", location="rome", source="self"),
        ev("a", "x", 2, "purchase", device="ios", location=None, source="social"),
        ev("a", "x", 3, "bookmark", device="android", location="oslo", source="partner"),
        ev("b", "y", 1, "wish", device="tv", location="lima", source="self"),  # b dropped below
        ev("a", "x", 4, None, device=None, location="rome", source=None),
    ]
    ds = preprocess(RawData(events=events(rows)), PrepareConfig(min_item_events=2))
    assert ds.vocab["action"] == [*ACTIONS, "bookmark", "zap"]
    assert ds.vocab["device"] == ["android", "ios", "web"]
    assert ds.vocab["location"] == ["oslo", "rome"]
    assert ds.vocab["source"] == [*SOURCES, "partner"]
    assert rows_of(ds, "action", "device", "location", "source") == [
        (len(ACTIONS) + 2, 3, 2, 1),
        (ACTIONS.index("purchase") + 1, 2, 0, 2),
        (len(ACTIONS) + 1, 1, 1, len(SOURCES) + 1),
        (0, 0, 2, 0),
    ]
    assert ds.action_code("purchase") == ACTIONS.index("purchase") + 1
    assert ds.meta["action_counts"]["purchase"] == 1
    assert ds.meta["action_counts"]["view"] == 0


def test_event_table_schema_and_carried_columns() -> None:
    rows = [ev("a", "x", 2, value=4.5), ev("a", "y", 1, query="q"), ev("b", "x", 1)]
    raw = RawData(
        events=events(
            rows,
            event_id=["e0", "e1", "e2"],
            truth_cause_event=[None, "e0", None],
            truth_cause_group=["history", "none", "social"],
        )
    )
    ds = preprocess(raw)
    assert ds.events.columns == [
        *EVENT_DTYPES,
        "event_id",
        "truth_cause_event",
        "truth_cause_group",
    ]
    assert dict(ds.events.schema) == {
        **EVENT_DTYPES,
        "event_id": pl.String(),
        "truth_cause_event": pl.String(),
        "truth_cause_group": pl.String(),
    }
    assert rows_of(ds, "event_id", "truth_cause_event", "truth_cause_group", "query") == [
        ("e1", "e0", "none", "q"),
        ("e0", None, "history", None),
        ("e2", None, "social", None),
    ]
    assert ds.events["value"].to_list() == [None, 4.5, None]
    assert "truth_cause_group" not in ds.model_columns()


def test_side_tables_users_items_follows() -> None:
    rows = [ev("a", "x", 1), ev("a", "y", 2), ev("b", "x", 3), ev("b", "y", 4), ev("c", "z", 1)]
    items = pl.DataFrame(
        {
            "item_id": ["x", "y", "y", "z", "never", None],
            "title": ["X", "Y", "Y again", "Z", "N", "null id"],
            "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    users = pl.DataFrame(
        {"user_id": ["a", "b", "c", "ghost"], "truth_influence": [0.1, 0.2, 0.3, 0.4]}
    )
    follows = pl.DataFrame(
        {
            "follower_id": ["a", "b", "a", "a", "ghost", "c", None],
            "followee_id": ["b", "a", "b", "a", "a", "a", "a"],
            "since": [5, 6, 7, 8, 9, 10, 11],
        }
    )
    raw = RawData(events=events(rows), items=items, users=users, follows=follows)
    # item z has one event -> dropped with user c
    ds = preprocess(raw, PrepareConfig(min_item_events=2))
    assert ds.items.rows() == [(1, "x", "X", 1.0), (2, "y", "Y", 2.0)]
    assert ds.users.rows() == [(1, "a", 0.1), (2, "b", 0.2)]
    assert ds.follows.rows() == [(1, 2, 5), (2, 1, 6)]
    steps = {s["step"]: s for s in ds.meta["quality"]}
    assert steps["items table"]["dropped"] == {
        "missing item_id": 1,
        "duplicate item_id": 1,
        "item has no events": 1,
        "all events of the item were dropped": 1,
    }
    assert steps["users table"]["dropped"] == {
        "user has no events": 1,
        "all events of the user were dropped": 1,
    }
    assert steps["follows table"]["dropped"] == {
        "missing follower_id or followee_id": 1,
        "user without events": 2,
        "self follow": 1,
        "duplicate edge": 1,
    }
    check_accounting(ds)
    # kept duplicate events keep no duplicate edge: a follower counts once (reach, exposure)
    kept = preprocess(raw, PrepareConfig(min_item_events=2, dedupe=False))
    assert kept.follows.rows() == [(1, 2, 5), (2, 1, 6)]


def test_without_side_tables() -> None:
    ds = preprocess(RawData(events=events([ev("a", "x", 1)])))
    assert ds.items.columns == ["item", "item_id"]
    assert ds.users.columns == ["user", "user_id"]
    assert ds.follows.height == 0
    assert dict(ds.follows.schema) == {
        "follower": pl.Int64(),
        "followee": pl.Int64(),
        "since": pl.Int64(),
    }


def test_meta_and_report_include_reading_steps() -> None:
    raw = RawData(events=events([ev("a", "x", 1), ev("a", "x", 1)]), name="toy")
    raw.report.add("validate events.csv", 3, 2, {"empty user_id": 1})
    ds = preprocess(raw, PrepareConfig(min_user_events=1))
    assert [s["step"] for s in ds.meta["quality"]] == ["validate events.csv", "dedupe"]
    assert len(raw.report.steps) == 1  # the input's report is not modified
    assert ds.meta["name"] == "toy"
    assert ds.meta["has_time"] is True
    assert (ds.meta["n_users"], ds.meta["n_items"], ds.meta["n_events"]) == (1, 1, 1)
    assert ds.meta["config"] == {
        "dedupe": True,
        "collapse_repeats": False,
        "min_user_events": 1,
        "min_item_events": 1,
        "max_iterations": None,
    }


def test_missing_user_or_time_are_dropped_and_counted() -> None:
    frame = events([ev("a", "x", 1), ev("a", "y", 2)])
    frame = pl.concat(
        [
            frame,
            pl.DataFrame(
                {"user_id": [None, "b"], "item_id": ["x", "x"], "timestamp": [3, None]},
                schema={k: RAW_EVENT_DTYPES[k] for k in ("user_id", "item_id", "timestamp")},
            ),
        ],
        how="diagonal",
    )
    ds = preprocess(RawData(events=frame))
    assert ds.n_events == 2
    step = ds.meta["quality"][0]
    assert step["step"] == "required fields"
    assert step["dropped"] == {"missing user_id": 1, "missing timestamp": 1}


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="min_user_events"):
        PrepareConfig(min_user_events=0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    rows = [ev("a", "x", 2, value=4.5), ev("a", None, 1, "search", query="q"), ev("b", "x", 1)]
    raw = RawData(
        events=events(rows, truth_cause_group=["history", "none", "social"]),
        users=pl.DataFrame({"user_id": ["a", "b"], "age": [30, 40]}),
        follows=pl.DataFrame({"follower_id": ["a"], "followee_id": ["b"], "since": [None]}),
        name="toy",
    )
    ds = preprocess(raw, PrepareConfig(collapse_repeats=True))
    back = Dataset.load(ds.save(tmp_path / "prepared"))
    for table in ("events", "items", "users", "follows"):
        assert getattr(back, table).equals(getattr(ds, table)), table
    assert back.vocab == ds.vocab
    assert back.meta == ds.meta


def test_prepare_reads_preprocesses_and_saves(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    lines = ["u2,i1,5", "u1,i2,3", "u1,i2,3", "u1,i1,4", "u2,i2,6", "u3,i3,1"]
    source.write_text("uid,item_id,timestamp\n" + "\n".join(lines) + "\n")
    ds = prepare(
        source,
        tmp_path / "prepared",
        mapping={"user_id": "uid"},
        config=PrepareConfig(min_item_events=2),
    )
    assert rows_of(ds, "user", "item", "timestamp") == [(1, 2, 3), (1, 1, 4), (2, 1, 5), (2, 2, 6)]
    assert ds.users["user_id"].to_list() == ["u1", "u2"]
    back = Dataset.load(tmp_path / "prepared")
    assert back.events.equals(ds.events)
    steps = back.meta["quality"]
    assert [s["step"] for s in steps][-2:] == ["dedupe", "min counts"]
    assert steps[-1]["dropped"] == {"item with fewer than 2 events": 1}


def test_preprocess_refuses_a_prepared_dataset() -> None:
    ds = preprocess(simulate(30, seed=0))
    with pytest.raises(TypeError, match="preprocessed already"):
        preprocess(ds)  # type: ignore[arg-type]


def test_events_built_by_hand_read_as_a_file_of_them_would() -> None:
    """No action column: views from the user, as a file without one; datetimes and ISO text
    become seconds; numeric ids become text. (They were coded unknown, in microseconds, or
    failed with a TypeError.)"""
    import datetime as dt

    when = [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)]
    for times in (when, ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"], [1704067200, 1704153600]):
        frame = pl.DataFrame({"user_id": [7, 7], "item_id": [1, 2], "timestamp": times})
        ds = preprocess(RawData(events=frame))
        assert ds.event_actions() == ["view"]
        assert ds.events["timestamp"].to_list() == [1704067200, 1704153600]
        assert ds.vocab["source"][int(ds.events["source"][0]) - 1] == "self"
        assert ds.users["user_id"].to_list() == ["7"]


def test_hand_built_events_are_dropped_counted_and_checked_as_typed_ones_are() -> None:
    partial = pl.DataFrame(
        {"user_id": ["a", None, "a"], "item_id": ["x", "y", "z"], "timestamp": [1, 2, 3]}
    )
    ds = preprocess(RawData(events=partial))  # a bad row is dropped and counted, not raised
    assert ds.n_events == 2
    assert any(s["dropped"] for s in ds.meta["quality"])
    ms = events([ev("a", "x", 1_700_000_000_000), ev("a", "y", 1_700_000_001_000)])
    with pytest.raises(DataError, match="look like milliseconds"):
        preprocess(RawData(events=ms))  # typed as the readers give it: checked all the same
    order = pl.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"], "timestamp": [2, 1]})
    ds = preprocess(RawData(events=order, has_time=False))  # positions given are kept
    assert ds.items["item_id"][int(ds.events["item"][0]) - 1] == "y"
    # positions as digits of dates are no dates; positions that are no numbers give row order
    for times in ([20240131, 20240201], [None, None], ["b", "a"]):
        placeholder = pl.DataFrame(
            {"user_id": ["a", "a"], "item_id": ["x", "y"], "timestamp": times}
        )
        assert preprocess(RawData(events=placeholder, has_time=False)).n_events == 2


def test_typed_table_reads_as_a_file_would() -> None:
    # a table already in the raw types folds built-in names and gives event ids one type, as
    # a file of it read through data.io does: "Purchase" is a purchase, not an unknown action
    rows = [
        ev("a", "x", 1, " Purchase", source="SOCIAL"),
        ev("a", "y", 2, "View"),
        ev("a", "z", 3, "wishlist"),
    ]
    ds = preprocess(RawData(events=events(rows, event_id=[7.0, 8.0, 9.0])))  # as pandas has
    actions, sources = ds.vocab["action"], ds.vocab["source"]
    named = [actions[c - 1] for c in ds.events["action"].to_list()]  # code 0: unknown
    assert named == ["purchase", "view", "wishlist"]
    assert sources[ds.events["source"][0] - 1] == "social"
    assert ds.events["event_id"].to_list() == [7, 8, 9]  # whole numbers, as a file's are
    # a time in milliseconds among seconds is dropped and counted, as a file's row is
    late = [ev("a", "x", 1_700_000_000 + t) for t in range(3)] + [ev("a", "y", 1_700_000_050_000)]
    kept = preprocess(RawData(events=events(late)))
    assert kept.n_events == 3
    step = next(s for s in kept.meta["quality"] if s["step"] == "validate events")
    assert step["dropped"] == {"timestamp out of range": 1}


def test_hand_built_side_tables_read_as_files_of_them_would() -> None:
    # as pandas gives them: float ids (the events hold a search without an item) and a
    # list of categories per item; the titles join and the categories become "a|b"
    raw = RawData(
        events=pl.DataFrame(
            {
                "user_id": ["u1", "u1", "u1"],
                "item_id": [7.0, None, 8.0],
                "timestamp": [1, 2, 3],
                "query": [None, "mugs", None],
            }
        ),
        items=pl.DataFrame(
            {"item_id": [7.0, 8.0, 8.0], "category": [["audio", "sale"], ["phones"], ["x"]]}
        ),
        users=pl.DataFrame({"user_id": ["u1"], "age": [30]}),
    )
    ds = preprocess(raw)
    assert ds.items["item_id"].to_list() == ["7", "8"]
    assert ds.items["category"].to_list() == ["audio|sale", "phones"]
    step = next(s for s in ds.meta["quality"] if s["step"] == "validate items")
    assert step["dropped"] == {"duplicate item_id": 1}
    check_accounting(ds)

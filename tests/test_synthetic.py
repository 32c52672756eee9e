"""The simulator: determinism, schema, and every planted cause present and measurable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from behaviorlm.data.errors import DataError
from behaviorlm.data.preprocess import prepare
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.data.synthetic import SimConfig, simulate, write_simulation
from behaviorlm.data.synthetic.sampling import GroupSampler
from behaviorlm.data.synthetic.vocab import BASE_CATEGORIES, vocabulary
from behaviorlm.schema import ACTIONS, FEATURE_GROUPS, SOURCES

TRUTH_COLUMNS = {
    "event_id": pl.Int64,
    "truth_cause_event": pl.Int64,
    "truth_cause_group": pl.String,
}


@pytest.fixture(scope="module")
def raw() -> RawData:
    # a catalogue larger than what one user sees, so "viewed by chance" is rare
    return simulate(config=SimConfig(n_users=300, n_items=1500, seed=0))


def _events_with_users(raw: RawData) -> pl.DataFrame:
    assert raw.users is not None
    assert raw.items is not None
    return raw.events.join(
        raw.users.select("user_id", pl.col("city").alias("user_city")), on="user_id", how="left"
    ).join(
        raw.items.select("item_id", "category", pl.col("city").alias("item_city"), "app_only"),
        on="item_id",
        how="left",
    )


def test_same_seed_same_frames_and_different_seed_differs() -> None:
    a, b, c = simulate(60, seed=3), simulate(60, seed=3), simulate(60, seed=4)
    for name in ("events", "items", "users", "follows"):
        frame_a, frame_b = getattr(a, name), getattr(b, name)
        assert frame_a.equals(frame_b), name
    assert not a.events.equals(c.events)
    assert a.items is not None
    assert c.items is not None
    assert not a.items.equals(c.items)


def test_schema_and_dtypes(raw: RawData) -> None:
    ev = raw.events
    assert dict(ev.schema) == {**RAW_EVENT_DTYPES, **TRUTH_COLUMNS}
    assert raw.name == "simulator"
    assert raw.has_time
    assert [(s.step, s.rows_in, s.rows_out) for s in raw.report.steps] == [
        ("simulate", ev.height, ev.height)
    ]
    assert ev["event_id"].to_list() == list(range(ev.height))
    assert set(ev["action"].unique()) <= set(ACTIONS)
    assert set(ev["source"].unique()) == set(SOURCES)
    assert set(ev["truth_cause_group"].unique()) == {"none", *FEATURE_GROUPS}
    assert (
        ev.null_count()
        .select("user_id", "timestamp", "action", "device", "location")
        .sum_horizontal()
        .item()
        == 0
    )
    search = ev["action"] == "search"
    assert ev.filter(search)["item_id"].is_null().all()
    assert ev.filter(search)["query"].is_not_null().all()
    assert ev.filter(~search)["item_id"].is_not_null().all()
    assert ev.filter(~search)["query"].is_null().all()
    # a view that a search steered is a click on a search result: the search is its source
    clicked = (ev["action"] == "view") & (ev["truth_cause_group"] == "search")
    assert clicked.sum() > 0
    assert ((ev["source"] == "search") == clicked).all()
    rate = ev["action"] == "rate"
    assert ev.filter(~rate)["value"].is_null().all()
    assert ev.filter(rate)["value"].is_in([1.0, 2.0, 3.0, 4.0, 5.0]).all()

    # sorted by user number, then strictly increasing time within a user
    user_no = ev["user_id"].str.slice(1).cast(pl.Int64).to_numpy()
    ts = ev["timestamp"].to_numpy()
    assert (np.diff(user_no) >= 0).all()
    same_user = np.diff(user_no) == 0
    assert (np.diff(ts)[same_user] > 0).all()
    assert ts.min() >= SimConfig().start_time

    items, users, follows = raw.items, raw.users, raw.follows
    assert items is not None
    assert users is not None
    assert follows is not None
    assert dict(items.schema) == {
        "item_id": pl.String, "title": pl.String, "category": pl.String, "text": pl.String,
        "price": pl.Float64, "city": pl.String, "app_only": pl.Boolean, "complement_id": pl.String,
    }  # fmt: skip
    assert dict(users.schema) == {
        "user_id": pl.String, "city": pl.String, "device": pl.String, "truth_influence": pl.Float64
    }  # fmt: skip
    assert dict(follows.schema) == {
        "follower_id": pl.String,
        "followee_id": pl.String,
        "since": pl.Int64,
    }
    assert users.height == 300
    assert items.height == 1500
    assert items["item_id"].is_unique().all()
    assert users["user_id"].is_unique().all()
    assert (items["price"] > 0).all()
    assert ev["item_id"].drop_nulls().is_in(items["item_id"].implode()).all()
    assert ev["user_id"].is_in(users["user_id"].implode()).all()
    assert items["complement_id"].drop_nulls().is_in(items["item_id"].implode()).all()
    assert (
        pl.concat([follows["follower_id"], follows["followee_id"]])
        .is_in(users["user_id"].implode())
        .all()
    )
    assert (follows["follower_id"] != follows["followee_id"]).all()
    assert not follows.select("follower_id", "followee_id").is_duplicated().any()
    assert (follows["since"] < ts.min()).all()


def test_titles_are_made_of_category_words(raw: RawData) -> None:
    assert raw.items is not None
    for row in raw.items.head(50).iter_rows(named=True):
        mods, nouns, _, _ = BASE_CATEGORIES[row["category"]]
        *words, model = row["title"].split(" ")
        assert set(words) <= set(mods) | set(nouns)
        assert model[0].isalpha()
        assert model[1:].isdigit()


def test_complements_follow_purchases_far_above_chance(raw: RawData) -> None:
    ev, items, n_users = raw.events, raw.items, raw.events["user_id"].n_unique()
    assert items is not None
    bought = (
        ev.filter(pl.col("action") == "purchase")
        .join(items.select("item_id", "complement_id"), on="item_id")
        .filter(pl.col("complement_id").is_not_null())
    )
    views = ev.filter(pl.col("action") == "view").select(
        "user_id", pl.col("item_id").alias("complement_id"), pl.col("timestamp").alias("seen_at")
    )
    later = (
        bought.join(views, on=["user_id", "complement_id"], how="left")
        .group_by("event_id")
        .agg(((pl.col("seen_at") > pl.col("timestamp")).fill_null(False)).any().alias("hit"))
    )
    rate_after = later["hit"].mean()
    # chance: the share of all users who ever view that complement
    viewers = views.group_by("complement_id").agg(pl.col("user_id").n_unique().alias("n"))
    viewers_per_purchase = bought.join(viewers, on="complement_id", how="left")["n"].fill_null(0)
    base = float(viewers_per_purchase.mean()) / n_users  # type: ignore[arg-type]
    assert bought.height > 50
    assert isinstance(rate_after, float)
    assert isinstance(base, float)
    assert rate_after > 0.3
    assert rate_after > 5 * base


def test_social_views_follow_followees_shares(raw: RawData) -> None:
    ev, follows, users = raw.events, raw.follows, raw.users
    assert follows is not None
    assert users is not None
    social = ev.filter(pl.col("source") == "social")
    assert social.height > 50
    assert (social["action"] == "view").all()
    assert (social["truth_cause_group"] == "social").all()
    causes = social.join(
        ev.select(
            pl.col("event_id").alias("truth_cause_event"),
            pl.col("user_id").alias("cause_user"),
            pl.col("item_id").alias("cause_item"),
            pl.col("action").alias("cause_action"),
            pl.col("timestamp").alias("cause_time"),
        ),
        on="truth_cause_event",
        how="left",
    )
    assert (causes["cause_action"] == "share").all()
    assert (causes["cause_item"] == causes["item_id"]).all()
    assert (causes["cause_time"] < causes["timestamp"]).all()
    edges = follows.select(
        pl.col("follower_id").alias("user_id"), pl.col("followee_id").alias("cause_user")
    )
    assert causes.join(edges, on=["user_id", "cause_user"], how="semi").height == causes.height

    # each sharer's followers view what they share at about their planted influence
    shares = ev.filter(pl.col("action") == "share")
    n_followers = (
        follows.group_by("followee_id").len().rename({"followee_id": "user_id", "len": "reach"})
    )
    views_per_share = (
        social.group_by("truth_cause_event")
        .len()
        .rename({"truth_cause_event": "event_id", "len": "views"})
    )
    per_user = (
        shares.join(n_followers, on="user_id", how="left")
        .join(views_per_share, on="event_id", how="left")
        .fill_null(0)
        .group_by("user_id")
        .agg(pl.col("reach").sum(), pl.col("views").sum())
        .filter(pl.col("reach") >= 20)
        .join(users, on="user_id")
    )
    assert per_user.height >= 10
    rate = (per_user["views"] / per_user["reach"]).to_numpy()
    assert np.corrcoef(rate, per_user["truth_influence"].to_numpy())[0, 1] > 0.5


def test_views_after_a_search_fall_in_the_searched_category(raw: RawData) -> None:
    v = vocabulary(16)
    query_category = pl.DataFrame(
        {"query": v.queries, "searched": np.repeat(v.names, np.diff(v.query_start))}
    )
    ev = _events_with_users(raw)
    # the views of a session after its search: same user, within the next hour
    searches = ev.filter(pl.col("action") == "search").join(query_category, on="query", how="left")
    assert searches["searched"].is_not_null().all()
    views = ev.filter(pl.col("action") == "view")
    after = (
        searches.select("user_id", "searched", pl.col("timestamp").alias("searched_at"))
        .join(views.select("user_id", "timestamp", "category"), on="user_id")
        .filter(
            pl.col("timestamp").is_between(pl.col("searched_at") + 1, pl.col("searched_at") + 3600)
        )
    )
    hit = (after["category"] == after["searched"]).mean()
    share = views["category"].value_counts(normalize=True).rename({"proportion": "base"})
    chance = after.join(share, left_on="searched", right_on="category")["base"].mean()
    assert isinstance(hit, float)
    assert isinstance(chance, float)
    assert after.height > 100
    assert hit > 0.6
    assert hit > 4 * chance
    steered = ev.filter(pl.col("truth_cause_group") == "search").join(
        searches.select(pl.col("event_id").alias("truth_cause_event"), "searched"),
        on="truth_cause_event",
    )
    assert steered.height == ev.filter(pl.col("truth_cause_group") == "search").height
    assert (steered["category"] == steered["searched"]).all()


def test_local_items_only_in_their_city_and_app_items_only_on_the_app(raw: RawData) -> None:
    ev = _events_with_users(raw).filter(pl.col("item_id").is_not_null())
    local = ev.filter(pl.col("item_city").is_not_null())
    app = ev.filter(pl.col("app_only"))
    assert local.height > 20
    assert app.height > 20
    assert (local["item_city"] == local["user_city"]).all()
    assert (local["item_city"] == local["location"]).all()
    assert (app["device"] == "mobile_app").all()
    assert (ev["location"] == ev["user_city"]).all()
    located = ev.filter(pl.col("truth_cause_group") == "location")
    assert located.height > 0
    assert located["item_city"].is_not_null().all()
    by_device = ev.filter(pl.col("truth_cause_group") == "device")
    assert by_device.height > 0
    assert by_device["app_only"].all()


def test_follower_counts_have_a_heavy_tail(raw: RawData) -> None:
    assert raw.follows is not None
    in_degree = raw.follows.group_by("followee_id").len()["len"].to_numpy()
    in_degree = np.concatenate([in_degree, np.zeros(300 - len(in_degree), dtype=in_degree.dtype)])
    assert in_degree.max() >= 10 * max(np.median(in_degree), 1)


def test_truth_columns_are_consistent(raw: RawData) -> None:
    assert raw.items is not None
    ev = raw.events
    group = ev["truth_cause_group"]
    has_cause = ev["truth_cause_event"].is_not_null()
    assert (has_cause == group.is_in(["history", "social", "search"])).all()
    caused = ev.filter(has_cause).join(
        ev.select(
            pl.col("event_id").alias("truth_cause_event"),
            pl.col("user_id").alias("cause_user"),
            pl.col("item_id").alias("cause_item"),
            pl.col("action").alias("cause_action"),
            pl.col("timestamp").alias("cause_time"),
        ),
        on="truth_cause_event",
        how="left",
    )
    assert caused["cause_user"].is_not_null().all()  # every cause id exists
    assert (caused["cause_time"] < caused["timestamp"]).all()
    history = caused.filter(pl.col("truth_cause_group") == "history").join(
        raw.items.select(pl.col("item_id").alias("cause_item"), "complement_id"), on="cause_item"
    )
    assert history.height > 0
    assert (history["cause_action"] == "purchase").all()
    assert (history["user_id"] == history["cause_user"]).all()
    assert (history["complement_id"] == history["item_id"]).all()
    social = caused.filter(pl.col("truth_cause_group") == "social")
    assert (social["cause_item"] == social["item_id"]).all()
    assert (social["cause_action"] == "share").all()
    search = caused.filter(pl.col("truth_cause_group") == "search")
    assert (search["cause_action"] == "search").all()
    assert (search["user_id"] == search["cause_user"]).all()
    # the funnel after a caused view carries the view's cause
    assert set(caused["action"].unique()) > {"view", "cart"}


def test_events_per_user_is_roughly_the_mean_asked_for() -> None:
    raw = simulate(400, seed=5, events_per_user=20)
    assert 17 <= raw.events.height / 400 <= 23


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_write_simulation_round_trips(tmp_path: Path, fmt: str) -> None:
    raw = simulate(30, seed=2)
    out = write_simulation(raw, tmp_path / "sim", format=fmt)  # type: ignore[arg-type]
    tables = sorted(f"{t}.{fmt}" for t in ("events", "items", "users", "follows"))
    assert sorted(p.name for p in out.iterdir()) == sorted([*tables, "simulation.json"])
    mark = json.loads((out / "simulation.json").read_text())
    assert (mark["format"], sorted(mark["tables"])) == (fmt, tables)
    for name in ("events", "items", "users", "follows"):
        frame = getattr(raw, name)
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            back = pl.read_parquet(path)
        elif fmt == "csv":
            back = pl.read_csv(path, schema=frame.schema)
        else:
            back = pl.read_ndjson(path, schema=frame.schema)
        assert back.equals(frame), name


def test_every_format_of_a_simulation_prepares_the_same_data_set(tmp_path: Path) -> None:
    # event ids are whole numbers in every format (Parquet kept them as integers, CSV and
    # JSONL gave text), so one simulation prepares to one data set whichever its format
    raw = simulate(30, seed=2)
    sets = {
        fmt: prepare(write_simulation(raw, tmp_path / fmt, format=fmt), tmp_path / f"{fmt}-ds")
        for fmt in ("parquet", "csv", "jsonl")
    }
    first = sets["parquet"].events
    assert first.schema["event_id"] == pl.Int64
    for fmt in ("csv", "jsonl"):
        assert sets[fmt].events.equals(first), fmt
    assert sets["parquet"].vocab == sets["csv"].vocab == sets["jsonl"].vocab


def test_write_simulation_replaces_its_own_tables_and_refuses_other_files(tmp_path: Path) -> None:
    raw = simulate(20, seed=0)
    write_simulation(raw, tmp_path, format="csv")
    write_simulation(raw, tmp_path, format="csv")  # same format: overwritten
    # another format: the earlier simulation's tables (named in its mark) are replaced
    write_simulation(raw, tmp_path, format="parquet")
    tables = sorted(f"{t}.parquet" for t in ("events", "items", "users", "follows"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*tables, "simulation.json"])
    # a file the simulation did not write stays, and is refused
    (tmp_path / "events.csv").write_text("user_id,item_id\nu,i\n")
    with pytest.raises(FileExistsError, match=r"events\.csv"):
        write_simulation(raw, tmp_path, format="jsonl")
    assert (tmp_path / "events.parquet").is_file()
    # and so is a table the simulation wrote that was written over since
    (tmp_path / "events.csv").unlink()
    pl.DataFrame({"user_id": ["mine"], "item_id": ["i"]}).write_parquet(tmp_path / "events.parquet")
    with pytest.raises(FileExistsError, match=r"events\.parquet"):
        write_simulation(raw, tmp_path, format="csv")
    assert pl.read_parquet(tmp_path / "events.parquet")["user_id"].to_list() == ["mine"]
    # any file a folder read would take for a table: compressed, another extension, capitals
    for name in ("events.csv.gz", "Items.pq", "follows.ndjson"):
        other = tmp_path / name.replace(".", "_", 1)
        other.mkdir()
        (other / name).write_text("")
        with pytest.raises(FileExistsError, match=name.replace(".", r"\.")):
            write_simulation(raw, other, format="csv")


def test_write_simulation_never_overwrites_the_users_own_data(tmp_path: Path) -> None:
    """Only a folder an earlier simulation wrote (it holds simulation.json) is written over."""
    raw = simulate(20, seed=0)
    mine = tmp_path / "mine"
    mine.mkdir()
    own = "user_id,item_id,timestamp\nalice,book1,1700000000\n"
    (mine / "events.csv").write_text(own)
    with pytest.raises(DataError, match=r"would overwrite events\.csv, and the folder has no"):
        write_simulation(raw, mine, format="csv")
    assert (mine / "events.csv").read_text() == own
    assert sorted(p.name for p in mine.iterdir()) == ["events.csv"]
    with pytest.raises(FileExistsError, match=r"events\.csv exists"):  # in another format
        write_simulation(raw, mine, format="parquet")
    file = tmp_path / "out.parquet"
    file.write_text("")
    with pytest.raises(DataError, match="is a file"):
        write_simulation(raw, file, format="parquet")


def test_simulation_settings_must_be_finite() -> None:
    for name in ("mean_gap_seconds", "price_sigma", "events_per_user", "activity_sigma"):
        with pytest.raises(ValueError, match=name):
            SimConfig(**{name: float("nan")})
        with pytest.raises(ValueError, match=name):
            SimConfig(**{name: float("inf")})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="device_shares"):
            SimConfig(device_shares=(bad, 0.3, 0.25))


def test_config_overrides_and_validation() -> None:
    raw = simulate(config=SimConfig(n_users=40, n_categories=20, n_cities=18), seed=1)
    assert raw.users is not None
    assert raw.items is not None
    assert raw.users.height == 40
    assert raw.items["category"].n_unique() == 20
    assert "kids audio" in raw.items["category"].to_list()
    with pytest.raises(ValueError, match="p_search"):
        SimConfig(p_search=1.5)
    with pytest.raises(ValueError, match="n_items"):
        SimConfig(n_items=3)
    with pytest.raises(ValueError, match="window"):
        SimConfig(round_hours=1)


def test_query_words_name_one_category() -> None:
    v = vocabulary(32)
    assert len(set(v.queries)) == len(v.queries)
    owner: dict[str, str] = {}
    for name, (mods, nouns, _, partner) in BASE_CATEGORIES.items():
        assert partner in BASE_CATEGORIES
        for word in (*mods, *nouns):
            assert owner.setdefault(word, name) == name, word


def test_group_sampler_draws_in_proportion_to_weights() -> None:
    sampler = GroupSampler(np.array([1, 1, 0, 1]), np.array([1.0, 3.0, 2.0, 0.0]), 3)
    draws = sampler.sample(np.array([1] * 40_000 + [0, 2]), np.random.default_rng(0))
    assert draws[-2:].tolist() == [2, -1]
    share_of_1 = (draws[:-2] == 1).mean()
    assert set(draws[:-2].tolist()) == {0, 1}
    assert abs(share_of_1 - 0.75) < 0.01

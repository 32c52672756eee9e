"""The real-time service in process (TestClient): ingestion, fresh recommendations, cold
start, similar items, explanations and influence, auth, limits and bad input, metrics, the
event store and its export."""

from __future__ import annotations

import contextlib
import importlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from fastapi.testclient import TestClient

import behaviorlm as blm
from behaviorlm.artifact import Artifact
from behaviorlm.explain import Event as HypotheticalEvent
from behaviorlm.explain import explain, influence
from behaviorlm.explain.artifacts import read_actions
from behaviorlm.schema import Sequences
from behaviorlm.serve import EventRecord, Limits, Service, create_app, export_events, open_store
from behaviorlm.serve import service as service_module
from behaviorlm.serve.schemas import Event
from behaviorlm.serve.timelines import LiveTimelines

#: After every simulated event (2023) and not ahead of the server's clock, which refuses
#: events over a day ahead.
LATER = int(time.time())
KEY = "test-key"
AUTH = {"X-API-Key": KEY}
LIMITS = Limits(max_body_bytes=20_000, max_batch=20, max_timeline=30, max_k=50)


@pytest.fixture(scope="module")
def dataset() -> blm.Dataset:
    return blm.preprocess(blm.simulate(150, seed=3))


@pytest.fixture(scope="module")
def markov_dir(dataset: blm.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("markov")
    blm.train(dataset, "markov", out_dir=out, progress=False)
    return out


@pytest.fixture(scope="module")
def sasrec_dir(dataset: blm.Dataset, train_tiny_sasrec: Callable[..., Path]) -> Path:
    return train_tiny_sasrec(dataset)


@pytest.fixture
def client(markov_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(markov_dir, f"sqlite:///{tmp_path / 'events.db'}", api_key=KEY, limits=LIMITS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def neural_client(sasrec_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(sasrec_dir, f"sqlite:///{tmp_path / 'events.db'}", api_key=KEY, limits=LIMITS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, events: list[Any]) -> dict[str, Any]:
    response = client.post("/v1/events", json={"events": events}, headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def user_with_history(dataset: blm.Dataset) -> tuple[str, list[int]]:
    """An external user id and the internal item ids of their training timeline."""
    seqs = dataset.sequences()
    row = int(np.flatnonzero(seqs.lengths >= 5)[0])
    user = str(dataset.users["user_id"][row])
    return user, seqs.row(row).items.tolist()


def unseen_item(dataset: blm.Dataset, seen: list[int]) -> tuple[str, int]:
    """A known item the user never touched, with many training events (so it has successors)."""
    counts = np.bincount(dataset.sequences().items, minlength=dataset.n_items + 1)
    counts[0] = 0
    counts[seen] = 0
    item = int(np.argmax(counts))
    return str(dataset.items["item_id"][item - 1]), item


def item_ids(data: dict[str, Any]) -> list[str]:
    return [row["item_id"] for row in data["items"]]


def external(dataset: blm.Dataset, items: np.ndarray) -> list[str]:
    return [str(dataset.items["item_id"][int(i) - 1]) for i in items if i > 0]


# ---------------------------------------------------------------------------- store


def test_store_is_wal_full_sync_and_idempotent(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    e = EventRecord(user_id="u1", item_id="i1", timestamp=5, action="view", event_id="a")
    assert store.append(
        [
            e,
            e,
            EventRecord(
                user_id="u1", item_id=None, timestamp=6, action="search", query="red shoes"
            ),
        ]
    ) == [True, False, True]
    assert store.append([e]) == [False]
    assert store.count() == 2
    assert [x.action for x in store.user_events("u1")] == ["view", "search"]
    store.close()
    conn = sqlite3.connect(tmp_path / "e.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    probe = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    assert isinstance(probe, blm.serve.SQLiteStore)
    assert probe._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    probe.close()


def test_bad_store_urls_are_refused(tmp_path: Path, markov_dir: Path) -> None:
    for url in ("postgres://db/events", "sqlite:///", "sqlite:///:memory:", "events.db"):
        with pytest.raises(ValueError, match=r"sqlite|file path"):
            create_app(markov_dir, url)
    with pytest.raises(FileNotFoundError):
        export_events(f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "out.parquet")
    (tmp_path / "notes.db").write_text("not a database\n" * 100)
    with pytest.raises(ValueError, match="cannot be opened as an event store"):
        open_store(f"sqlite:///{tmp_path / 'notes.db'}")


def test_export_reads_a_file_without_changing_it(tmp_path: Path) -> None:
    other = tmp_path / "other.db"  # another program's database, named by mistake
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id)")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="holds no events table"):
        export_events(f"sqlite:///{other}", tmp_path / "out.parquet")
    conn = sqlite3.connect(other)
    tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("users",)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.execute("CREATE TABLE events (id)")  # an events table of another shape
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="cannot be read as an event store"):
        export_events(f"sqlite:///{other}", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def _write_protected(path: Path) -> contextlib.AbstractContextManager[None]:
    """``path`` write-protected for this process while in the block (skip where it cannot be)."""

    @contextlib.contextmanager
    def protected() -> Iterator[None]:
        import os
        import subprocess

        if os.geteuid() != 0:
            path.chmod(0o444)
            try:
                yield
            finally:
                path.chmod(0o644)
            return
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip("root cannot write-protect a file here (no chattr)")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)

    return protected()


def test_a_store_that_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = open_store(url)
    store.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view")])
    store.close()
    with _write_protected(tmp_path / "e.db"):
        with pytest.raises(ValueError, match=r"cannot be opened as an event store: .*readonly"):
            open_store(url)
        # an export only reads
        assert export_events(url, tmp_path / "out.parquet") == 1


def test_export_reads_a_store_in_a_folder_it_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from behaviorlm.serve import store as store_module

    url = f"sqlite:///{tmp_path / 'e.db'}"
    writer = open_store(url)
    writer.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view")])
    folder = str(tmp_path)

    def access(path: Any, mode: int) -> bool:  # a read-only mount of the store's folder
        return not (str(path) == folder and mode & os.W_OK)

    monkeypatch.setattr(store_module.os, "access", access)
    # the event is in the write-ahead log still: a read that skips the log would miss it
    with pytest.raises(ValueError, match="write-ahead log"):
        export_events(url, tmp_path / "out" / "a.parquet")
    writer.close()  # the last connection folds the log into the file
    assert export_events(url, tmp_path / "out" / "a.parquet") == 1


FULL_DISK = """
import random, resource, string, sys
from behaviorlm.serve import EventRecord, export_events, open_store
url, out = sys.argv[1], sys.argv[2]
store = open_store(url)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))  # a disk that fills up
error = None
for batch in range(100):
    events = [EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view",
                          query="".join(random.choices(string.ascii_letters, k=900)),
                          event_id=f"{batch}-{k}") for k in range(20)]
    try:
        store.append(events)
    except Exception as exc:
        error = exc
        break
print(type(error).__name__, error)
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, hard))
try:
    export_events(url, out)  # the export is larger than the limit
except OSError as exc:
    print("export failed")
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
store.append([EventRecord(user_id="u2", item_id="i1", timestamp=1, action="view")])
print("stored again", store.count())
"""


def test_a_full_disk_reports_its_error_and_keeps_an_earlier_export(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'e.db'}"
    out = tmp_path / "out.parquet"
    store = open_store(url)
    store.append([EventRecord(user_id="u0", item_id="i0", timestamp=1, action="view")])
    store.close()
    assert export_events(url, out) == 1
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, url, str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # SQLite's own error, not the failed rollback's "no transaction is active"
    assert lines[0].startswith("OperationalError"), lines
    assert "no transaction" not in lines[0]
    assert lines[1] == "export failed"
    assert lines[2].startswith("stored again")  # the connection takes events again
    assert pl.read_parquet(out).height == 1  # the earlier export, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_commands_refuse_a_bad_store_in_one_line(
    markov_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from behaviorlm.cli import main

    (tmp_path / "notes.db").write_text("not a database\n" * 100)
    bad = f"sqlite:///{tmp_path / 'notes.db'}"
    missing_folder = f"sqlite:///{tmp_path / 'nowhere' / 'events.db'}"
    out = str(tmp_path / "out.parquet")
    for argv in (
        ["serve", str(markov_dir), "--store", bad],  # before uvicorn starts: no traceback
        ["serve", str(markov_dir), "--store", missing_folder],
        ["export-events", bad, out],
        ["serve", str(markov_dir), "--port", "99999"],  # uvicorn would bind 99999 % 65536
        ["export-events", f"sqlite:///{tmp_path / 'e.db'}", str(tmp_path / "events.csv")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("behaviorlm: error: ")
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_export_replaces_an_earlier_export_not_other_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from behaviorlm.cli import main

    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = open_store(url)
    store.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view")])
    store.close()
    exports = tmp_path / "exports"
    for _ in range(2):  # the second replaces the first: a folder read takes either
        assert main(["export-events", url, str(exports / "events.parquet")]) == 0
    raw = tmp_path / "shop"  # a raw events table that no export wrote
    raw.mkdir()
    pl.DataFrame({"user_id": ["u9"], "item_id": ["i9"]}).write_parquet(raw / "events.parquet")
    capsys.readouterr()
    assert main(["export-events", url, str(raw / "events.parquet")]) == 2
    assert "is a file of the data in" in capsys.readouterr().err
    assert pl.read_parquet(raw / "events.parquet")["user_id"].to_list() == ["u9"]
    # the export merged with training events for a retrain has the export's columns, not
    # its mark: it is raw data too
    import pyarrow as pa
    import pyarrow.parquet as pq

    merged = pl.concat([pl.read_parquet(exports / "events.parquet")] * 3)
    export = pq.read_table(exports / "events.parquet")  # pyarrow keeps the schema's mark
    for write in (
        lambda path: merged.write_parquet(path),
        lambda path: pq.write_table(pa.concat_tables([export] * 3), path),
    ):
        write(raw / "events.parquet")
        assert main(["export-events", url, str(raw / "events.parquet")]) == 2
        assert "has an export's columns but not its mark" in capsys.readouterr().err
        assert pl.read_parquet(raw / "events.parquet").height == 3


def test_export_reads_back_for_a_retrain(client: TestClient, tmp_path: Path) -> None:
    post(
        client,
        [
            {
                "user_id": "u1",
                "item_id": "i1",
                "timestamp": 100,
                "action": "cart",
                "event_id": "e1",
            },
            {"user_id": "new", "query": "red shoes", "timestamp": 101, "device": "tablet"},
            {"user_id": "new", "item_id": "brand-new-item", "timestamp": 102, "value": 4.5},
        ],
    )
    n = export_events(f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "out.parquet")
    assert n == 3
    raw = blm.read(tmp_path / "out.parquet")
    assert raw.events.height == 3
    assert raw.events["event_id"].to_list() == ["e1", None, None]
    assert raw.events["action"].to_list() == ["cart", "search", "view"]
    assert blm.preprocess(raw).n_events == 3


def test_a_model_retrained_on_the_exported_events_reads_them_once(tmp_path: Path) -> None:
    raw = blm.simulate(40, seed=2)
    first = tmp_path / "first"
    blm.train(blm.preprocess(raw), "markov", out_dir=first, progress=False)
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    service = Service(first, open_store(url))
    items = raw.events["item_id"].drop_nulls().unique().sort().to_list()[:3]
    posted = [
        {"user_id": "u0", "item_id": item, "timestamp": LATER - 10 + k, "action": "view"}
        for k, item in enumerate(items)
    ]
    posted.append({"user_id": "u0", "query": "red shoes", "timestamp": LATER - 5})
    assert service.ingest(posted).accepted == 4
    before = service.recommend_user("u0", k=5)
    assert before.live_events == 4
    service.close()
    # the documented retrain: export the store, add it to the data, train, serve the store
    export_events(url, tmp_path / "new.parquet")
    new = blm.read(tmp_path / "new.parquet").events.drop("event_id")
    both = replace(raw, events=pl.concat([raw.events, new], how="diagonal_relaxed"))
    second = tmp_path / "second"
    blm.train(blm.preprocess(both), "markov", out_dir=second, progress=False)
    service = Service(second, open_store(url))
    after = service.recommend_user("u0", k=5)
    # before, each of the four was read twice: from the training data and from the store
    assert (after.timeline_events, after.live_events) == (before.timeline_events, 0)
    assert after.note is None
    later = {"user_id": "u0", "item_id": items[0], "timestamp": LATER, "action": "view"}
    assert service.ingest([later]).accepted == 1  # a new event still counts
    assert service.recommend_user("u0", k=5).live_events == 1


def test_a_data_set_that_kept_a_case_variant_still_codes_it_as_trained(tmp_path: Path) -> None:
    # data sets prepared before built-in names were folded hold variants as custom actions
    raw = blm.simulate(40, seed=1)
    actions = raw.events["action"].replace("cart", "zz-cart")  # a custom action, renamed below
    ds = blm.preprocess(replace(raw, events=raw.events.with_columns(actions)))
    ds.vocab["action"] = [("Cart" if a == "zz-cart" else a) for a in ds.vocab["action"]]
    assert "Cart" in ds.vocab["action"]
    out = tmp_path / "markov"
    blm.train(ds, "markov", out_dir=out, progress=False)
    service = Service(out, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    records = [
        service.record(Event.model_validate({"user_id": "u", "item_id": "i1", "action": a}), LATER)
        for a in ("Cart", "CART")
    ]
    # the variant itself is the code the model was trained on; another case is the built-in
    assert [None if r is None else r.action for r, _ in records] == ["Cart", "cart"]


def test_the_popularity_fallback_ranks_the_events_the_model_predicts(tmp_path: Path) -> None:
    """A model trained on purchases answers a stranger with the most bought items."""
    ds = blm.preprocess(blm.simulate(150, seed=1))
    out = tmp_path / "markov"
    blm.train(ds, "markov", overrides=["split.target_actions=['purchase']"], out_dir=out)
    service = Service(out, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    cold = service.recommend_user("nobody-yet", k=5)
    assert cold.source == "popularity"
    seqs = ds.sequences()
    bought = seqs.items[seqs.actions == ds.action_code("purchase")]
    order = np.argsort(-np.bincount(bought, minlength=ds.n_items + 1)[1:], kind="stable")
    top = [str(ds.items["item_id"][int(i)]) for i in order[:5]]
    assert [r.item_id for r in cold.items] == top


def test_a_popularity_model_answers_a_stranger_with_its_own_list(tmp_path: Path) -> None:
    """A `pop` model over a recent window ranks what is popular in it, for every user."""
    ds = blm.preprocess(blm.simulate(150, seed=1))
    out = tmp_path / "pop"
    blm.train(ds, "pop", overrides=["model.window_seconds=86400"], out_dir=out, progress=False)
    service = Service(out, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    art = blm.Artifact.load(out)
    offline = blm.recommend(art.model, Sequences.from_lists([[]], n_items=ds.n_items), k=5)
    cold = service.recommend_user("nobody-yet", k=5)
    assert [r.item_id for r in cold.items] == external(ds, offline.items[0])
    # the window's list, not the counts of the whole log
    counts = np.bincount(ds.sequences().items, minlength=ds.n_items + 1)[1:]
    overall = external(ds, np.argsort(-counts, kind="stable")[:5] + 1)
    assert [r.item_id for r in cold.items] != overall


def test_a_search_alone_is_no_timeline_for_a_model_that_reads_items_only(
    dataset: blm.Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "mlp"
    blm.train(dataset, "mlp", overrides=["train.epochs=1"], out_dir=out, progress=False)
    service = Service(out, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    searched = service.recommend_events([{"query": "usb charger"}], k=5)
    assert searched.source == "popularity"  # mlp reads no search: its output bias was served
    assert searched.note == "no event the model can read: most popular items"
    item = str(dataset.items["item_id"][0])
    assert service.recommend_events([{"item_id": item}], k=5).source == "model"


def test_a_known_user_with_searches_alone_gets_the_models_list(tmp_path: Path) -> None:
    """A user of the training data whose events are all searches is ranked by the model, as
    ``recommend`` and evaluation rank them (the explanation's target is that list's top),
    not by the fallback for new users."""
    raw = blm.simulate(60, seed=3)
    searches = pl.DataFrame(
        {"user_id": ["usearch"] * 3, "timestamp": [1_700_000_000 + t for t in range(3)]}
    ).with_columns(query=pl.Series(["red shoes", "usb charger", "mug"]), action=pl.lit("search"))
    raw.events = pl.concat([raw.events, searches], how="diagonal_relaxed")
    ds = blm.preprocess(raw)
    out = tmp_path / "mlp"
    blm.train(ds, "mlp", overrides=["train.epochs=2", "model.hidden=8"], out_dir=out)
    art = blm.Artifact.load(out)
    offline = blm.recommend(art.model, art.histories(["usearch"]), k=5)
    service = Service(out, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    try:
        served = service.recommend_user("usearch", k=5)
        assert (served.source, served.known_user) == ("model", True)
        assert served.note == "no event the model can read: the model's list for a user without one"
        assert [r.item_id for r in served.items] == external(ds, offline.items[0])
        # a new user with nothing the model reads still gets the most popular items
        assert service.recommend_user("nobody-yet", k=5).source == "popularity"
    finally:
        service.close()


def test_a_short_list_says_why(markov_dir: Path, dataset: blm.Dataset, tmp_path: Path) -> None:
    n = dataset.n_items
    user, _ = user_with_history(dataset)
    service = Service(markov_dir, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    try:
        whole = service.recommend_user(user, k=n + 5)
        assert len(whole.items) < n + 5
        assert whole.note == (
            f"{len(whole.items)} of {n + 5} items: the catalogue has {n:,} items, and seen "
            "items are left out"
        )
        kept = service.recommend_user(user, k=n + 5, exclude_seen=False)
        assert kept.note == f"{n} of {n + 5} items: the catalogue has {n:,} items"
        most = service.recommend_user(user, k=n)
        assert len(most.items) < n
        assert most.note == f"{len(most.items)} of {n} items: seen items leave no more"
        assert service.recommend_user(user, k=n, exclude_seen=False).note is None
    finally:
        service.close()


def test_built_in_names_in_another_case_are_stored_as_the_built_in_ones(
    client: TestClient, tmp_path: Path
) -> None:
    data = post(
        client,
        [
            {"user_id": "u1", "item_id": "i1", "timestamp": 100, "action": "Cart"},
            {
                "user_id": "u1",
                "item_id": "i1",
                "timestamp": 101,
                "action": " VIEW",
                "source": "Self",
            },
        ],
    )
    assert data["accepted"] == 2, data
    export_events(f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "out.parquet")
    raw = blm.read(tmp_path / "out.parquet")
    assert raw.events["action"].to_list() == ["cart", "view"]
    assert raw.events["source"].to_list() == ["self", "self"]


# ---------------------------------------------------------------------------- ingestion


def test_ingested_event_is_in_the_next_recommendation(
    client: TestClient, dataset: blm.Dataset, markov_dir: Path
) -> None:
    user, history = user_with_history(dataset)
    before = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
    assert before["known_user"]
    assert before["source"] == "model"
    assert before["timeline_events"] == len(history)
    assert before["live_events"] == 0
    item_id, item = unseen_item(dataset, history)
    result = post(
        client,
        [
            {
                "user_id": user,
                "item_id": item_id,
                "action": "view",
                "timestamp": LATER,
                "event_id": "fresh-1",
            }
        ],
    )
    assert result["accepted"] == 1
    assert result["results"][0]["status"] == "accepted"
    after = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
    assert after["live_events"] == 1
    assert after["timeline_events"] == len(history) + 1
    # the same list as the library gives for the timeline with the new event at its end
    model = blm.Artifact.load(markov_dir).model
    expected = blm.recommend(
        model, Sequences.from_lists([[*history, item]], n_items=model.n_items), 5
    )
    assert item_ids(after) == external(dataset, expected.items[0])
    assert item_id not in item_ids(after)  # seen now, so excluded


def test_duplicates_and_per_event_rejections(client: TestClient) -> None:
    events: list[Any] = [
        {"user_id": "u1", "item_id": "i1", "event_id": "same"},
        {"user_id": "u1", "item_id": "i1", "event_id": "same"},
        {"item_id": "i1"},
        {"user_id": "u1"},
        {"user_id": "u1", "item_id": "i1", "action": "teleport"},
        {"user_id": "u1", "item_id": "i1", "source": "radio"},
        {"user_id": "u1", "item_id": "i1", "timestamp": -5},
        {"user_id": "u1", "item_id": "i1", "colour": "red"},
        {"user_id": "u1", "item_id": "i1", "timestamp": "yesterday"},
        "not an event",
        {"user_id": "u1", "item_id": "x" * 1000},
        {"user_id": "u1", "item_id": "i1", "timestamp": int(time.time()) + 3 * 86_400},
        {"user_id": "u1", "item_id": "i1", "value": -1e308},
    ]
    data = post(client, events)
    status = [r["status"] for r in data["results"]]
    assert status == ["accepted", "duplicate"] + ["rejected"] * 11
    assert [r["index"] for r in data["results"]] == list(range(len(events)))
    reasons = [r["reason"] for r in data["results"][2:]]
    for reason, word in zip(
        reasons,
        [
            "user_id",
            "item_id",
            "teleport",
            "radio",
            "timestamp",
            "colour",
            "timestamp",
            "JSON object",
            "item_id",
            "3.0 days ahead of the server's clock",
            "at most 3.4e+38 in size",
        ],
        strict=True,
    ):
        assert word in reason
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (1, 1, 11)
    again = post(client, [{"user_id": "u1", "item_id": "i1", "event_id": "same"}])
    assert again["duplicates"] == 1
    assert again["accepted"] == 0


def test_a_rejected_event_id_that_cannot_be_echoed_is_not(client: TestClient) -> None:
    # a JSON escape of a lone surrogate: valid JSON, no valid string; the event before it
    # is stored, so the response must still come, naming what it can
    body = b'{"events": [{"user_id": "u1", "item_id": "i1", "event_id": "ok-1"}, ' + (
        b'{"user_id": "u1", "item_id": "i1", "event_id": "bad-\\udfff"}]}'
    )
    headers = {**AUTH, "content-type": "application/json"}
    response = client.post("/v1/events", content=body, headers=headers)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert (first["status"], first["event_id"]) == ("accepted", "ok-1")
    assert (second["status"], second["event_id"]) == ("rejected", None)
    assert "event_id" in second["reason"]


def test_ids_with_a_slash_can_be_posted_and_read(client: TestClient, dataset: blm.Dataset) -> None:
    item = str(dataset.items["item_id"][0])
    assert post(client, [{"user_id": "shop/42", "item_id": item}])["accepted"] == 1
    data = client.get("/v1/users/shop%2F42/recommendations").json()
    assert (data["user_id"], data["live_events"]) == ("shop/42", 1)
    assert item not in item_ids(data)  # the posted event is the user's timeline
    unknown = client.get("/v1/items/shelf%2F7/similar")
    assert unknown.status_code == 404
    assert "shelf/7" in unknown.json()["detail"]  # the item is unknown; the route is found


def test_unknown_item_is_stored_counted_and_ignored(
    client: TestClient, dataset: blm.Dataset
) -> None:
    user, history = user_with_history(dataset)
    data = post(client, [{"user_id": user, "item_id": "never-seen", "event_id": "x"}])
    assert data["accepted"] == 1
    assert data["unknown_items"] == 1
    assert "unknown item" in data["results"][0]["note"]
    recs = client.get(f"/v1/users/{user}/recommendations").json()
    assert recs["ignored_events"] == 1
    assert recs["live_events"] == 0
    assert recs["timeline_events"] == len(history)
    assert "unknown" in recs["note"]
    metrics = client.get("/metrics").text
    assert 'behaviorlm_events_ingested_total{outcome="unknown_item"} 1.0' in metrics


def test_an_action_the_model_was_not_trained_on_is_stored_with_a_note(
    neural_client: TestClient, client: TestClient, dataset: blm.Dataset, sasrec_dir: Path
) -> None:
    trained = read_actions(Artifact.load(sasrec_dir))
    assert trained is not None
    untrained = next(a for a in dataset.vocab["action"] if a not in trained)  # the simulator's
    user, _ = user_with_history(dataset)
    item = str(dataset.items["item_id"][0])
    events = [
        {"user_id": user, "item_id": item, "action": untrained.upper(), "event_id": "a"},
        {"user_id": user, "item_id": item, "action": "view", "event_id": "b"},
        {"user_id": user, "item_id": "never-seen", "action": untrained, "event_id": "c"},
    ]
    data = post(neural_client, events)
    assert (data["accepted"], data["untrained_actions"], data["unknown_items"]) == (3, 2, 1)
    first, second, third = data["results"]
    assert f"action {untrained!r} is not in the model's training data" in first["note"]
    assert second["note"] is None
    assert "unknown item" in third["note"]
    assert "training data" in third["note"]
    metrics = neural_client.get("/metrics").text
    assert 'behaviorlm_events_ingested_total{outcome="untrained_action"} 2.0' in metrics
    # a model that reads no actions takes every one alike: no note
    data = post(client, events[:1])
    assert (data["untrained_actions"], data["results"][0]["note"]) == (0, None)


def test_numeric_ids_and_numpy_k_are_taken_as_the_artifact_api_takes_them(
    tmp_path: Path,
) -> None:
    """A log with numeric ids: 7 is looked up as "7", as Dataset lookups do."""
    rows = [
        f"{u},{100 + (u * 7 + t) % 30},{1_600_000_000 + 60 * t}"
        for u in range(20)
        for t in range(8)
    ]
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    blm.train(blm.preprocess(blm.read(path)), "markov", out_dir=tmp_path / "run", progress=False)
    service = Service(tmp_path / "run", open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    try:
        by_number = service.recommend_user(3, k=np.int64(3))  # type: ignore[arg-type]
        by_text = service.recommend_user("3", k=3)
        assert by_number.known_user
        assert (by_number.user_id, by_number.items) == ("3", by_text.items)
        similar = service.similar_items(np.int64(101), k=np.int64(2))  # type: ignore[arg-type]
        assert similar.items == service.similar_items("101", k=2).items
        for bad in (0, -1, 2.5, True):
            with pytest.raises(service_module.RequestError, match="k must be a whole number"):
                service.similar_items("101", k=bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="user_id is an id string"):
            service.recommend_user(3.0, k=3)  # type: ignore[arg-type]
    finally:
        service.close()


def test_cold_start_popularity_then_the_users_own_events(
    client: TestClient, dataset: blm.Dataset
) -> None:
    cold = client.get("/v1/users/stranger/recommendations", params={"k": 3}).json()
    assert cold["source"] == "popularity"
    assert not cold["known_user"]
    counts = np.bincount(dataset.sequences().items, minlength=dataset.n_items + 1)[1:]
    assert cold["items"][0]["item_id"] == str(dataset.items["item_id"][int(np.argmax(counts))])
    post(client, [{"user_id": "stranger", "item_id": cold["items"][0]["item_id"]}])
    warm = client.get("/v1/users/stranger/recommendations", params={"k": 3}).json()
    assert warm["source"] == "model"
    assert warm["live_events"] == 1
    assert cold["items"][0]["item_id"] not in item_ids(warm)


def test_timeline_in_the_request(
    client: TestClient, dataset: blm.Dataset, markov_dir: Path
) -> None:
    _user, history = user_with_history(dataset)
    ids = external(dataset, np.array(history[-3:]))
    body = {"events": [{"item_id": i, "timestamp": t} for t, i in enumerate(ids)], "k": 4}
    data = client.post("/v1/recommendations", json=body).json()
    model = blm.Artifact.load(markov_dir).model
    expected = blm.recommend(model, Sequences.from_lists([history[-3:]], n_items=model.n_items), 4)
    assert data["user_id"] is None
    assert data["source"] == "model"
    assert item_ids(data) == external(dataset, expected.items[0])
    empty = client.post("/v1/recommendations", json={"k": 2}).json()
    assert empty["source"] == "popularity"
    assert len(empty["items"]) == 2
    # a search alone: markov reads items only, so popularity, and the answer says so
    searched = {"events": [{"query": "usb charger"}], "k": 2}
    assert client.post("/v1/recommendations", json=searched).json()["source"] == "popularity"
    bad = client.post("/v1/recommendations", json={"events": [{"item_id": "i1", "action": "fly"}]})
    assert bad.status_code == 422
    assert "events[0]" in bad.json()["detail"]


def test_action_filter_excludes_only_items_done_with_that_action(
    client: TestClient, dataset: blm.Dataset, markov_dir: Path
) -> None:
    seqs = dataset.sequences()
    purchase = dataset.action_code("purchase")
    row = int(
        np.flatnonzero(
            np.bincount(seqs.row_of_event[seqs.actions == purchase], minlength=len(seqs))
        )[0]
    )
    user = str(dataset.users["user_id"][row])
    hist = seqs.row(row)
    bought = np.unique(hist.items[hist.actions == purchase])
    data = client.get(
        f"/v1/users/{user}/recommendations", params={"k": 20, "action": "purchase"}
    ).json()
    model = blm.Artifact.load(markov_dir).model
    expected = blm.recommend(model, hist, 20, exclude_seen=False, exclude_items=bought)
    assert item_ids(data) == external(dataset, expected.items[0])
    assert not set(item_ids(data)) & set(external(dataset, bought))
    # a built-in name in another case is that name, as in events
    folded = client.get(
        f"/v1/users/{user}/recommendations", params={"k": 20, "action": " Purchase"}
    ).json()
    assert item_ids(folded) == item_ids(data)
    assert data["note"] is None
    # an action the timeline has no event of (clicks: the simulator logs none) is taken,
    # since live events may bring it, and the answer says that nothing was left out
    none = client.get(f"/v1/users/{user}/recommendations", params={"k": 20, "action": "click"})
    assert none.json()["note"] == (
        "no event of this timeline has action 'click' on an item: no item is left out as seen"
    )
    bad = client.get(f"/v1/users/{user}/recommendations", params={"action": "teleport"})
    assert bad.status_code == 422
    assert "teleport" in bad.json()["detail"]


def test_fresh_recommendations_of_a_neural_model_and_embedding_neighbours(
    sasrec_dir: Path, dataset: blm.Dataset, tmp_path: Path
) -> None:
    app = create_app(sasrec_dir, f"sqlite:///{tmp_path / 'ev.db'}")
    user, history = user_with_history(dataset)
    item_id, _ = unseen_item(dataset, history)
    with TestClient(app, raise_server_exceptions=False) as c:
        before = c.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        assert (
            c.post(
                "/v1/events",
                json={
                    "events": [
                        {
                            "user_id": user,
                            "item_id": item_id,
                            "action": "purchase",
                            "timestamp": LATER,
                        }
                    ]
                },
            ).json()["accepted"]
            == 1
        )
        after = c.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        similar = c.get(f"/v1/items/{item_id}/similar", params={"k": 5}).json()
    assert after["live_events"] == 1
    assert [r["score"] for r in after["items"]] != [r["score"] for r in before["items"]]
    assert similar["method"] == "embedding_cosine"
    assert len(similar["items"]) == 5
    scores = [r["score"] for r in similar["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.001 <= s <= 1.001 for s in scores)
    assert item_id not in item_ids(similar)


def test_similar_items_by_cooccurrence(client: TestClient, dataset: blm.Dataset) -> None:
    item_id, item = unseen_item(dataset, [])
    data = client.get(f"/v1/items/{item_id}/similar", params={"k": 5}).json()
    assert data["method"] == "cooccurrence_cosine"
    assert item_id not in item_ids(data)
    seqs = dataset.sequences()
    users_of = {int(r) for r in seqs.row_of_event[seqs.items == item]}
    for row in data["items"]:
        other = int(dataset.item_index([row["item_id"]])[0])
        assert users_of & {int(r) for r in seqs.row_of_event[seqs.items == other]}
    assert client.get("/v1/items/no-such-item/similar").status_code == 404


# ---------------------------------------------------------------------------- security, limits


def test_api_key_is_required_to_write(client: TestClient) -> None:
    body = {"events": [{"user_id": "u1", "item_id": "i1"}]}
    latin = "tést-kéy".encode("latin-1")  # a header value that is not ASCII
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": latin}, {"X-API-Key": ""}):
        response = client.post("/v1/events", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert "X-API-Key" in response.json()["detail"]
    assert client.post("/v1/events", json=body, headers=AUTH).status_code == 200
    assert client.get("/v1/users/u1/recommendations").status_code == 200  # reads need no key


@pytest.mark.parametrize(
    ("url", "content", "content_type"),
    [
        ("/v1/events", b'{"events": [}', "application/json"),  # not JSON
        ("/v1/events", b'{"events": 3}', "application/json"),  # not the schema
        ("/v1/events", b"events=1", "text/plain"),  # not a JSON body
        ("/v1/events", b"x" * 30_000, "application/json"),  # over the body limit
        ("/v1/influence", b'{"user_id": 1}', "application/json"),
    ],
    ids=["not-json", "not-the-schema", "not-a-json-body", "over-the-limit", "influence"],
)
def test_the_key_is_checked_before_the_body(
    client: TestClient, url: str, content: bytes, content_type: str
) -> None:
    """A client without the key learns nothing about the body the route takes."""
    for headers in ({}, {"X-API-Key": "wrong"}):
        response = client.post(
            url, content=content, headers={**headers, "content-type": content_type}
        )
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "ApiKey"
    # with the key, the body's own error
    response = client.post(url, content=content, headers={**AUTH, "content-type": content_type})
    assert response.status_code in (413, 415, 422)


def test_a_key_read_with_a_trailing_newline_still_matches(markov_dir: Path, tmp_path: Path) -> None:
    # a key mounted from a file ends in a newline; no client can send one in a header
    app = create_app(markov_dir, f"sqlite:///{tmp_path / 'e.db'}", api_key="s3cret\n")
    body = {"events": [{"user_id": "u1", "item_id": "i1"}]}
    with TestClient(app) as c:
        assert c.post("/v1/events", json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
    with pytest.raises(ValueError, match="only whitespace"):
        create_app(markov_dir, f"sqlite:///{tmp_path / 'e.db'}", api_key=" \n")


def test_a_key_that_is_not_ascii_matches_as_clients_send_it(
    markov_dir: Path, tmp_path: Path
) -> None:
    app = create_app(markov_dir, f"sqlite:///{tmp_path / 'e.db'}", api_key="clé-secrète")
    body = {"events": [{"user_id": "u1", "item_id": "i1"}]}
    with TestClient(app) as c:
        sent = {"X-API-Key": "clé-secrète".encode()}  # its UTF-8 bytes, as curl sends it
        assert c.post("/v1/events", json=body, headers=sent).status_code == 200
        other = {"X-API-Key": "clé-secrete".encode()}
        assert c.post("/v1/events", json=body, headers=other).status_code == 401


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "words"),
    [
        ("GET", "/v1/users/u1/recommendations?k=0", {}, 422, "greater than or equal"),
        ("GET", "/v1/users/u1/recommendations?k=51", {}, 422, "less than or equal"),
        ("GET", "/v1/users/u1/recommendations?k=ten", {}, 422, "valid integer"),
        ("GET", "/v1/users/u1/recommendations?exclude_seen=maybe", {}, 422, "boolean"),
        ("GET", "/v1/items/i1/similar?k=100000", {}, 422, "less than or equal"),
        (
            "POST",
            "/v1/events",
            {"content": b"{not json", "headers": {**AUTH, "content-type": "application/json"}},
            422,
            "JSON",
        ),
        ("POST", "/v1/events", {"json": {"events": 5}, "headers": AUTH}, 422, "valid list"),
        ("POST", "/v1/events", {"json": {"event": []}, "headers": AUTH}, 422, "Field required"),
        (
            "POST",
            "/v1/events",
            {"json": {"events": [{"user_id": "u", "item_id": "i"}] * 21}, "headers": AUTH},
            413,
            "limit is 20",
        ),
        ("POST", "/v1/events", {"content": b" " * 20_001, "headers": AUTH}, 413, "20,000 bytes"),
        (
            "POST",
            "/v1/events",
            {"content": b"x" * 100, "headers": {**AUTH, "content-length": "abc"}},
            400,
            "Content-Length",
        ),
        (
            "POST",
            "/v1/recommendations",
            {"json": {"events": [{"item_id": "i1"}] * 31}},
            413,
            "limit is 30",
        ),
        ("POST", "/v1/recommendations", {"json": {"k": 51}}, 422, "less than or equal to 50"),
        (  # the length is checked before the events: no error per event
            "POST",
            "/v1/recommendations",
            {"json": {"events": [{"item_id": ""}] * 31}},
            413,
            "timeline of 31 events: the limit is 30",
        ),
        (  # a 422 lists 20 errors at most
            "POST",
            "/v1/recommendations",
            {"json": {"events": [{"item_id": "", "action": ""}] * 15}},
            422,
            '"msg":"10 more errors not listed"',
        ),
        (
            "POST",
            "/v1/recommendations",
            {"json": {"events": [{"item_id": "i1", "value": "high"}]}},
            422,
            "valid number",
        ),
        (  # infinite as float32: it would turn the scores to NaN
            "POST",
            "/v1/recommendations",
            {"json": {"events": [{"item_id": "i1", "value": 3.5e38}]}},
            422,
            "at most 3.4e+38 in size",
        ),
        ("POST", "/v1/recommendations", {"json": [1, 2]}, 422, "valid dictionary"),
        (
            "POST",
            "/v1/events",
            {"content": b'{"events": []}', "headers": {**AUTH, "content-type": "text/plain"}},
            415,
            "application/json",
        ),
        (
            "POST",
            "/v1/recommendations",
            {"data": {"k": "5"}},  # a form
            415,
            "must be JSON",
        ),
        ("POST", "/v1/recommendations", {"content": b'{"k": 2}'}, 415, "(got none)"),
        ("POST", "/v1/recommendations", {"json": {"k": True}}, 422, "valid integer"),
        ("POST", "/v1/recommendations", {"json": {"k": "5"}}, 422, "valid integer"),
        ("GET", "/v1/nothing", {}, 404, "Not Found"),
        ("POST", "/v1/nothing", {"content": b"text"}, 404, "Not Found"),  # not 415
        ("POST", "/healthz", {"content": b"text"}, 405, "Method Not Allowed"),
        ("DELETE", "/v1/events", {}, 405, "Method Not Allowed"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(
    client: TestClient, method: str, url: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    response = client.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.text
    assert "Traceback" not in response.text


def test_health_readiness_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {
        "status": "ok",
        "model": None,
        "model_version": None,
        "events_stored": None,
    }
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["model"] == "markov"
    assert ready["events_stored"] == 0
    client.get("/v1/users/u1/recommendations")
    client.get("/v1/users/u2/recommendations")
    text = client.get("/metrics").text
    assert (
        'behaviorlm_http_requests_total{method="GET",'
        'route="/v1/users/{user_id}/recommendations",status="200"} 2.0'
    ) in text
    assert "behaviorlm_http_request_duration_seconds_bucket" in text
    # an answer given before routing (415 here) is counted under the route it was sent to
    client.post("/v1/recommendations", content=b"k=2")
    assert (
        'behaviorlm_http_requests_total{method="POST",route="/v1/recommendations",status="415"} 1.0'
    ) in client.get("/metrics").text
    assert f'behaviorlm_model_info{{model="markov",version="{ready["model_version"]}"}} 1.0' in text
    for probe in ("/healthz", "/readyz", "/metrics"):  # as some load balancers send them
        head = client.head(probe)
        assert head.status_code == 200, probe
        assert head.content == b""
    paths = client.get("/openapi.json").json()["paths"]
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert set(paths[probe]) == {"get"}  # HEAD is answered, not documented twice
    assert {
        "/v1/events",
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/users/{user_id}/explanation",
        "/v1/influence",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(paths)
    # the limits and the answers of the middleware are in the schema
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["TimelineRequest"]["properties"]["events"]["maxItems"] == LIMITS.max_timeline
    assert schemas["TimelineRequest"]["properties"]["k"]["maximum"] == LIMITS.max_k
    assert schemas["InfluenceRequest"]["properties"]["items"]["maxItems"] == LIMITS.max_k
    events = schemas["EventBatch"]["properties"]["events"]
    assert events["maxItems"] == LIMITS.max_batch
    assert {"user_id", "item_id", "value", "event_id"} <= set(events["items"]["properties"])
    for path, status in (("/v1/events", "415"), ("/v1/recommendations", "400")):
        assert status in paths[path]["post"]["responses"]
    assert "503" in paths["/v1/users/{user_id}/recommendations"]["get"]["responses"]


def test_not_ready_before_the_lifespan(markov_dir: Path, tmp_path: Path) -> None:
    app = create_app(markov_dir, f"sqlite:///{tmp_path / 'e.db'}")
    c = TestClient(app)  # not entered: the lifespan has not run
    assert c.get("/readyz").status_code == 503
    assert c.get("/v1/users/u1/recommendations").status_code == 503


def test_the_running_service_uses_torch_kernels_not_onednn(
    sasrec_dir: Path, dataset: blm.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oneDNN keeps a compiled kernel per input shape, so a server's memory grew with every
    new batch shape; the service turns it off while it runs (in the batcher's thread too),
    overlapping apps share the switch, and it is restored when the last one stops."""
    seen: list[bool] = []
    rank = Service.recommend_batch

    def spy(self: Service, requests: Any) -> Any:
        seen.append(bool(torch.backends.mkldnn.enabled))
        return rank(self, requests)

    monkeypatch.setattr(Service, "recommend_batch", spy)
    before = torch.backends.mkldnn.enabled
    deterministic = torch.backends.mkldnn.deterministic
    user = str(dataset.users["user_id"][0])
    first = TestClient(create_app(sasrec_dir, f"sqlite:///{tmp_path / 'a.db'}"))
    second = TestClient(create_app(sasrec_dir, f"sqlite:///{tmp_path / 'b.db'}"))
    with contextlib.ExitStack() as apps:
        with first:
            assert torch.backends.mkldnn.enabled is False
            apps.enter_context(second)  # stopped at the end of the outer block, even on failure
            assert first.get(f"/v1/users/{user}/recommendations").status_code == 200
        assert torch.backends.mkldnn.enabled is False  # the second app still runs
        assert second.get(f"/v1/users/{user}/recommendations").status_code == 200
    assert seen == [False, False]
    assert torch.backends.mkldnn.enabled is before
    assert torch.backends.mkldnn.deterministic is deterministic


def test_the_service_ranks_through_traces_unless_told_not_to(
    sasrec_dir: Path, dataset: blm.Dataset, tmp_path: Path
) -> None:
    """The model runs through TorchScript traces by default (less CPU per small batch), with
    the same answers as the eager pass that ``traced=False`` keeps."""
    users = [str(u) for u in dataset.users["user_id"][:6]]
    answers = {}
    for traced in (True, False):
        app = create_app(sasrec_dir, f"sqlite:///{tmp_path / f'{traced}.db'}", traced=traced)
        with TestClient(app) as c:
            service = app.state.service
            assert service.traced is traced
            assert (service.artifact.model.traced is not None) is traced
            if traced:  # both traces are made at start-up, before any request
                assert service.artifact.model.traced.layouts == 2
            answers[traced] = [
                c.get(f"/v1/users/{u}/recommendations", params={"k": 5}).json()["items"]
                for u in users
            ]
    for with_trace, eager in zip(answers[True], answers[False], strict=True):
        assert [r["item_id"] for r in with_trace] == [r["item_id"] for r in eager]
        np.testing.assert_allclose(
            [r["score"] for r in with_trace], [r["score"] for r in eager], rtol=1e-5, atol=1e-5
        )


def test_serve_cli_passes_no_trace_on(
    sasrec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import behaviorlm.serve
    from behaviorlm.cli import main

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(behaviorlm.serve, "run_server", lambda *a, **kw: calls.append(kw))
    store = f"sqlite:///{tmp_path / 'ev.db'}"
    for extra in ([], ["--no-trace"]):
        assert main(["serve", str(sasrec_dir), "--store", store, *extra]) == 0
    assert [c["traced"] for c in calls] == [True, False]


def test_server_retains_freed_memory_only_when_asked(
    sasrec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import behaviorlm.cli
    import behaviorlm.serve
    import behaviorlm.serve.server

    asked: list[str] = []
    for module in (behaviorlm.cli, behaviorlm.serve.server):
        name = module.__name__
        monkeypatch.setattr(module, "retain_freed_memory", lambda n=name: asked.append(n))
    monkeypatch.setattr(behaviorlm.serve.server.uvicorn, "run", lambda *a, **kw: None)
    # run_server sets torch's threads for the process; keep this test process's as they are
    monkeypatch.setattr(behaviorlm.serve.server.torch, "set_num_threads", lambda n: None)
    store = f"sqlite:///{tmp_path / 'ev.db'}"
    assert behaviorlm.cli.main(["serve", str(sasrec_dir), "--store", store]) == 0
    assert asked == []  # the command retains freed memory, but not for the server
    flag = ["--retain-freed-memory"]
    assert behaviorlm.cli.main(["serve", str(sasrec_dir), "--store", store, *flag]) == 0
    assert asked == ["behaviorlm.serve.server"]
    assert behaviorlm.cli.main(["simulate", "--users", "20", str(tmp_path / "sim")]) == 0
    assert asked == ["behaviorlm.serve.server", "behaviorlm.cli"]


# ---------------------------------------------------------------------------- explanations


def live_row(artifact: blm.Artifact, user: str, events: list[EventRecord]) -> Sequences:
    """The user's timeline as the service reads it: training history plus ``events``."""
    return LiveTimelines(artifact).for_user(user, events).sequences


def test_explanation_of_the_live_timeline(
    neural_client: TestClient, dataset: blm.Dataset, sasrec_dir: Path
) -> None:
    user, history = user_with_history(dataset)
    item_id, item = unseen_item(dataset, history)
    before = neural_client.get(f"/v1/users/{user}/explanation").json()
    assert before["method"] == "occlusion"
    assert before["live_events"] == 0
    assert not any(e["live"] for e in before["events"])
    top = neural_client.get(f"/v1/users/{user}/recommendations", params={"k": 1}).json()
    assert before["target"]["item_id"] == top["items"][0]["item_id"]  # default: the top item

    event = EventRecord(
        user_id=user, item_id=item_id, timestamp=LATER, action="cart", event_id="x1"
    )
    post(
        neural_client,
        [
            {
                "user_id": user,
                "item_id": item_id,
                "timestamp": LATER,
                "action": "cart",
                "event_id": "x1",
            }
        ],
    )
    target_id = before["target"]["item_id"]
    after = neural_client.get(f"/v1/users/{user}/explanation", params={"item": target_id}).json()
    assert after["live_events"] == 1
    assert after["timeline_events"] == len(history) + 1
    last = after["events"][-1]
    assert (last["item_id"], last["action_name"], last["live"]) == (item_id, "cart", True)
    assert last["client_event_id"] == "x1"
    assert [e["live"] for e in after["events"]].count(True) == 1
    # the library's explanation of the same live timeline, number for number
    artifact = blm.Artifact.load(sasrec_dir)
    target = int(dataset.item_index([target_id])[0])
    expected = explain(artifact.model, live_row(artifact, user, [event]), target, "occlusion")
    assert after["logit"] == pytest.approx(expected.logit, rel=1e-5)
    assert [e["logit"] for e in after["events"]] == pytest.approx(
        [e.logit for e in expected.events], rel=1e-4, abs=1e-6
    )
    assert [e["item"] for e in after["events"]][-1] == item

    ig = neural_client.get(
        f"/v1/users/{user}/explanation",
        params={"item": target_id, "method": "ig", "steps": 16},
    ).json()
    assert ig["method"] == "integrated_gradients"
    assert ig["baseline_logit"] is not None
    assert ig["events"][-1]["components"]
    attention = neural_client.get(
        f"/v1/users/{user}/explanation", params={"method": "attention"}
    ).json()
    assert attention["note"]
    assert all(e["attention"] is not None and e["logit"] is None for e in attention["events"])
    action = neural_client.get(
        f"/v1/users/{user}/explanation", params={"next_action": "purchase"}
    ).json()
    assert action["target"]["kind"] == "action"
    assert action["target"]["action_name"] == "purchase"
    folded = neural_client.get(
        f"/v1/users/{user}/explanation", params={"next_action": "Purchase"}
    ).json()
    assert folded["target"] == action["target"]
    # the live cart's item, explained without the user's own events on it
    aside = neural_client.get(
        f"/v1/users/{user}/explanation",
        params={"item": item_id, "without_target_events": "true"},
    ).json()
    on_item = np.flatnonzero(live_row(artifact, user, [event]).items == item).tolist()
    assert [e["index"] for e in aside["set_aside"]] == on_item
    # the only live event was set aside, and is named as the client posted it
    assert not any(e["live"] for e in aside["events"])
    assert [e["client_event_id"] for e in aside["set_aside"] if e["live"]] == ["x1"]
    # the item was unseen before the cart: the explanation of the timeline before it
    before_cart = explain(artifact.model, live_row(artifact, user, []), item, "occlusion")
    assert aside["logit"] == pytest.approx(before_cart.logit, rel=1e-5)
    assert [e["logit"] for e in aside["events"]] == pytest.approx(
        [e.logit for e in before_cart.events], rel=1e-4, abs=1e-6
    )
    assert after["set_aside"] == []


def test_the_integrated_gradients_of_the_service_double_up_to_its_limit(
    sasrec_dir: Path, tmp_path: Path, dataset: blm.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    explanation = importlib.import_module("behaviorlm.explain.explanation")
    asked: list[int | None] = []
    real = explanation.integrated_gradients

    def recorded(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("max_steps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(explanation, "integrated_gradients", recorded)
    limits = replace(LIMITS, max_steps=16)
    app = create_app(sasrec_dir, f"sqlite:///{tmp_path / 'e.db'}", api_key=KEY, limits=limits)
    user, _ = user_with_history(dataset)
    with TestClient(app) as c:
        data = c.get(f"/v1/users/{user}/explanation", params={"method": "ig", "steps": 4}).json()
    assert asked == [16]
    assert 4 <= data["steps"] <= 16


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"item": "no-such-item"}, 404, "unknown item"),
        ({"method": "lime"}, 422, "occlusion"),
        ({"method": "shapley", "samples": 0}, 422, "greater than or equal"),
        ({"method": "ig", "steps": 0}, 422, "greater than or equal"),
        ({"method": "ig", "steps": 257}, 422, "less than or equal"),
        ({"next_action": "teleport"}, 422, "teleport"),
        ({"next_action": "purchase", "item": "i1"}, 422, "not both"),
        ({"next_action": "purchase", "without_target_events": "true"}, 422, "item target"),
        ({"item": ""}, 422, "at least 1 character"),
    ],
)
def test_bad_explanation_requests(
    neural_client: TestClient,
    dataset: blm.Dataset,
    params: dict[str, Any],
    status: int,
    words: str,
) -> None:
    user, _ = user_with_history(dataset)
    response = neural_client.get(f"/v1/users/{user}/explanation", params=params)
    assert response.status_code == status, response.text
    assert words in response.text
    assert "Traceback" not in response.text


def test_explanation_needs_a_neural_model_events_and_a_small_window(
    client: TestClient,
    neural_client: TestClient,
    dataset: blm.Dataset,
    sasrec_dir: Path,
    tmp_path: Path,
) -> None:
    user, _ = user_with_history(dataset)
    markov = client.get(f"/v1/users/{user}/explanation")
    assert markov.status_code == 422
    assert "neural sequence model" in markov.json()["detail"]
    assert "markov" in markov.json()["detail"]
    stranger = neural_client.get("/v1/users/stranger/explanation")
    assert stranger.status_code == 404
    assert "no event" in stranger.json()["detail"]
    small = Limits(max_timeline=3)
    app = create_app(sasrec_dir, f"sqlite:///{tmp_path / 'small.db'}", limits=small)
    with TestClient(app, raise_server_exceptions=False) as c:
        over = c.get(f"/v1/users/{user}/explanation")
    assert over.status_code == 422
    assert "limited to 3" in over.json()["detail"]


def test_recommendations_do_not_wait_for_an_explanation(
    sasrec_dir: Path, dataset: blm.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(sasrec_dir, open_store(f"sqlite:///{tmp_path / 'ev.db'}"), traced=False)
    user, _ = user_with_history(dataset)
    expected = service.recommend_user(user, k=5)
    hooked, release = threading.Event(), threading.Event()

    def held_explanation(model: Any, *args: Any, **kwargs: Any) -> Any:
        """An explanation that keeps a hook on its model's item table until released."""
        handle = model.module.tokens.item.register_forward_hook(lambda m, i, out: out * 0)
        hooked.set()
        release.wait(60)
        handle.remove()
        return explain(model, *args, **kwargs)

    monkeypatch.setattr(service_module, "explain", held_explanation)
    worker = threading.Thread(target=service.explain_user, args=(user,))
    worker.start()
    try:
        assert hooked.wait(60)
        during = service.recommend_user(user, k=5)  # answered while the explanation runs
        assert worker.is_alive()
    finally:
        release.set()
        worker.join()
        service.close()
    assert [i.item_id for i in during.items] == [i.item_id for i in expected.items]
    assert [i.score for i in during.items] == [i.score for i in expected.items]
    assert service.explainer is not None
    assert service.explainer.module is not service.artifact.model.module  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- influence


def user_with_followers(dataset: blm.Dataset) -> tuple[str, list[str]]:
    """An external user id with followers, and the followers' external ids."""
    follows = dataset.follows
    followee = int(follows["followee"].mode().sort()[0])
    followers = follows.filter(follows["followee"] == followee)["follower"].to_list()
    names = dataset.users["user_id"].cast(str)
    return names[followee - 1], [names[int(f) - 1] for f in followers]


def test_influence_of_a_share_on_the_live_timeline_and_its_reach(
    neural_client: TestClient, dataset: blm.Dataset, sasrec_dir: Path
) -> None:
    user, followers = user_with_followers(dataset)
    assert followers
    item_id, item = unseen_item(dataset, [])
    named = str(dataset.items["item_id"][0])
    body = {"user_id": user, "item_id": item_id, "action": "share", "items": [named], "k": 5}
    assert neural_client.post("/v1/influence", json=body).status_code == 401
    wrong = neural_client.post("/v1/influence", json=body, headers={"X-API-Key": "no"})
    assert wrong.status_code == 401
    assert "X-API-Key" in wrong.json()["detail"]

    stored = EventRecord(user_id=user, item_id=named, timestamp=LATER, action="cart", event_id="i1")
    post(
        neural_client,
        [
            {
                "user_id": user,
                "item_id": named,
                "timestamp": LATER,
                "action": "cart",
                "event_id": "i1",
            }
        ],
    )
    data = neural_client.post("/v1/influence", json=body, headers=AUTH).json()
    assert data["live_events"] == 1
    assert data["event"]["item_id"] == item_id
    assert data["event"]["action_name"] == "share"
    assert data["kl"] >= 0
    assert [c["item_id"] for c in data["items"]] == [item_id, named]
    artifact = blm.Artifact.load(sasrec_dir)
    expected = influence(
        artifact.model,
        live_row(artifact, user, [stored]),
        HypotheticalEvent(item=item, action=dataset.action_code("share")),
        k=5,
        items=[1],
    )
    assert data["kl"] == pytest.approx(expected.kl, rel=1e-4)
    assert [r["item"] for r in data["before"]] == list(expected.before)
    assert [r["item"] for r in data["after"]] == list(expected.after)
    reach = data["reach"]
    assert sorted(f["user_id"] for f in reach["followers"]) == sorted(followers)
    exposure = blm.estimate_exposure(dataset, "share")
    assert exposure is not None
    rate = exposure.of(int(dataset.user_index([user])[0]))
    assert reach["exposure"] == pytest.approx(rate)
    assert reach["reach"] == pytest.approx(
        rate * sum(f["uplift"] for f in reach["followers"]), abs=1e-4
    )
    # "Share" is share, as in events
    folded = neural_client.post("/v1/influence", json={**body, "action": "Share"}, headers=AUTH)
    assert folded.json()["kl"] == pytest.approx(data["kl"], rel=1e-6)
    assert folded.json()["reach"]["reach"] == pytest.approx(reach["reach"], rel=1e-6)

    view = neural_client.post("/v1/influence", json={**body, "action": "view"}, headers=AUTH).json()
    assert view["reach"] is None  # only shares and likes reach followers by default
    forced = neural_client.post(
        "/v1/influence", json={**body, "action": "view", "reach": True}, headers=AUTH
    )
    assert forced.status_code == 422  # followers do not see a view
    assert "act followers see (share, like), not 'view'" in forced.json()["detail"]
    newcomer = neural_client.post(
        "/v1/influence", json={**body, "user_id": "newcomer"}, headers=AUTH
    ).json()
    assert newcomer["timeline_events"] == 0
    assert newcomer["reach"]["followers"] == []
    assert newcomer["reach"]["exposure"] == pytest.approx(exposure.pooled)


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"item_id": "no-such-item"}, 404, "unknown item"),
        ({"items": ["i1", "nope"]}, 404, "'nope'"),
        ({"action": "teleport"}, 422, "teleport"),
        ({"action": "search"}, 422, "a search has a query, not an item"),
        ({"k": "5"}, 422, "valid integer"),
        ({"k": 51}, 422, "less than or equal to 50"),
        ({"k": 0}, 422, "greater than or equal"),
        ({"items": ["i1"] * 51}, 422, "at most 50 items"),
        ({"items": [""] * 51}, 422, "at most 50 items"),  # the length before the items
        ({"colour": "red"}, 422, "Extra inputs"),
        ({"user_id": ""}, 422, "at least 1 character"),
        ({"reach": "perhaps"}, 422, "boolean"),
        ({"timestamp": -1}, 422, "greater than or equal"),
    ],
)
def test_bad_influence_requests(
    neural_client: TestClient, change: dict[str, Any], status: int, words: str
) -> None:
    body = {"user_id": "u1", "item_id": "i1", **change}
    response = neural_client.post("/v1/influence", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert words in response.text
    assert "Traceback" not in response.text


def test_influence_needs_a_neural_model(client: TestClient) -> None:
    body = {"user_id": "u1", "item_id": "i1"}
    assert client.post("/v1/influence", json=body).status_code == 401  # the key comes first
    response = client.post("/v1/influence", json=body, headers=AUTH)
    assert response.status_code == 422
    assert "neural sequence model" in response.json()["detail"]


@pytest.mark.parametrize("body", [b'{"events": [', b"\xff\xfe{}"], ids=["truncated", "not-utf8"])
def test_a_body_that_is_not_json_is_answered_as_the_schema_says(
    client: TestClient, body: bytes
) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/v1/events"]["post"]["responses"]
    got = client.post(
        "/v1/events", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert got.status_code == 422
    assert got.json()["detail"][0]["type"] == "json_invalid"
    assert "422" in responses
    assert "JSON" not in responses["400"]["description"]  # 400 is for Content-Length alone


def test_a_database_of_another_program_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    import sqlite3

    from behaviorlm.serve.store import SQLiteStore

    def state(path: Path) -> tuple[str, list[str]]:
        conn = sqlite3.connect(path)
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
        finally:
            conn.close()
        return mode, names

    for name, table, words in (
        ("other.db", "CREATE TABLE notes (x)", "tables of another program (notes)"),
        ("events.db", "CREATE TABLE events (x)", "its events table is not an event store's"),
        ("view.db", "CREATE VIEW events AS SELECT 1 AS x", "its events are a view"),
    ):
        path = tmp_path / name
        conn = sqlite3.connect(path)
        conn.execute(table)
        conn.commit()
        conn.close()
        before = state(path)
        with pytest.raises(ValueError, match=re.escape(words)):
            SQLiteStore(path)
        assert state(path) == before == ("delete", before[1])  # no WAL, no table added
    store = SQLiteStore(tmp_path / "mine.db")  # a store of its own opens again
    store.append([EventRecord(user_id="u1", item_id="i1", timestamp=1, action="view")])
    store.close()
    assert SQLiteStore(tmp_path / "mine.db").count() == 1


def test_whole_numbers_given_for_ids_are_those_ids(client: TestClient) -> None:
    # JSON clients often send numeric ids: 7 is "7", as data files and the Python API read it
    data = post(client, [{"user_id": 7, "item_id": "i1", "event_id": 1001}])
    assert data["results"][0]["status"] == "accepted"
    assert data["results"][0]["event_id"] == "1001"
    again = post(client, [{"user_id": "7", "item_id": "i1", "event_id": "1001"}])
    assert again["results"][0]["status"] == "duplicate"  # the same event id
    refused = post(client, [{"user_id": True, "item_id": "i1"}, {"user_id": 7.5, "item_id": 1}])
    assert [r["status"] for r in refused["results"]] == ["rejected", "rejected"]
    timeline = client.get("/v1/users/7/recommendations", params={"k": 2}).json()
    assert timeline["live_events"] == 1

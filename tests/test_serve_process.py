"""The service as a real server process (uvicorn over loopback): ingestion -> fresh
recommendation, explanation and influence, auth, limits and bad input over the wire, and
durability under SIGKILL."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import behaviorlm as blm
from behaviorlm.schema import Sequences
from behaviorlm.serve import open_store
from behaviorlm.serve.process import ServerProcess, start_server

#: After every simulated event (2023) and not ahead of the server's clock, which refuses
#: events over a day ahead.
LATER = int(time.time())
KEY_ENV = "BEHAVIORLM_TEST_API_KEY"


@contextmanager
def server(
    artifact: Path, store_url: str, log: Path, api_key: str | None = None
) -> Iterator[ServerProcess]:
    """``behaviorlm serve`` in a subprocess on a free loopback port, ready when yielded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(KEY_ENV, None)
    if api_key is not None:
        env[KEY_ENV] = api_key
    key_env = KEY_ENV if api_key is not None else None
    with start_server(artifact, store_url, log, api_key_env=key_env, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def dataset() -> blm.Dataset:
    return blm.preprocess(blm.simulate(120, seed=5))


@pytest.fixture(scope="module")
def artifact(dataset: blm.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("markov")
    blm.train(dataset, "markov", out_dir=out, progress=False)
    return out


def test_real_server_ingestion_fresh_recommendation_auth_and_bad_input(
    artifact: Path, dataset: blm.Dataset, tmp_path: Path
) -> None:
    seqs = dataset.sequences()
    row = int(np.flatnonzero(seqs.lengths >= 5)[0])
    user = str(dataset.users["user_id"][row])
    history = seqs.row(row).items.tolist()
    counts = np.bincount(seqs.items, minlength=dataset.n_items + 1)
    counts[[0, *history]] = 0
    item = int(np.argmax(counts))
    item_id = str(dataset.items["item_id"][item - 1])
    event = {"user_id": user, "item_id": item_id, "timestamp": LATER, "event_id": "r1"}
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    with (
        server(artifact, store_url, tmp_path / "server.log", api_key="s3cret") as srv,
        httpx.Client(base_url=srv.url, timeout=10.0) as http,
    ):
        assert http.post("/v1/events", json={"events": [event]}).status_code == 401
        wrong = http.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        ok = http.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert ok.json()["accepted"] == 1
        recs = http.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        assert recs["live_events"] == 1
        model = blm.Artifact.load(artifact).model
        history_now = Sequences.from_lists([[*history, item]], n_items=model.n_items)
        expected = blm.recommend(model, history_now, 5).items[0]
        assert [r["item_id"] for r in recs["items"]] == [
            str(dataset.items["item_id"][int(i) - 1]) for i in expected
        ]
        for response, status in [
            (http.get(f"/v1/users/{user}/recommendations", params={"k": -1}), 422),
            (http.get("/v1/items/unknown/similar"), 404),
            (http.get(f"/v1/users/{user}/explanation"), 422),  # markov: no explanations
            (http.post("/v1/influence", json={"user_id": user, "item_id": item_id}), 401),
            (
                http.post(
                    "/v1/events",
                    content=b"{broken",
                    headers={"X-API-Key": "s3cret", "content-type": "application/json"},
                ),
                422,
            ),
            (
                http.post("/v1/events", content=b" " * (2 << 20), headers={"X-API-Key": "s3cret"}),
                413,
            ),
        ]:
            assert response.status_code == status, response.text
            assert "detail" in response.json()
            assert "Traceback" not in response.text
        metrics = http.get("/metrics").text
        assert 'behaviorlm_events_ingested_total{outcome="accepted"} 1.0' in metrics
    assert "API key required" in (tmp_path / "server.log").read_text()


@pytest.fixture(scope="module")
def neural_artifact(dataset: blm.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sasrec")
    overrides = ["model.dim=16", "model.layers=1", "model.heads=2", "model.max_len=20"]
    overrides += ["train.epochs=1", "train.threads=1"]
    blm.train(dataset, "sasrec", overrides=overrides, out_dir=out, progress=False)
    return out


def test_real_server_explains_the_live_timeline_and_predicts_influence(
    neural_artifact: Path, dataset: blm.Dataset, tmp_path: Path
) -> None:
    seqs = dataset.sequences()
    row = int(np.flatnonzero(seqs.lengths >= 5)[0])
    user = str(dataset.users["user_id"][row])
    item_id = str(dataset.items["item_id"][0])
    auth = {"X-API-Key": "s3cret"}
    event = {"user_id": user, "item_id": item_id, "timestamp": LATER, "event_id": "n1"}
    influence = {"user_id": user, "item_id": item_id, "action": "share", "k": 5}
    with (
        server(
            neural_artifact, f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "log", api_key="s3cret"
        ) as srv,
        httpx.Client(base_url=srv.url, timeout=30.0) as http,
    ):
        assert http.post("/v1/events", json={"events": [event]}, headers=auth).status_code == 200
        explained = http.get(f"/v1/users/{user}/explanation", params={"method": "ig", "steps": 8})
        assert explained.status_code == 200, explained.text
        data = explained.json()
        assert data["live_events"] == 1
        assert data["events"][-1]["client_event_id"] == "n1"
        assert data["events"][-1]["item_id"] == item_id
        assert http.post("/v1/influence", json=influence).status_code == 401
        predicted = http.post("/v1/influence", json=influence, headers=auth)
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["kl"] >= 0
        assert predicted.json()["reach"] is not None
        bad = http.post("/v1/influence", json={**influence, "item_id": "nope"}, headers=auth)
        assert bad.status_code == 404
        assert "Traceback" not in bad.text


CLIENTS = 16


def test_real_server_concurrent_clients_each_see_their_own_event(
    neural_artifact: Path, dataset: blm.Dataset, tmp_path: Path
) -> None:
    users = [str(u) for u in dataset.users["user_id"][:CLIENTS]]
    items = [str(i) for i in dataset.items["item_id"][:CLIENTS]]
    answers: dict[str, dict[str, Any]] = {}
    start = threading.Barrier(CLIENTS)

    def client(base: str, user: str, item: str) -> None:
        event = {"user_id": user, "item_id": item, "event_id": f"c-{user}"}
        with httpx.Client(base_url=base, timeout=30.0) as http:
            assert http.post("/v1/events", json={"events": [event]}).status_code == 200
            start.wait(timeout=30)  # then all ask at once, so requests share batches
            for _ in range(5):
                got = http.get(f"/v1/users/{user}/recommendations", params={"k": 10})
                assert got.status_code == 200, got.text
            answers[user] = got.json()

    with server(neural_artifact, f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "log") as srv:
        threads = [
            threading.Thread(target=client, args=(srv.url, u, i))
            for u, i in zip(users, items, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert sorted(answers) == sorted(users)
    for user, item in zip(users, items, strict=True):
        data = answers[user]
        assert data["user_id"] == user
        assert data["live_events"] == 1  # its own event, read back
        assert item not in [r["item_id"] for r in data["items"]]  # seen: never recommended
    batches = [
        line for line in metrics.splitlines() if line.startswith("behaviorlm_recommendation")
    ]
    total = next(float(x.split()[-1]) for x in batches if "_sum" in x)
    assert total == CLIENTS * 5  # every request went through the batcher exactly once


WORKERS = 4
BATCH = 5
MAX_BATCHES = 400  # per worker: the kill comes long before
KILL_AFTER = 200  # acknowledged events


def test_acknowledged_events_survive_sigkill_exactly_once(
    artifact: Path, dataset: blm.Dataset, tmp_path: Path
) -> None:
    items = dataset.items["item_id"].cast(str).to_list()[:20]
    store_url = f"sqlite:///{tmp_path / 'events.db'}"
    log = tmp_path / "server.log"
    lock = threading.Lock()
    acked: set[str] = set()
    attempted: set[str] = set()
    in_flight: dict[int, list[dict[str, Any]]] = {}
    failures: list[str] = []

    def batch(worker: int, n: int) -> list[dict[str, Any]]:
        return [
            {
                "user_id": f"w{worker}",
                "item_id": items[(n + j) % len(items)],
                "timestamp": LATER + n,
                "event_id": f"w{worker}-{n}-{j}",
            }
            for j in range(BATCH)
        ]

    def client(base: str, worker: int) -> None:
        with httpx.Client(base_url=base, timeout=5.0) as http:
            for n in range(MAX_BATCHES):
                events = batch(worker, n)
                with lock:
                    attempted.update(e["event_id"] for e in events)
                    in_flight[worker] = events
                try:
                    response = http.post("/v1/events", json={"events": events})
                except httpx.TransportError:
                    return  # the server died: this batch stays unacknowledged
                if response.status_code != 200:
                    failures.append(response.text)
                    return
                with lock:
                    acked.update(
                        r["event_id"]
                        for r in response.json()["results"]
                        if r["status"] in ("accepted", "duplicate")
                    )
                    del in_flight[worker]

    with server(artifact, store_url, log) as srv:
        threads = [threading.Thread(target=client, args=(srv.url, w)) for w in range(WORKERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.005)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=15)
        for t in threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in threads)
    assert not failures
    assert len(acked) >= KILL_AFTER
    assert len(attempted) < WORKERS * MAX_BATCHES * BATCH  # killed mid-stream
    assert "listening on 127.0.0.1 only" in log.read_text()

    with (
        server(artifact, store_url, log) as srv,
        httpx.Client(base_url=srv.url, timeout=10.0) as http,
    ):
        # clients retry what was not acknowledged (and one batch that was): no duplicates
        for events in [*in_flight.values(), batch(0, 0)]:
            response = http.post("/v1/events", json={"events": events})
            assert response.status_code == 200
            statuses = {r["status"] for r in response.json()["results"]}
            assert statuses <= {"accepted", "duplicate"}
        assert {r["status"] for r in response.json()["results"]} == {"duplicate"}
        live = http.get("/v1/users/w0/recommendations").json()["live_events"]

    store = open_store(store_url)
    try:
        frame = store.all_events()
    finally:
        store.close()
    ids = frame["event_id"].to_list()
    assert len(ids) == len(set(ids))  # no event twice
    assert acked <= set(ids)  # every acknowledged event survived
    assert set(ids) <= attempted
    assert {e["event_id"] for events in in_flight.values() for e in events} <= set(ids)
    assert live == sum(i.startswith("w0-") for i in ids)  # the restarted server reads them all


def test_start_server_reports_a_server_that_exits_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not a behaviorlm artifact"):
        start_server(tmp_path, f"sqlite:///{tmp_path / 'ev.db'}", tmp_path / "server.log")

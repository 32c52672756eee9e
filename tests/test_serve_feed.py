"""The service with a model that reads followees' events: their accepted shares reach followers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import behaviorlm as blm
from behaviorlm.data.feed import followee_source
from behaviorlm.serve import EventRecord, create_app
from behaviorlm.serve.timelines import LiveTimelines

KEY = "test-key"
AUTH = {"X-API-Key": KEY}
NOW = 2_000_000_000  # after every event and follow of the simulation


@pytest.fixture(scope="module")
def dataset() -> blm.Dataset:
    return blm.preprocess(blm.simulate(150, seed=3))


@pytest.fixture(scope="module")
def feed_dir(dataset: blm.Dataset, train_tiny_sasrec: Callable[..., Path]) -> Path:
    return train_tiny_sasrec(dataset, 'split.followee_actions=["share"]')


@pytest.fixture
def client(feed_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(feed_dir, f"sqlite:///{tmp_path / 'events.db'}", api_key=KEY)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def pair(dataset: blm.Dataset) -> tuple[str, str]:
    """(followee, follower) external ids of one edge of the follow graph."""
    follows = dataset.follows.sort("followee", "follower")
    followee, follower = int(follows["followee"][0]), int(follows["follower"][0])
    users = dataset.users["user_id"]
    return str(users[followee - 1]), str(users[follower - 1])


def fresh_item(dataset: blm.Dataset, follower: str) -> str:
    """An item the follower never touched."""
    seen = set(dataset.sequences().row(int(dataset.user_index([follower])[0]) - 1).items.tolist())
    item = next(i for i in range(1, dataset.n_items + 1) if i not in seen)
    return str(dataset.items["item_id"][item - 1])


def test_live_timeline_reads_the_followees_shares(feed_dir: Path, dataset: blm.Dataset) -> None:
    artifact = blm.Artifact.load(feed_dir)
    live = LiveTimelines(artifact)
    followee, follower = pair(dataset)
    item = fresh_item(dataset, follower)
    assert followee in live.followees_of(follower)
    share = EventRecord(user_id=followee, item_id=item, timestamp=NOW, action="share")
    view = EventRecord(user_id=followee, item_id=item, timestamp=NOW, action="view")
    stranger = EventRecord(user_id="nobody", item_id=item, timestamp=NOW, action="share")
    t = live.for_user(follower, [], [share, view, stranger])  # only the share is read
    row = t.sequences
    assert t.live == (share,)
    assert int(row.items[-1]) == live.item_code(item)
    assert int(row.sources[-1]) == followee_source(dataset)
    assert bool(row.is_followee_event()[-1])
    # live events in time order, whoever made them
    later = EventRecord(user_id=follower, item_id=item, timestamp=NOW + 100, action="view")
    mixed = live.for_user(follower, [later], [share]).sequences
    assert mixed.timestamps[-2:].tolist() == [NOW, NOW + 100]
    assert mixed.is_followee_event()[-2:].tolist() == [True, False]
    # the training part equals the artifact's timeline, the data set's followee events included
    base = artifact.histories([follower])
    assert row.items[:-1].tolist() == base.items.tolist()
    assert base.is_followee_event().any() or not live.followees_of(follower)


def test_accepted_share_reaches_the_followers_next_request(
    client: TestClient, dataset: blm.Dataset
) -> None:
    followee, follower = pair(dataset)
    item = fresh_item(dataset, follower)
    before = client.get(f"/v1/users/{follower}/recommendations", params={"k": 5}).json()
    assert before["live_events"] == 0
    event = {"user_id": followee, "item_id": item, "timestamp": NOW, "action": "share"}
    posted = client.post("/v1/events", json={"events": [event]}, headers=AUTH).json()
    assert posted["accepted"] == 1
    after = client.get(
        f"/v1/users/{follower}/recommendations", params={"k": dataset.n_items}
    ).json()
    assert after["live_events"] == 1
    # a followee's share is not an item the follower has seen: it may still be recommended
    assert item in [row["item_id"] for row in after["items"]]
    explained: dict[str, Any] = client.get(f"/v1/users/{follower}/explanation").json()
    last = explained["events"][-1]
    assert (last["live"], last["kind"], last["item_id"]) == (True, "social", item)
    assert last["followee_id"] == followee  # whose share it is
    # the followee's own timeline holds the share as their own event
    own = client.get(f"/v1/users/{followee}/recommendations", params={"k": 1}).json()
    assert own["live_events"] == 1


def test_influence_of_a_share_inserts_the_followee_event(
    client: TestClient, dataset: blm.Dataset
) -> None:
    followee, _ = pair(dataset)
    item = fresh_item(dataset, followee)
    body = {"user_id": followee, "item_id": item, "action": "share"}
    data = client.post("/v1/influence", json=body, headers=AUTH).json()
    assert data["reach"] is not None
    assert np.isfinite(data["reach"]["reach"])
    # the share itself reaches the followers: the exposure counts relative to the pooled rate
    exposure = blm.estimate_exposure(dataset, "share")
    assert exposure is not None
    relative = exposure.relative().of(int(dataset.user_index([followee])[0]))
    assert data["reach"]["exposure"] == pytest.approx(relative, rel=1e-5)

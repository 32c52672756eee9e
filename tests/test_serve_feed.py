"""The service with a model that reads followees' events: their accepted shares reach followers;
and users' stored events coded once and read incrementally, the same timelines as read whole."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import behaviorlm as blm
from behaviorlm.cli import main
from behaviorlm.data.feed import followee_source
from behaviorlm.explain import explain
from behaviorlm.schema import Sequences
from behaviorlm.serve import EventRecord, RecommendRequest, Service, create_app, open_store
from behaviorlm.serve.own_events import OwnEventCache
from behaviorlm.serve.store import EventStore
from behaviorlm.serve.timelines import LiveTimelines, Timeline

KEY = "test-key"
AUTH = {"X-API-Key": KEY}
#: After every event and follow of the simulation (2023), and not ahead of the server's clock,
#: which refuses events over a day ahead.
NOW = int(time.time())


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


def test_an_own_event_equal_to_a_followee_event_of_training_is_read(
    feed_dir: Path, dataset: blm.Dataset
) -> None:
    """A user's own stored event with the item, action and time of a followee's share in the
    user's training row is no training event of the user's: it is read."""
    artifact = blm.Artifact.load(feed_dir)
    live = LiveTimelines(artifact)
    rows = artifact.timelines()
    source = followee_source(dataset)
    row = next(r for r in range(len(rows)) if (rows.row(r).sources == source).any())
    events = rows.row(row)
    at = int(np.flatnonzero(events.sources == source)[0])
    own = EventRecord(
        user_id=str(dataset.users["user_id"][row]),
        item_id=str(dataset.items["item_id"][int(events.items[at]) - 1]),
        timestamp=int(events.timestamps[at]),
        action=dataset.vocab["action"][int(events.actions[at]) - 1],
    )
    assert not live.in_training(own)
    assert live.for_user(own.user_id, [own]).live_events == 1


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
    assert data["reach"]["exposure_relative"] is True
    assert data["reach"]["followee_event"] is True


def test_the_commands_say_a_relative_exposure_is_relative(
    feed_dir: Path, dataset: blm.Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    followee, follower = pair(dataset)
    item = fresh_item(dataset, follower)
    argv = ["influence", str(feed_dir), "--user", followee, "--action", "share", "--item", item]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "how often a follower sees the user's act, over the average act's" in text
    assert "probability" not in text
    assert "if seen" not in text  # a followee's act: the uplift averages over being seen
    assert main(["influencers", str(feed_dir), "--item", item]) == 0
    assert "(exposure: how often a follower sees the user's act, over" in capsys.readouterr().out
    assert main(["influencers", str(feed_dir), "--item", item, "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert ranked["exposure_relative"] is True
    assert ranked["followee_event"] is True


# ---------------------------------------------------------------- own events read incrementally


@pytest.fixture(scope="module")
def live(feed_dir: Path) -> LiveTimelines:
    return LiveTimelines(blm.Artifact.load(feed_dir))


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    return open_store(f"sqlite:///{tmp_path / 'events.db'}")


def events_round(user: str, items: list[str], k: int, round_: int) -> list[EventRecord]:
    """Views, an event on an unknown item, a search and an event dated before the others."""
    out = [
        EventRecord(
            user_id=user,
            item_id=items[(round_ * k + j) % len(items)],
            timestamp=NOW + j,
            action="view",
            event_id=f"{user}-{round_}-{j}",
        )
        for j in range(k)
    ]
    out.append(
        EventRecord(
            user_id=user,
            item_id=f"unknown-{round_}",
            timestamp=NOW,
            action="view",
            event_id=f"{user}-{round_}-u",
        )
    )
    out.append(
        EventRecord(
            user_id=user,
            item_id=None,
            timestamp=NOW - 5,
            action="search",
            query="red shoes",
            event_id=f"{user}-{round_}-s",
        )
    )
    out.append(
        EventRecord(
            user_id=user,
            item_id=items[round_],
            timestamp=1,
            action="cart",
            event_id=f"{user}-{round_}-old",
        )
    )
    return out


def whole_read(store: EventStore, user_id: str) -> tuple[list[EventRecord], list[int]]:
    """A user's stored events, whole, with their storage positions."""
    return store.user_events_after(user_id, 0)


def assert_same(
    cached: Timeline, whole: Timeline, first_live_event: int, store: EventStore | None = None
) -> None:
    """The same rows; with ``store``, the cached timeline's storage positions read the
    records of the whole one's live events (where known: not for followee events picked
    from records)."""
    if store is not None:
        assert whole.live is not None
        known = np.flatnonzero(cached.positions)
        read = store.events_at(cached.positions[known].tolist())
        assert read == [whole.live[k] for k in known]
    a, b = cached.sequences.per_event(), whole.sequences.per_event()
    # live events are numbered on from the data set's, each once (own, then followees')
    live_ids = b["event_ids"][b["event_ids"] >= first_live_event]
    assert sorted(live_ids.tolist()) == list(
        range(first_live_event, first_live_event + whole.live_events)
    )
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert (cached.length, cached.live_events, cached.ignored_events, cached.known_user) == (
        whole.length,
        whole.live_events,
        whole.ignored_events,
        whole.known_user,
    )
    assert cached.live is None


def test_store_reads_only_what_came_after_a_position(store: EventStore) -> None:
    first = [EventRecord(user_id="u", item_id="i1", timestamp=5, action="view", event_id="a")]
    store.append(first)
    store.append([EventRecord(user_id="v", item_id="i1", timestamp=6, action="view")])
    events, positions = store.user_events_after("u", 0)
    assert events == first
    (mark,) = positions
    assert store.user_events_after("u", mark) == ([], [])
    later = [EventRecord(user_id="u", item_id="i2", timestamp=7, action="cart", event_id="b")]
    store.append(later)
    events, positions = store.user_events_after("u", mark)
    assert events == later
    assert positions[0] > mark
    assert store.user_events("u") == first + later
    # records by storage position, in the order asked, repeats included
    assert store.events_at([positions[0], mark, positions[0]]) == [*later, *first, *later]
    assert store.events_at([]) == []
    with pytest.raises(LookupError, match="no stored event"):
        store.events_at([mark, positions[0] + 1000])
    # more positions than one query takes, in any order
    many = [
        EventRecord(user_id="w", item_id=f"i{j}", timestamp=j, action="view") for j in range(1200)
    ]
    store.append(many)
    _, where = store.user_events_after("w", 0)
    order = np.random.default_rng(0).permutation(len(many)).tolist()
    assert store.events_at([where[j] for j in order]) == [many[j] for j in order]


@pytest.mark.parametrize("from_records", [False, True], ids=["codes", "records"])
@pytest.mark.parametrize("bounds", [{}, {"max_users": 1}, {"max_events": 5}, {"max_events": 30}])
def test_cached_timelines_equal_timelines_read_whole(
    live: LiveTimelines,
    dataset: blm.Dataset,
    store: EventStore,
    bounds: dict[str, int],
    from_records: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if from_records:  # as for a model without a code for "share": followees' records
        monkeypatch.setattr(live, "followee_action_codes", None)
    cache = OwnEventCache(live, store, **bounds)
    followee, follower = pair(dataset)
    items = [str(i) for i in dataset.items["item_id"].to_list()[:40]]
    users = [follower, followee, "a-new-user"]
    other = next(f for f in live.followees_of(follower) if f != followee)  # a second followee
    for round_ in range(3):
        for user in users:
            store.append(events_round(user, items, k=3 + round_, round_=round_))
        share = EventRecord(
            user_id=followee,
            item_id=items[-1],
            timestamp=NOW + 50 + round_,
            action="share",
            event_id=f"share-{round_}",
        )
        # a share from before the follow began, which the follower's timeline leaves out; one
        # on an item the model does not know; at the share's time, another followee's share
        # and an event of the follower's own (ties, in the order of the timeline)
        early = replace(share, timestamp=1, event_id=f"early-share-{round_}")
        unknown = replace(share, item_id=f"new-{round_}", event_id=f"unknown-share-{round_}")
        tie = replace(share, user_id=other, item_id=items[round_], event_id=f"tie-{round_}")
        own = replace(share, user_id=follower, action="view", event_id=f"own-tie-{round_}")
        store.append([share, early, unknown, tie, own])
        for user in users:  # each user twice: once reading what came since, once nothing new
            for _ in range(2):
                theirs = [e for f in live.followees_of(user) for e in store.user_events(f)]
                # the followees' events picked from their cached codes: the same timeline
                cached = live.for_user_coded(
                    user, cache.get(user), cache.followee_events, partial(whole_read, store)
                )
                whole = live.for_user(user, store.user_events(user), theirs)
                assert_same(cached, whole, live.first_live_event, store)
                # every live event has its storage position, followee events picked from
                # records too
                assert len(cached.positions) == cached.live_events
                assert cached.positions.all()
                assert len(cache) <= bounds.get("max_users", 4096)
                assert cache.kept_events <= bounds.get("max_events", 200_000)
    # the follower reads the six shares on known items made after the follows began
    theirs = [e for f in live.followees_of(follower) for e in store.user_events(f)]
    whole = live.for_user(follower, store.user_events(follower), theirs)
    assert whole.live_events == cache.get(follower).size + 6
    # every user kept, and the followees' shares in entries of their own where they are
    # read from codes: the count is the sum
    if not bounds:
        codes = live.followee_action_codes
        followees = set()
        if codes is not None:
            followees = {f for user in users for f in live.followees_of(user)}
            assert all(cache.keeps_followee_events(f) for f in followees)
            # the followee's entry for their followers holds their shares only (two coded
            # each round: the share and the early one)
            assert cache.followee_events(followee, codes).size == 6 < cache.get(followee).size
        assert len(cache) == len(users) + len(followees)
        assert cache.kept_events == sum(cache.get(u).size for u in users) + sum(
            cache.followee_events(f, codes).size for f in followees if codes is not None
        )
    if bounds == {"max_events": 5}:  # every user has more events than that: none is kept
        # only the second followee's three shares (and nobodies), where read from codes
        assert cache.kept_events == (0 if from_records else 3)


def test_followee_action_without_a_code_picks_from_the_records(
    feed_dir: Path, dataset: blm.Dataset, store: EventStore
) -> None:
    live = LiveTimelines(blm.Artifact.load(feed_dir))
    cache = OwnEventCache(live, store)
    followee, follower = pair(dataset)
    item = str(dataset.items["item_id"][0])
    store.append([EventRecord(user_id=followee, item_id=item, timestamp=NOW, action="share")])
    theirs = [e for f in live.followees_of(follower) for e in store.user_events(f)]
    whole = live.for_user(follower, store.user_events(follower), theirs)
    assert live.followee_action_codes is not None
    live.followee_action_codes = None  # as for a model without a code for "share"
    own = cache.get(follower)
    coded = live.for_user_coded(follower, own, cache.followee_events, partial(whole_read, store))
    assert_same(coded, whole, live.first_live_event, store)
    assert whole.live_events == 1


def test_many_timelines_equal_each_read_alone(
    live: LiveTimelines, dataset: blm.Dataset, store: EventStore
) -> None:
    """A social reach's followers in one pass: the rows of for_user, in the order asked."""
    followee, follower = pair(dataset)
    followers = [f for f in live.user_ids if followee in live.followees_of(f)]
    # users without a live event their timeline reads: their training rows, in one step
    quiet = [u for u in live.user_ids if u not in followers and u != followee][:3]
    assert follower in followers
    assert len(followers) >= 2
    assert len(quiet) == 3
    items = [str(i) for i in dataset.items["item_id"].to_list()[:20]]
    store.append(events_round(follower, items, k=3, round_=0))  # own events
    # a share the followers read, one from before the follows began, a view they do not read
    share = EventRecord(user_id=followee, item_id=items[-1], timestamp=NOW, action="share")
    store.append([share, replace(share, timestamp=1), replace(share, action="view")])
    # a quiet user whose only stored event is on an item the model does not know
    store.append([EventRecord(user_id=quiet[2], item_id="new", timestamp=NOW, action="view")])
    asked = [quiet[0], "a-new-user", *followers[:4], quiet[1], follower, quiet[2], quiet[0]]

    def alone(user: str) -> Sequences:
        theirs = [e for f in live.followees_of(user) for e in store.user_events(f)]
        return live.for_user(user, store.user_events(user), theirs).sequences

    for users in (asked, quiet, [follower], []):
        got = live.for_users(users, store.user_events)
        want = live.stack([alone(u) for u in users])
        assert got.lengths.tolist() == want.lengths.tolist()
        assert got.users.tolist() == want.users.tolist()
        a, b = got.per_event(), want.per_event()
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # quiet users keep their training rows; the other followers read the share last
    trained = live.training.select(np.array(dataset.user_index(quiet), dtype=np.int64) - 1)
    np.testing.assert_array_equal(live.for_users(quiet, store.user_events).items, trained.items)
    rows = live.for_users([f for f in followers if f != follower], store.user_events)
    last = rows.offsets[1:] - 1
    assert rows.is_followee_event()[last].all()
    assert (rows.items[last] == live.item_code(items[-1])).all()


def test_equal_times_keep_training_then_own_then_followee_events(
    live: LiveTimelines, dataset: blm.Dataset
) -> None:
    """On a tie with the last training event: the training events, the user's own live
    event, then the followee's, as data.feed.merge_feed orders them, whichever path builds
    the timeline."""
    followee, follower = pair(dataset)
    user = live.users[follower]
    since = dict(live.followees[user])[followee]
    last = int(live.training.row(user - 1).timestamps[-1])
    assert since is None or since <= last
    item = str(dataset.items["item_id"][0])
    own = EventRecord(user_id=follower, item_id=item, timestamp=last, action="view")
    share = EventRecord(user_id=followee, item_id=item, timestamp=last, action="share")
    stored = {follower: [own], followee: [share]}
    alone = live.for_user(follower, [own], [share]).sequences
    many = live.for_users([follower], lambda u: stored.get(u, []))
    for row in (alone, many):
        ids, first = row.event_ids[-3:].tolist(), live.first_live_event
        assert ids[0] < first  # the training event at that time
        assert ids[1:] == [first, first + 1]  # then the user's own, then the followee's
        assert row.is_followee_event()[-3:].tolist()[1:] == [False, True]
        assert (row.timestamps[-3:] == last).all()


class Spy:
    """An event store that records what ``user_events_after`` was asked and returned."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.reads: list[tuple[int, int]] = []  # (after, events returned)

    def user_events_after(self, user_id: str, after: int) -> tuple[list[EventRecord], list[int]]:
        events, positions = self.store.user_events_after(user_id, after)
        self.reads.append((after, len(events)))
        return events, positions


def test_each_read_takes_only_the_events_stored_since(
    live: LiveTimelines, dataset: blm.Dataset, store: EventStore
) -> None:
    spy = Spy(store)
    cache = OwnEventCache(live, spy)  # type: ignore[arg-type]  # reads only
    items = [str(i) for i in dataset.items["item_id"].to_list()[:40]]
    first = events_round("u1", items, k=3, round_=0)
    store.append(first)
    assert cache.get("u1").stored == len(first)
    cache.get("u1")  # nothing new: nothing read
    second = events_round("u1", items, k=2, round_=1)
    store.append(second)
    assert cache.get("u1").stored == len(first) + len(second)
    (a0, n0), (a1, n1), (a2, n2) = spy.reads
    assert (a0, n0) == (0, len(first))
    assert a1 > 0
    assert n1 == 0
    assert a2 == a1
    assert n2 == len(second)


def test_a_followee_with_many_events_of_other_kinds_is_kept_by_their_shares(
    live: LiveTimelines, dataset: blm.Dataset, store: EventStore
) -> None:
    """More stored events than the cache's bound, few of them shares: the follower's
    requests read only the followee's events stored since, and the timeline is the same."""
    spy = Spy(store)
    cache = OwnEventCache(live, spy, max_events=20)  # type: ignore[arg-type]  # reads only
    followee, follower = pair(dataset)
    codes = live.followee_action_codes
    assert codes is not None
    items = [str(i) for i in dataset.items["item_id"].to_list()[:40]]
    views = [
        EventRecord(user_id=followee, item_id=items[j % 40], timestamp=NOW + j, action="view")
        for j in range(50)
    ]
    share = EventRecord(user_id=followee, item_id=items[0], timestamp=NOW + 60, action="share")
    store.append([*views, share])
    for round_ in range(3):
        if round_ == 2:  # a new share: read, and only it
            store.append([replace(share, timestamp=NOW + 70)])
        spy.reads.clear()
        cached = live.for_user_coded(
            follower, cache.get(follower), cache.followee_events, partial(whole_read, store)
        )
        theirs = [e for f in live.followees_of(follower) for e in store.user_events(f)]
        assert_same(cached, live.for_user(follower, [], theirs), live.first_live_event, store)
        assert cached.live_events == 1 + (round_ == 2)
        # the followee's own entry would hold 52 events: over the bound, not kept
        assert cache.keeps_followee_events(followee)
        if round_:  # nothing read whole: only the new share, once
            assert sum(n for _, n in spy.reads) == (round_ == 2)
    assert followee not in cache
    assert cache.get(followee).size == 52  # read whole: more than the bound


class CountingStore:
    """An event store that counts whole reads of a user's events (``user_events``) and
    records the reads from a position (``user_events_after``: user, position)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.whole_reads: list[str] = []
        self.reads_after: list[tuple[str, int]] = []

    def user_events(self, user_id: str) -> list[EventRecord]:
        self.whole_reads.append(user_id)
        return self.store.user_events(user_id)

    def user_events_after(self, user_id: str, after: int) -> tuple[list[EventRecord], list[int]]:
        self.reads_after.append((user_id, after))
        return self.store.user_events_after(user_id, after)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def test_recommendations_read_no_timeline_whole(
    feed_dir: Path, tmp_path: Path, dataset: blm.Dataset
) -> None:
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    service = Service(feed_dir, store)  # type: ignore[arg-type]
    followee, follower = pair(dataset)
    item = fresh_item(dataset, follower)
    for n in range(3):
        share = {"user_id": followee, "item_id": item, "timestamp": NOW + n, "action": "share"}
        service.ingest([share])
        answer = service.recommend_batch([RecommendRequest(user_id=follower, k=5)])[0]
        assert not isinstance(answer, Exception)
        assert answer.live_events == n + 1  # the followee's shares, fresh
    assert store.whole_reads == []
    service.close()


@pytest.mark.parametrize("from_records", [False, True], ids=["codes", "records"])
def test_explanations_read_no_timeline_whole(
    feed_dir: Path, tmp_path: Path, dataset: blm.Dataset, from_records: bool
) -> None:
    """Explanations take the cached codes and read the records of the live events they
    show by storage position: labels as the whole timeline's records give them. Where the
    model lacks a code for a followee action, the followees' events are read whole, with
    their storage positions."""
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    service = Service(feed_dir, store)  # type: ignore[arg-type]
    if from_records:
        service.timelines.followee_action_codes = None
    followee, follower = pair(dataset)
    item = fresh_item(dataset, follower)
    other = next(str(i) for i in dataset.items["item_id"].to_list() if str(i) != item)
    for n in range(2):  # two rounds: the second reads only what came since
        service.ingest(
            [
                {
                    "user_id": followee,
                    "item_id": item,
                    "timestamp": NOW + 10 * n,
                    "action": "share",
                    "event_id": f"share-{n}",
                },
                {
                    "user_id": follower,
                    "item_id": other,
                    "timestamp": NOW + 10 * n + 1,
                    "action": "view",
                    "event_id": f"view-{n}",
                },
                {
                    "user_id": follower,
                    "item_id": "not-in-the-model",
                    "timestamp": NOW + 10 * n + 2,
                    "action": "view",
                    "event_id": f"unknown-{n}",
                },
                {
                    "user_id": follower,
                    "item_id": None,
                    "timestamp": NOW + 10 * n + 3,
                    "action": "search",
                    "query": f"red shoes {n}",
                    "event_id": f"search-{n}",
                },
            ]
        )
        store.reads_after.clear()
        answer = service.explain_user(follower)
        # (users with nothing stored are read from position 0 each time)
        from_start = {u for u, after in store.reads_after if after == 0} & {followee, follower}
        if n:  # the user's own events read from where the last read ended; the followee's
            # too, unless picked from records
            assert from_start == ({followee} if from_records else set())
        live = [row for row in answer.model_dump()["events"] if row["live"]]
        shown = {row["client_event_id"]: row for row in live}
        expected = {f"{kind}-{m}" for m in range(n + 1) for kind in ("share", "view", "search")}
        assert set(shown) == expected
        # each label on the event the model read: item, action and whose it is agree
        for m in range(n + 1):
            share, view, search = (shown[f"{kind}-{m}"] for kind in ("share", "view", "search"))
            assert (share["followee_id"], share["item_id"]) == (followee, item)
            assert (view["item_id"], view["action_name"], view["query"]) == (other, "view", None)
            assert (search["action_name"], search["query"]) == ("search", f"red shoes {m}")
    assert store.whole_reads == []
    # the same explanation as from the timeline read whole, number for number
    whole = service.timelines.for_user(
        follower,
        store.store.user_events(follower),
        [e for f in service.timelines.followees_of(follower) for e in store.store.user_events(f)],
    )
    artifact = blm.Artifact.load(feed_dir)
    expected_logits = explain(artifact.model, whole.sequences, None, "occlusion")
    assert [e.logit for e in answer.events] == pytest.approx(
        [e.logit for e in expected_logits.events], rel=1e-4, abs=1e-6
    )
    service.close()


def test_recommendations_reflect_each_new_event(
    feed_dir: Path, tmp_path: Path, dataset: blm.Dataset
) -> None:
    service = Service(feed_dir, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    user = str(dataset.users["user_id"][0])
    items = [str(i) for i in dataset.items["item_id"].to_list()]
    before = service.recommend_batch([RecommendRequest(user_id=user, k=5)])[0]
    assert not isinstance(before, Exception)
    for n, item in enumerate(items[:3], start=1):
        service.ingest(
            [
                {
                    "user_id": user,
                    "item_id": item,
                    "timestamp": NOW + n,
                    "action": "purchase",
                    "event_id": f"p{n}",
                }
            ]
        )
        answer = service.recommend_batch([RecommendRequest(user_id=user, k=20)])[0]
        assert not isinstance(answer, Exception)
        assert answer.live_events == n  # read-your-writes through the cache
        assert answer.timeline_events == before.timeline_events + n
        recommended = {r.item_id for r in answer.items}
        assert not recommended & set(items[:n])  # purchased items are excluded at once
    service.close()


def test_bounds_must_be_positive(live: LiveTimelines, store: EventStore) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        OwnEventCache(live, store, max_users=0)


def test_a_user_following_many_accounts_leaves_the_cache_to_others(
    feed_dir: Path, tmp_path: Path, dataset: blm.Dataset
) -> None:
    """The followees of a user who follows more accounts than half the users the cache
    holds are read whole and not kept; the timeline is the same."""
    service = Service(feed_dir, open_store(f"sqlite:///{tmp_path / 'ev.db'}"))
    live = service.timelines
    follower = max(live.user_ids, key=lambda u: len(live.followees_of(u)))
    followees = live.followees_of(follower)
    assert len(followees) >= 3
    service.own_events = OwnEventCache(live, service.store, max_users=len(followees))
    item = str(dataset.items["item_id"][0])
    shares = [
        {"user_id": f, "item_id": item, "timestamp": NOW + n, "action": "share"}
        for n, f in enumerate(followees)
    ]
    service.ingest(shares)
    other = next(u for u in live.user_ids if u != follower and u not in followees)
    service.own_events.get(other)  # a user served before
    answer = service.recommend_batch([RecommendRequest(user_id=follower, k=5)])[0]
    assert not isinstance(answer, Exception)
    # every followee's share read, none of the followees kept, the other user still kept
    theirs = [e for f in followees for e in service.store.user_events(f)]
    whole = live.for_user(follower, service.store.user_events(follower), theirs)
    assert answer.live_events == whole.live_events > 0
    assert len(service.own_events) == 2
    assert other in service.own_events
    assert follower in service.own_events
    cached = service._live(follower)
    assert_same(cached, whole, live.first_live_event, service.store)
    # a followee whose own events are kept (they asked too): served from that entry, only
    # what came since read
    service.own_events.get(followees[0])
    spy = Spy(service.store)
    service.own_events.store = spy  # type: ignore[assignment]  # reads only
    again = service._live(follower)
    assert_same(again, whole, live.first_live_event, service.store)
    # from position 0: the follower (nothing stored) and the other followees (read whole)
    assert sorted(after > 0 for after, _ in spy.reads) == [False] * len(followees) + [True]
    service.close()

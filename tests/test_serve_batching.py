"""Dynamic batching of recommendation requests: the Batcher and Service.recommend_batch."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

import behaviorlm as blm
from behaviorlm.serve.batching import Batcher, OverloadedError
from behaviorlm.serve.service import RecommendRequest, RequestError, Service
from behaviorlm.serve.store import EventRecord, open_store


def test_concurrent_items_share_a_batch_and_keep_their_order() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def handle(items: list[int]) -> list[int | Exception]:
        if items == [0]:
            gate.wait(5)  # the first batch holds the worker while the others queue
        return [ValueError(f"odd {x}") if x % 2 else 10 * x for x in items]

    async def scenario() -> list[int | BaseException]:
        async with Batcher(handle, max_batch=4, observe=sizes.append) as batcher:
            first = asyncio.ensure_future(batcher.submit(0))
            await asyncio.sleep(0.05)
            rest = [asyncio.ensure_future(batcher.submit(x)) for x in range(1, 7)]
            await asyncio.sleep(0.05)
            assert batcher.pending == 6
            gate.set()
            return list(await asyncio.gather(first, *rest, return_exceptions=True))

    answers = asyncio.run(scenario())
    assert sizes == [1, 4, 2]  # 6 waiting items in batches of at most 4
    assert answers[0::2] == [0, 20, 40, 60]
    assert [str(a) for a in answers[1::2]] == ["odd 1", "odd 3", "odd 5"]


def test_a_failing_batch_fails_each_caller_and_the_worker_goes_on() -> None:
    def handle(items: list[int]) -> list[int | Exception]:
        if 13 in items:
            raise RuntimeError("broken batch")
        return list(items)

    async def scenario() -> None:
        async with Batcher(handle) as batcher:
            with pytest.raises(RuntimeError, match="broken batch"):
                await batcher.submit(13)
            assert await batcher.submit(2) == 2

    asyncio.run(scenario())


def test_wrong_answer_count_is_an_error_not_a_hang() -> None:
    def handle(items: list[int]) -> list[int | Exception]:
        return []

    async def scenario() -> None:
        async with Batcher(handle, max_batch=2) as batcher:
            with pytest.raises(RuntimeError, match="0 answers for 1 items"):
                await batcher.submit(1)

    asyncio.run(scenario())


def test_overload_is_refused_at_once_and_stop_fails_what_waits() -> None:
    gate = threading.Event()

    def handle(items: list[int]) -> list[int | Exception]:
        gate.wait(5)
        return list(items)

    async def scenario() -> None:
        batcher: Batcher[int, int] = Batcher(handle, max_batch=1, max_pending=2)
        with pytest.raises(RuntimeError, match="not started"):
            await batcher.submit(0)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # item 0 is in the worker; two more may wait
        waiting = [asyncio.ensure_future(batcher.submit(x)) for x in (1, 2)]
        await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError, match="2 requests are waiting"):
            await batcher.submit(3)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the batch that runs
        with pytest.raises(OverloadedError, match="shutting down"):
            await batcher.submit(4)  # refused once stopping
        gate.set()
        await stopping
        assert await running == 0  # the running batch is answered, not dropped
        for task in waiting:  # the waiting ones fail at once instead of hanging
            with pytest.raises(OverloadedError, match="shutting down"):
                await task

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="must be positive"):
        Batcher(lambda items: items, max_batch=0)


def test_a_failing_observer_fails_the_batch_not_the_worker() -> None:
    calls: list[int] = []

    def observe(size: int) -> None:
        calls.append(size)
        if len(calls) == 1:
            raise RuntimeError("metrics down")

    def handle(items: list[int]) -> list[int | Exception]:
        return list(items)

    async def scenario() -> None:
        async with Batcher(handle, observe=observe) as batcher:
            with pytest.raises(RuntimeError, match="metrics down"):
                await batcher.submit(1)
            answers = await asyncio.gather(batcher.submit(2), batcher.submit(3))
            assert sorted(answers) == [2, 3]  # the worker lives on

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    folder = tmp_path_factory.mktemp("batch")
    dataset = blm.preprocess(blm.simulate(80, seed=3))
    overrides = ["model.dim=16", "model.layers=1", "model.max_len=20", "train.epochs=1"]
    blm.train(dataset, "sasrec", overrides=overrides, out_dir=folder / "art", progress=False)
    return Service(folder / "art", open_store(f"sqlite:///{folder / 'ev.db'}"))


def test_a_batch_answers_each_request_as_it_would_alone(service: Service) -> None:
    users = service.timelines.user_ids[:4]
    item = next(iter(service.timelines.items))
    service.store.append(
        [
            EventRecord(
                user_id=users[0],
                item_id=item,
                timestamp=2_000_000_000,
                action="view",
                event_id="b1",
            )
        ]
    )
    requests = [
        RecommendRequest(user_id=users[0], k=5),
        RecommendRequest(user_id=users[1], k=12, exclude_seen=False),
        RecommendRequest(user_id=users[2], k=3, action="purchase"),
        RecommendRequest(user_id="new-user", k=4),  # cold start: popularity
        RecommendRequest(user_id=users[3], action="teleport"),  # unknown action
        RecommendRequest(events=(), k=2),
    ]
    answers = service.recommend_batch(requests)
    assert len(answers) == len(requests)
    for request, answer in zip(requests, answers, strict=True):
        if request.action == "teleport":
            assert isinstance(answer, RequestError)
            assert answer.status == 422
            continue
        assert not isinstance(answer, RequestError)
        alone = service.recommend_batch([request])[0]
        assert not isinstance(alone, RequestError)
        together, single = answer.model_dump(), alone.model_dump()
        mine, theirs = together.pop("items"), single.pop("items")
        assert [x["item_id"] for x in mine] == [x["item_id"] for x in theirs]
        assert [x["score"] for x in mine] == pytest.approx([x["score"] for x in theirs], rel=1e-5)
        assert together == single
        assert len(answer.items) == request.k
    first = answers[0]
    assert not isinstance(first, RequestError)
    assert first.live_events == 1
    assert [a.source for a in answers if not isinstance(a, RequestError)] == [
        "model",
        "model",
        "model",
        "popularity",
        "popularity",
    ]
    timeline = service.timelines.for_user(users[0], service.store.user_events(users[0])).sequences
    own = timeline.items[~timeline.is_followee_event()]  # a followee's share is not seen
    ids = {i.item_id for i in first.items}
    assert not ids & {
        service.artifact.dataset.items["item_id"][int(c) - 1] for c in np.unique(own) if c > 0
    }
    assert service.recommend_batch([]) == []


def test_a_request_the_model_cannot_score_fails_alone(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = service.timelines.user_ids[:3]
    model = service.artifact.model
    broken = service.timelines.for_user(users[1], []).sequences
    score = model.score

    def nan_for_the_broken_row(batch: blm.Sequences, items: slice) -> np.ndarray:
        scores = np.array(score(batch, items), dtype=np.float32)
        for row in range(len(batch)):
            if np.array_equal(batch.row(row).items, broken.items):
                scores[row] = np.nan
        return scores

    monkeypatch.setattr(model, "score", nan_for_the_broken_row)
    answers = service.recommend_batch([RecommendRequest(user_id=u, k=3) for u in users])
    failed = answers[1]
    assert isinstance(failed, ValueError)
    assert "NaN scores" in str(failed)
    for answer in (answers[0], answers[2]):
        assert not isinstance(answer, Exception)
        assert len(answer.items) == 3


@pytest.mark.parametrize("k", [0, -3, True, 2.5])
def test_a_bad_k_is_refused_in_its_own_place_of_a_batch(service: Service, k: object) -> None:
    user = service.timelines.user_ids[0]
    good = RecommendRequest(user_id=user, k=10)
    bad = RecommendRequest(user_id=user, k=k)  # type: ignore[arg-type]
    for requests in ([good, bad], [bad]):
        answers = service.recommend_batch(requests)
        refused = answers[-1]
        assert isinstance(refused, RequestError)
        assert refused.status == 422
        assert "k must be" in refused.detail
    first = service.recommend_batch([good, bad])[0]
    assert not isinstance(first, Exception)
    assert len(first.items) == 10


def test_posts_ingested_together_share_one_transaction(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = service.timelines.user_ids[:2]
    item = next(iter(service.timelines.items))
    calls: list[int] = []
    append = service.store.append

    def counting(events: list[EventRecord]) -> list[bool]:
        calls.append(len(events))
        return append(events)

    monkeypatch.setattr(service.store, "append", counting)
    answers = service.ingest_batch(
        [
            [{"user_id": users[0], "item_id": item, "event_id": "g1"}, {"user_id": ""}],
            [{"user_id": users[1], "item_id": item, "event_id": "g1"}],  # same id: stored once
            [{"user_id": users[1], "item_id": item, "action": "teleport"}],
        ]
    )
    assert calls == [2]  # the valid events of all three posts, in one transaction
    first, second, third = answers
    assert not isinstance(first, RequestError)
    assert (first.accepted, first.rejected) == (1, 1)
    assert [r.status for r in first.results] == ["accepted", "rejected"]
    assert not isinstance(second, RequestError)
    assert (second.accepted, second.duplicates) == (0, 1)
    assert not isinstance(third, RequestError)
    assert third.rejected == 1
    assert "teleport" in (third.results[0].reason or "")


def test_a_store_failure_fails_every_post_of_the_transaction(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(events: list[EventRecord]) -> list[bool]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(service.store, "append", broken)
    answers = service.ingest_batch([[{"user_id": "u", "item_id": "x"}]] * 2)
    assert all(isinstance(a, RequestError) and a.status == 503 for a in answers)
    with pytest.raises(RequestError, match="disk I/O error"):
        service.ingest([{"user_id": "u", "item_id": "x"}])


def test_a_burst_of_explanations_waits_in_its_lane_not_in_the_servers_threads(
    service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Explanations run one at a time; waiting in the server's thread pool they took every
    thread, and the health checks (and similar items) waited behind them for seconds."""
    from behaviorlm.serve import create_app
    from behaviorlm.serve.batching import Lane

    user = str(service.artifact.dataset.users["user_id"][0])
    item = str(service.artifact.dataset.items["item_id"][0])
    answer = service.explain_user(user)
    release = threading.Event()

    def slow_explanation(*args: object, **kwargs: object) -> object:
        release.wait(timeout=60)
        return answer

    monkeypatch.setattr(service, "explain_user", slow_explanation)
    app = create_app(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}")  # no lifespan: set below
    lane = Lane(max_pending=50)
    lane.start()
    app.state.service, app.state.lane = service, lane

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            burst = [
                asyncio.create_task(client.get(f"/v1/users/{user}/explanation"))
                for _ in range(60)  # more than the thread pool's 40 threads
            ]
            await asyncio.sleep(0.5)
            for path in ("/healthz", "/readyz", "/metrics", f"/v1/items/{item}/similar"):
                answered = await asyncio.wait_for(client.get(path), timeout=10)
                assert answered.status_code == 200, (path, answered.text)
            release.set()
            statuses = [r.status_code for r in await asyncio.gather(*burst)]
            assert statuses.count(200) == 50  # beyond max_pending: refused at once
            refused = [r for r in (t.result() for t in burst) if r.status_code == 503]
            assert all(r.headers["Retry-After"] == "1" for r in refused)
        await lane.stop()

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_a_lane_stopped_fails_what_waits_with_overloaded_and_refuses_new_calls() -> None:
    from behaviorlm.serve.batching import Lane

    started, release = threading.Event(), threading.Event()

    def first() -> str:
        started.set()
        release.wait(timeout=30)
        return "done"

    async def scenario() -> None:
        lane = Lane(max_pending=8)
        lane.start()
        running = asyncio.create_task(lane.run(first))
        waiting = asyncio.create_task(lane.run(lambda: "never"))
        await asyncio.to_thread(started.wait, 30)
        stopping = asyncio.create_task(lane.stop())
        await asyncio.sleep(0.1)
        release.set()
        await stopping
        assert await running == "done"  # the call that ran finished
        with pytest.raises(OverloadedError, match="shutting down"):
            await waiting
        with pytest.raises(OverloadedError, match="shutting down"):
            await lane.run(lambda: "late")

    asyncio.run(scenario())

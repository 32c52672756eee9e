"""The service's logic, free of HTTP: ingest events, recommend from live timelines, similar
items, explanations and influence. Routes only parse requests and call these methods.

A :class:`Service` holds the loaded artifact, the event store, the live-timeline builder, a
popularity model (fitted once on the data set's timelines, or the artifact's own ``pop``
model, for new users' timelines the model cannot read)
and the item-similarity index. Ranking always goes through :func:`behaviorlm.recommend`;
attribution and influence through :mod:`behaviorlm.explain`, on the same live timelines.

Explanations put forward hooks on the model's embedding tables for the length of a call
(:mod:`behaviorlm.explain.components`), which would change any forward pass of those modules
running at the same time. So explanations and influence run on :attr:`Service.explainer`, a
copy of the model on the same weights in module objects of its own
(:meth:`behaviorlm.models.neural.NeuralRecommender.shared_copy`), one at a time
(``explain_lock``); recommendations rank with the artifact's model (``model_lock``) and never
wait for an explanation.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from behaviorlm.artifact import META_FILE, Artifact
from behaviorlm.data.errors import DataError
from behaviorlm.explain import (
    Event as HypotheticalEvent,
)
from behaviorlm.explain import (
    Reaching,
    Target,
    explain,
    influence,
    labelled_explanation,
    labelled_influence,
    reaching_event,
)
from behaviorlm.explain.artifacts import (
    check_item_action,
    method_settings,
    read_actions,
    trained_action,
)
from behaviorlm.explain.exposure import SOCIAL_ACTIONS, Exposure, estimate_exposure
from behaviorlm.explain.gradients import MAX_STEPS
from behaviorlm.explain.shapley import context_players, shapley_rows
from behaviorlm.models.base import Recommender
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.recommend import recommend, seen_events
from behaviorlm.schema import F32, SOURCES, Int, Sequences, builtin_name
from behaviorlm.serve.metrics import Metrics
from behaviorlm.serve.own_events import OwnEventCache
from behaviorlm.serve.schemas import (
    MAX_ID,
    Event,
    EventResult,
    EventsResponse,
    ExplanationResponse,
    InfluenceRequest,
    InfluenceResponse,
    Recommendations,
    RecommendedItem,
    SimilarItems,
    TimelineEvent,
    whole_number_id,
)
from behaviorlm.serve.similar import ItemSimilarity
from behaviorlm.serve.store import EventRecord, EventStore
from behaviorlm.serve.timelines import LiveTimelines, Timeline

#: How far ahead of the server's clock an ingested event's timestamp may lie (clock skew);
#: one further ahead is rejected, since it would stay the user's latest event.
MAX_AHEAD_S = 86_400
UNKNOWN_ITEM_NOTE = "unknown item: stored and counted, ignored by the model until a retrain"
UNTRAINED_ACTION_NOTE = (
    "action {action!r} is not in the model's training data: stored and counted, read as an "
    "unknown action (every such action alike) until a retrain"
)

log = logging.getLogger("behaviorlm.serve")


T = TypeVar("T")


def _only(answers: Sequence[T | Exception]) -> T:
    """The answer of a one-request batch, or its error raised."""
    (answer,) = answers
    if isinstance(answer, Exception):
        raise answer
    return answer


class RequestError(Exception):
    """A request the service cannot answer: HTTP status and a one-line explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def model_version(artifact_path: str | Path) -> str:
    """A short digest of the artifact's ``artifact.json`` (changes with every training run)."""
    return hashlib.sha256((Path(artifact_path) / META_FILE).read_bytes()).hexdigest()[:12]


def warm_traces(artifact: Artifact) -> None:
    """Make a traced model's traces now (one batch with padding, one without), from the
    training timelines, so that no request waits for them."""
    model = artifact.model
    assert isinstance(model, NeuralRecommender)
    seqs = artifact.timelines()
    lengths = np.minimum(seqs.lengths, int(model.config.max_len))
    readable = np.flatnonzero(lengths > 0)
    if len(readable) == 0:
        return
    model.hidden(seqs.select(readable[:1]))  # one row: no padding
    longer = readable[lengths[readable] != lengths[readable[0]]]
    if len(longer):  # two lengths: padding
        model.hidden(seqs.select(np.array([readable[0], longer[0]])))


def _echoed_id(raw: Any) -> str | None:
    """The ``event_id`` of a rejected event, to name it in the response: only a string that
    is a valid id (length within :data:`MAX_ID`, encodable as UTF-8; a JSON escape of a lone
    surrogate is not), else None.

    Examples
    --------
    >>> _echoed_id({"event_id": "e1"}), _echoed_id({"event_id": "e\\udfff"}), _echoed_id(7)
    ('e1', None, None)
    """
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID:
        return None
    try:
        event_id.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return event_id


def describe(error: ValidationError) -> str:
    """A pydantic error as one line: ``field: message; field: message`` (no input echoed).

    Examples
    --------
    >>> try:
    ...     Event.model_validate({"user_id": "", "colour": 1})
    ... except ValidationError as exc:
    ...     describe(exc)
    'user_id: String should have at least 1 character; colour: Extra inputs are not permitted'
    """
    parts = []
    for e in error.errors(include_url=False, include_input=False):
        where = ".".join(str(x) for x in e["loc"])
        parts.append(f"{where}: {e['msg']}" if where else e["msg"])
    return "; ".join(parts)


def external_id(value: object, what: str) -> str:
    """An external id as the service keys it: a string, or a whole number read as it prints
    (7 as "7", as ``Dataset`` looks ids up and as a file's ids are read).

    Examples
    --------
    >>> external_id(7, "user_id"), external_id("u1", "user_id")
    ('7', 'u1')
    >>> external_id(7.5, "item_id")
    Traceback (most recent call last):
    ...
    TypeError: item_id is an id string (or a whole number read as one), got 7.5
    """
    value = whole_number_id(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"{what} is an id string (or a whole number read as one), got {value!r}")


def whole_k(k: object) -> int:
    """``k`` checked to be a whole number of at least 1 (numpy's integers too);
    RequestError(422) otherwise.

    Examples
    --------
    >>> whole_k(np.int64(3))
    3
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise RequestError(422, f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


@dataclass(frozen=True, kw_only=True)
class RecommendRequest:
    """One recommendation request for :meth:`Service.recommend_batch`.

    Attributes
    ----------
    user_id : str, optional
        Recommend from this user's live timeline (training history + stored events).
    events : tuple of TimelineEvent, optional
        Or from this timeline alone (nothing is stored); ``user_id`` is then ignored.
    k, exclude_seen, action
        As in :meth:`Service.recommend_user`.

    Examples
    --------
    >>> RecommendRequest(user_id="u1", k=5).exclude_seen
    True
    """

    user_id: str | None = None
    events: tuple[TimelineEvent, ...] | None = None
    k: int = 10
    exclude_seen: bool = True
    action: str | None = None

    def __post_init__(self) -> None:
        if self.user_id is not None:
            object.__setattr__(self, "user_id", external_id(self.user_id, "user_id"))


class Service:
    """Everything a request needs, loaded once (in the app's lifespan).

    With ``traced`` (the default) a neural model that can be traced encodes through
    TorchScript traces (:meth:`behaviorlm.models.neural.NeuralRecommender.trace`): the same
    scores, less CPU for the small batches a service ranks, and no wait for the interpreter
    lock at every operation while the event loop runs; both traces are made here, not on the
    first requests (:func:`warm_traces`). ``traced=False`` keeps the eager pass.

    A process that keeps a Service running outside the app should rank under
    :func:`behaviorlm.serve.without_onednn`, as the app does: oneDNN keeps a compiled kernel
    per input shape, and requests bring new shapes for a long time.

    Examples
    --------
    >>> import tempfile, pathlib, behaviorlm as blm
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> art = blm.train(blm.preprocess(blm.simulate(40, seed=1)), "pop", progress=False,
    ...                 out_dir=folder / "art")
    >>> from behaviorlm.serve.store import open_store
    >>> service = Service(folder / "art", open_store(f"sqlite:///{folder / 'ev.db'}"))
    >>> service.ingest([{"user_id": "new", "item_id": "i1", "event_id": "e1"}]).accepted
    1
    >>> service.recommend_user("new", k=3).live_events
    1
    >>> service.close()
    """

    def __init__(
        self,
        artifact_path: str | Path,
        store: EventStore,
        metrics: Metrics | None = None,
        *,
        traced: bool = True,
    ) -> None:
        self.artifact = Artifact.load(artifact_path)
        model = self.artifact.model
        self.traced = traced and isinstance(model, NeuralRecommender) and model.trace()
        if self.traced:
            warm_traces(self.artifact)
        self.model_name = self.artifact.model.name
        self.model_version = model_version(artifact_path)
        # explanations and influence: the same weights, module objects of their own (hooks)
        self.explainer = model.shared_copy() if isinstance(model, NeuralRecommender) else None
        # the groups a Shapley explanation adds as players: found once, before any request
        # can put hooks on the explainer's tables
        self.context_players = context_players(self.explainer) if self.explainer else []
        self.store = store
        self.metrics = metrics or Metrics()
        self.timelines = LiveTimelines(self.artifact)
        # recommendations read each user's stored events through it: only what came since
        self.own_events = OwnEventCache(self.timelines, store)
        own = self.artifact.dataset.sequences()  # the users' own events: a share counts once
        # the most popular items among those the model predicts (its target actions' events);
        # a popularity model is its own fallback (its window, say, is part of the model)
        model = self.artifact.model
        self.popularity = (
            model
            if isinstance(model, Pop)
            else Pop(PopConfig()).fit(own, self.artifact.target_codes)
        )
        # a search is read by the sequence models that read query words (not mlp, which
        # reads items only, nor a model trained with features.search off)
        self.reads_searches = (
            isinstance(model, NeuralRecommender) and model.module.tokens.features.search
        )
        self.similarity = ItemSimilarity(self.artifact.model, own)
        self.trained_actions = read_actions(self.artifact)  # None: the model reads none
        self.metrics.model.labels(model=self.model_name, version=self.model_version).set(1)
        self.model_lock = threading.Lock()  # recommendations with the artifact's model
        self.explain_lock = threading.Lock()  # explanations and influence with the explainer
        self._exposure: dict[str, Exposure | None] = {}

    def close(self) -> None:
        """Close the event store."""
        self.store.close()

    # ------------------------------------------------------------------ ingestion

    def ingest(self, events: Sequence[Any]) -> EventsResponse:
        """Validate each event, store the valid ones durably (one transaction), report each.

        Raises RequestError(503) when the store cannot take the batch (nothing is stored).
        """
        return _only(self.ingest_batch([events]))

    def ingest_batch(self, posts: Sequence[Sequence[Any]]) -> list[EventsResponse | RequestError]:
        """:meth:`ingest` for several posts at once, stored in one transaction (group commit).

        One ``fsync`` makes every post's accepted events durable; each post gets its own
        response, or RequestError(503) for all of them when the store cannot take the
        transaction (nothing is stored). An ``event_id`` that occurs twice, in one post or in
        two, is stored once and reported as a duplicate the second time. The HTTP service
        sends concurrent posts through this method (:mod:`behaviorlm.serve.batching`).
        """
        now = int(time.time())
        checked = [self._check_post(events, now) for events in posts]
        try:
            stored = self.store.append([r for _, valid in checked for _, r in valid])
        except sqlite3.Error as exc:
            log.error("the event store took no events: %s", exc)
            error = RequestError(503, f"the event store cannot take events now ({exc})")
            return [error] * len(posts)
        answers: list[EventsResponse | RequestError] = []
        first = 0
        for rejected, valid in checked:
            answers.append(self._ingested(rejected, valid, stored[first : first + len(valid)]))
            first += len(valid)
        return answers

    def _check_post(
        self, events: Sequence[Any], now: int
    ) -> tuple[list[EventResult], list[tuple[int, EventRecord]]]:
        """The rejected events of a post (with reasons) and the valid ones as records."""
        rejected: list[EventResult] = []
        valid: list[tuple[int, EventRecord]] = []
        for index, raw in enumerate(events):
            record, reason = self._validate(raw, now)
            if record is None:
                rejected.append(
                    EventResult(
                        index=index,
                        event_id=_echoed_id(raw),
                        status="rejected",
                        reason=reason,
                    )
                )
            else:
                valid.append((index, record))
        return rejected, valid

    def _ingested(
        self,
        rejected: list[EventResult],
        valid: list[tuple[int, EventRecord]],
        stored: list[bool],
    ) -> EventsResponse:
        """The response to one post, given which of its valid events were new."""
        results = list(rejected)
        unknown = untrained = 0
        for (index, record), new in zip(valid, stored, strict=True):
            is_unknown = record.item_id is not None and not self.timelines.item_code(record.item_id)
            is_untrained = (
                self.trained_actions is not None and record.action not in self.trained_actions
            )
            unknown += is_unknown and new
            untrained += is_untrained and new
            notes = ([UNKNOWN_ITEM_NOTE] if is_unknown else []) + (
                [UNTRAINED_ACTION_NOTE.format(action=record.action)] if is_untrained else []
            )
            results.append(
                EventResult(
                    index=index,
                    event_id=record.event_id,
                    status="accepted" if new else "duplicate",
                    note="; ".join(notes) or None,
                    reason=None if new else "an event with this event_id is already stored",
                )
            )
        results.sort(key=lambda r: r.index)
        counts = {s: sum(r.status == s for r in results) for s in ("accepted", "duplicate")}
        n_rejected = len(rejected)
        outcomes = (
            ("rejected", n_rejected),
            ("unknown_item", unknown),
            ("untrained_action", untrained),
        )
        for outcome, n in (*counts.items(), *outcomes):
            if n:
                self.metrics.events.labels(outcome=outcome).inc(n)
        return EventsResponse(
            accepted=counts["accepted"],
            duplicates=counts["duplicate"],
            rejected=n_rejected,
            unknown_items=unknown,
            untrained_actions=untrained,
            results=results,
        )

    def _validate(self, raw: Any, now: int) -> tuple[EventRecord | None, str]:
        """The event as a record, or None and why it is rejected (an :class:`Event` of the
        Python API is taken as it is, a mapping is validated as one)."""
        if isinstance(raw, Event):
            event = raw
        elif not isinstance(raw, dict):
            return None, "an event must be a JSON object"
        else:
            try:
                event = Event.model_validate(raw)
            except ValidationError as exc:
                return None, describe(exc)
        if event.timestamp is not None and event.timestamp > now + MAX_AHEAD_S:
            days = (event.timestamp - now) / 86_400
            return None, (
                f"timestamp {event.timestamp} lies {days:,.1f} days ahead of the server's clock; "
                "at most a day ahead is stored (it would stay the user's latest event)"
            )
        return self.record(event, now)

    def record(self, event: TimelineEvent, now: int) -> tuple[EventRecord | None, str]:
        """Check an event against the model's vocabularies; fill the defaults."""
        if event.item_id is None and event.query is None:
            return None, "an event needs an item_id (or a query for a search)"
        # a built-in name in another case is the built-in one, as data files read
        action = self.artifact.dataset.action_name(
            event.action or ("search" if event.item_id is None else "view")
        )
        if action not in self.timelines.actions:
            return None, self._unknown_action(action)
        source = event.source or "self"
        if source not in self.timelines.sources:
            source = builtin_name(source, SOURCES)
        if source not in self.timelines.sources:
            return None, f"unknown source {source!r}; known: {', '.join(self.timelines.sources)}"
        return (
            EventRecord(
                user_id=event.user_id if isinstance(event, Event) else "",
                item_id=event.item_id,
                timestamp=now if event.timestamp is None else event.timestamp,
                action=action,
                value=event.value,
                query=event.query,
                device=event.device,
                location=event.location,
                source=source,
                event_id=event.event_id if isinstance(event, Event) else None,
            ),
            "",
        )

    # ------------------------------------------------------------------ recommendations

    def recommend_user(
        self, user_id: str, k: int = 10, exclude_seen: bool = True, action: str | None = None
    ) -> Recommendations:
        """Top-``k`` for a user's timeline as it is now (training history + stored events)."""
        request = RecommendRequest(user_id=user_id, k=k, exclude_seen=exclude_seen, action=action)
        return _only(self.recommend_batch([request]))

    def recommend_events(
        self,
        events: Sequence[TimelineEvent | dict[str, Any]],
        k: int = 10,
        exclude_seen: bool = True,
        action: str | None = None,
    ) -> Recommendations:
        """Top-``k`` for a timeline given in the request (events, or mappings validated as
        events); raises RequestError(422) on a bad event, naming it."""
        timeline: list[TimelineEvent] = []
        for index, event in enumerate(events):
            try:
                timeline.append(
                    event
                    if isinstance(event, TimelineEvent)
                    else TimelineEvent.model_validate(event)
                )
            except ValidationError as exc:
                raise RequestError(422, f"event {index}: {describe(exc)}") from exc
        request = RecommendRequest(
            events=tuple(timeline), k=k, exclude_seen=exclude_seen, action=action
        )
        return _only(self.recommend_batch([request]))

    def recommend_batch(
        self, requests: Sequence[RecommendRequest]
    ) -> list[Recommendations | Exception]:
        """Answer many recommendation requests with one batched pass of each model.

        Every timeline is read first (a user's stored events as they are now), then the
        rows the model ranks (:meth:`_by_model`) are ranked together, and the rest (new
        users without a readable event) by popularity. Each request keeps its own ``k``,
        ``exclude_seen`` and ``action``. A request that cannot be answered gets its error in
        its place (a RequestError for a bad request); the others are unaffected. The HTTP
        service sends concurrent requests through this method
        (:class:`behaviorlm.serve.batching.Batcher`).
        """
        now = int(time.time())
        answers: list[Recommendations | Exception | None] = [None] * len(requests)
        prepared: dict[int, tuple[Timeline, Int]] = {}
        for index, request in enumerate(requests):
            try:
                whole_k(request.k)
                timeline = self._timeline(request, now)
                prepared[index] = (timeline, self._excluded(timeline, request))
            except Exception as exc:  # this request's own problem: the others go on
                answers[index] = exc
        modelled = [i for i, (t, _) in prepared.items() if self._by_model(t)]
        cold = sorted(prepared.keys() - set(modelled))

        def rank(model: Recommender, rows: list[int]) -> None:
            """Answer ``rows`` in one pass; where the pass fails, each row alone, so that
            one request's failure (say, a timeline the model scores as NaN) fails only it."""
            try:
                with self._using_model() if model is self.artifact.model else nullcontext():
                    ranked = recommend(
                        model,
                        self.timelines.stack([prepared[i][0].sequences for i in rows]),
                        max(requests[i].k for i in rows),
                        exclude_seen=False,
                        exclude_by_row=[prepared[i][1] for i in rows],
                    )
            except Exception as exc:
                if len(rows) == 1:
                    answers[rows[0]] = exc
                else:
                    for i in rows:
                        rank(model, [i])
                return
            for row, i in enumerate(rows):
                k = requests[i].k
                answers[i] = self._answer(
                    *prepared[i], requests[i], ranked.items[row, :k], ranked.scores[row, :k]
                )

        for model, rows in ((self.artifact.model, modelled), (self.popularity, cold)):
            if rows:
                rank(model, rows)
        done = [a for a in answers if a is not None]
        if len(done) != len(requests):  # every request is either ranked or refused above
            raise RuntimeError(f"{len(requests) - len(done)} requests were left unanswered")
        return done

    def _timeline(self, request: RecommendRequest, now: int) -> Timeline:
        """The request's timeline: the user's live one, or the events given (validated)."""
        if request.events is None:
            user_id = request.user_id or ""
            return self._live(user_id)
        records = []
        for index, event in enumerate(request.events):
            record, reason = self.record(event, now)
            if record is None:
                raise RequestError(422, f"events[{index}]: {reason}")
            records.append(record)
        return self.timelines.for_events(records)

    def _excluded(self, timeline: Timeline, request: RecommendRequest) -> Int:
        """Items never to recommend to this request: its history (``exclude_seen``), or only
        the items it did ``action`` on (``exclude_seen`` with ``action``); the user's own
        events only, as in ``recommend`` (a followee's share is not seen)."""
        history = timeline.sequences
        # checked even without exclude_seen; "seen" = done this action on
        codes = None if request.action is None else [self._action_code(request.action)]
        if not request.exclude_seen:
            return np.zeros(0, dtype=np.int64)
        known = seen_events(history, codes) & (history.items > 0)
        return np.unique(history.items[known])

    def _readable(self, timeline: Timeline) -> bool:
        """Whether the model can rank from this timeline: a sequence model that reads query
        words reads every event (a search by its words), the other models only events on
        items."""
        if self.reads_searches:
            return timeline.length > 0
        return bool((timeline.sequences.items > 0).any())

    def _by_model(self, timeline: Timeline) -> bool:
        """Whether the model ranks this timeline: one with an event the model reads, or a
        user of the training data, whom the model ranks as ``recommend`` and evaluation do,
        from the events it reads, even none (searches alone, for a model that reads no query
        words); the rest, new users without a readable event, get the most popular items."""
        return timeline.known_user or self._readable(timeline)

    def _answer(
        self,
        timeline: Timeline,
        excluded: Int,
        request: RecommendRequest,
        items: Int,
        scores: F32,
    ) -> Recommendations:
        readable, by_model = self._readable(timeline), self._by_model(timeline)
        notes = []
        if not by_model:
            notes.append("no event the model can read: most popular items")
        elif not readable:
            notes.append("no event the model can read: the model's list for a user without one")
        elif timeline.ignored_events:
            notes.append(
                f"{timeline.ignored_events} event(s) on items unknown to the model were ignored"
            )
        if request.action is not None and request.exclude_seen and not len(excluded):
            # the items done with the action, none here: taken, since live events may bring
            # it, but the answer says that nothing was left out
            notes.append(
                f"no event of this timeline has action {request.action!r} on an item: no item "
                "is left out as seen"
            )
        listed = int((items > 0).sum())
        if listed < request.k:  # a short list is not an error, but it says why, as the CLI does
            n_items = self.artifact.dataset.n_items
            seen = "seen items leave no more" if len(excluded) else "no more items"
            if request.k > n_items:  # short whatever else, and shorter for the seen items
                seen = f"the catalogue has {n_items:,} items" + (
                    ", and seen items are left out" if len(excluded) else ""
                )
            notes.append(f"{listed} of {request.k} items: {seen}")
        note = "; ".join(notes) or None
        return Recommendations(
            user_id=request.user_id if request.events is None else None,
            model=self.model_name,
            model_version=self.model_version,
            source="model" if by_model else "popularity",
            known_user=timeline.known_user,
            timeline_events=timeline.length,
            live_events=timeline.live_events,
            ignored_events=timeline.ignored_events,
            note=note,
            items=self._items(items, scores),
        )

    def _items(self, items: Int, scores: F32) -> list[RecommendedItem]:
        keep = items > 0
        rows = self.artifact.item_table(items[keep]) if keep.any() else []
        return [
            RecommendedItem(
                rank=rank,
                item_id=str(row["item_id"]),
                score=float(score),
                title=None if row.get("title") is None else str(row["title"]),
                category=None if row.get("category") is None else str(row["category"]),
            )
            for rank, (row, score) in enumerate(zip(rows, scores[keep], strict=True), start=1)
        ]

    # ------------------------------------------------------------------ similar items

    def similar_items(self, item_id: str, k: int = 10) -> SimilarItems:
        """The ``k`` items most similar to ``item_id``; RequestError(404) for an unknown item,
        422 for a ``k`` that is not a whole number of at least 1."""
        item_id = external_id(item_id, "item_id")
        items, scores = self.similarity.top(self._item_code(item_id), whole_k(k))
        return SimilarItems(
            item_id=item_id, method=self.similarity.method, items=self._items(items, scores)
        )

    # ------------------------------------------------------------------ explanations, influence

    def _using_model(self) -> AbstractContextManager[Any]:
        """Held while the artifact's model runs: ``model_lock`` for a neural model."""
        if isinstance(self.artifact.model, NeuralRecommender):
            return self.model_lock
        return nullcontext()

    def _neural(self, what: str) -> NeuralRecommender:
        """The explainer (the artifact's model on the same weights, hooks of its own), or
        RequestError(422) when the model is not a neural sequence model."""
        model = self.explainer
        if model is None:
            raise RequestError(
                422,
                f"{what} needs a neural sequence model (sasrec, hstu, mlp); this server runs "
                f"{self.model_name!r}",
            )
        return model

    def explain_user(
        self,
        user_id: str,
        item_id: str | None = None,
        *,
        next_action: str | None = None,
        method: str = "occlusion",
        steps: int | None = None,
        max_steps: int = MAX_STEPS,
        samples: int | None = None,
        max_events: int = 1000,
        max_shapley_rows: int = 4096,
        without_target_events: bool = False,
    ) -> ExplanationResponse:
        """Attribution of an item's score (default: the top recommendation) or of a next
        action's score to the events of the user's timeline as it is now (training history
        plus every stored event) and to the feature groups; ``without_target_events`` sets
        aside the user's own events on the target item first (:func:`explain`).

        Raises RequestError: 422 for a model without explanations, an unknown action, a
        next action the model never read or whose action head was not trained, a model
        window over ``max_events`` events or a target the method cannot explain; 404
        for an unknown item or a timeline without an event the model reads; 422 also for
        ``steps`` (integrated gradients, default 32) or ``samples`` (Shapley values, default
        64) given with another method.
        """
        net = self._neural("an explanation")
        user_id = external_id(user_id, "user_id")
        item_id = None if item_id is None else external_id(item_id, "item_id")
        try:
            steps, samples = method_settings(method, steps, samples)
        except ValueError as exc:
            raise RequestError(422, str(exc)) from exc
        if item_id is not None and next_action is not None:
            raise RequestError(422, "name an item or a next_action to explain, not both")
        target: Target | None = None
        if item_id is not None:
            target = Target.item(self._item_code(item_id))
        elif next_action is not None:
            target = Target.action(self._trained_action(next_action, head=True))
        # from the cached codes (only the new events read); the records of the events shown
        # are read by their storage positions
        timeline = self._live(user_id)
        if timeline.length == 0:
            raise RequestError(
                404, f"user {user_id!r} has no event the model can read: nothing to explain"
            )
        read = min(timeline.length, int(net.config.max_len))
        if read > max_events:
            raise RequestError(
                422,
                f"the model reads {read:,} events of this timeline: explanations are limited "
                f"to {max_events:,}",
            )
        # at most, for the Shapley values of the events and the context groups
        rows = shapley_rows(read + len(self.context_players), samples)
        if method == "shapley" and rows > max_shapley_rows:
            raise RequestError(
                422,
                f"shapley with {samples} samples over {read} events scores {rows:,} timelines: "
                f"the limit is {max_shapley_rows:,}; ask for fewer samples",
            )
        try:
            with self.explain_lock:
                explanation = explain(
                    net,
                    timeline.sequences,
                    target,
                    method,
                    steps=steps,
                    max_steps=max(steps, max_steps),
                    samples=samples,
                    without_target_events=without_target_events,
                )
        except (ValueError, DataError) as exc:
            raise RequestError(422, str(exc)) from exc
        data = labelled_explanation(self.artifact, explanation)
        labelled = [*data["events"], *data["set_aside"]]
        shown = [int(row["event_id"]) - self.timelines.first_live_event for row in labelled]
        records = self._live_records(timeline, [k for k in shown if 0 <= k < timeline.live_events])
        for row, k in zip(labelled, shown, strict=True):
            row["live"] = 0 <= k < timeline.live_events
            if row["live"]:
                row["query"] = records[k].query
                row["client_event_id"] = records[k].event_id
        return ExplanationResponse(
            user_id=user_id,
            model_version=self.model_version,
            timeline_events=timeline.length,
            live_events=timeline.live_events,
            ignored_events=timeline.ignored_events,
            **data,
        )

    def _live_records(self, timeline: Timeline, live: Sequence[int]) -> dict[int, EventRecord]:
        """The records of the timeline's ``live`` events (their places among its live
        events), read by their storage positions."""
        positions = timeline.positions[list(live)]
        if not positions.all():
            raise RuntimeError("a live event without its storage position")
        return dict(zip(live, self.store.events_at(positions.tolist()), strict=True))

    def influence(self, request: InfluenceRequest) -> InfluenceResponse:
        """What the user doing ``request.action`` on ``request.item_id`` now would change: their
        next-item distribution (on their timeline as it is now) and, for a share or like (or
        ``reach`` true), the uplift of each follower if they see it (on the followers'
        timelines as they are now), the user's exposure rate and the predicted reach.

        Raises RequestError: 422 for a model without influence, an unknown action or one the
        model never read, or a time before the timeline's last event; 404 for an unknown item.
        """
        net = self._neural("influence")
        # Purchase is purchase, as in events
        request = request.model_copy(
            update={"action": self.artifact.dataset.action_name(request.action)}
        )
        named = [request.item_id, *request.items]
        items = [self.timelines.item_code(i) for i in named]
        unknown = [i for i, code in zip(named, items, strict=True) if not code]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise RequestError(404, f"unknown item(s) {shown}: the model was not trained on them")
        try:
            check_item_action(request.action)
        except ValueError as exc:
            raise RequestError(422, str(exc)) from exc
        code = self._trained_action(request.action)
        event = HypotheticalEvent(item=items[0], action=code, timestamp=request.timestamp)
        timeline = self._live(request.user_id)
        reach = request.action in SOCIAL_ACTIONS if request.reach is None else request.reach
        try:
            # how the act reaches a follower's timeline (a view, or the followee's act itself)
            reaching = reaching_event(self.artifact, request.action) if reach else None
            # learned once per action, outside the lock that other explanations wait for
            seen = self._exposure_of(request.user_id, reaching, request.action)
            with self.explain_lock:
                followers = None if reaching is None else self._followers(request.user_id)
                if reaching is not None and followers:
                    reaching.check('"reach": false')  # before any work
                result = influence(net, timeline.sequences, event, k=request.k, items=items[1:])
                if reaching is not None and followers is not None:
                    predicted = reaching.reach(net, followers, items[0], exposure=seen)
                    result = replace(result, reach=predicted)
        except (ValueError, DataError) as exc:
            raise RequestError(422, str(exc)) from exc
        data = labelled_influence(self.artifact, result)
        if not math.isfinite(data["kl"]):
            data["kl"] = None
        return InfluenceResponse(
            user_id=request.user_id,
            model_version=self.model_version,
            timeline_events=timeline.length,
            live_events=timeline.live_events,
            **data,
        )

    def _exposure_of(self, user_id: str, reaching: Reaching | None, action: str) -> float | None:
        """The factor of the user's summed follower uplifts: the chance that a follower sees
        their ``action`` (learned from the training log once per action; the pooled rate for a
        new user), relative to the pooled rate where the model reads followees' acts; None
        where the log cannot tell or there is no reach."""
        if reaching is None:
            return None
        if action not in self._exposure:
            self._exposure[action] = estimate_exposure(self.artifact.dataset, action)
        exposure = reaching.weights(self._exposure[action])
        return None if exposure is None else exposure.of(self.timelines.users.get(user_id, 0))

    def _followers(self, user_id: str) -> Sequences:
        """The live timelines of the user's followers in the data set's follow graph."""
        user = self.timelines.users.get(user_id, 0)
        follows = self.artifact.dataset.follows
        followers = (
            follows.filter(follows["followee"] == user)["follower"].to_list() if user else []
        )
        ids = [self.timelines.user_ids[int(f) - 1] for f in followers]
        stored: dict[str, list[EventRecord]] = {}  # one store read per user, however many ask

        def events_of(user: str) -> list[EventRecord]:
            if user not in stored:
                stored[user] = self.store.user_events(user)
            return stored[user]

        return self.timelines.for_users(ids, events_of)

    def _live(self, user_id: str) -> Timeline:
        """The user's live timeline: training history and accepted events, and the accepted
        events of their followees where the model reads them, from :attr:`own_events` (its
        live events carry their storage positions instead of their records):
        recommendations, explanations and the user's own timeline in influence."""
        own = self.own_events.get(user_id)
        # a user who follows very many accounts leaves the cache to the users asking
        many = len(self.timelines.followees_of(user_id)) > self.own_events.max_users // 2
        coded = partial(self.own_events.followee_events, keep=not many)
        return self.timelines.for_user_coded(user_id, own, coded, self._stored)

    def _stored(self, user_id: str) -> tuple[list[EventRecord], list[int]]:
        """A user's stored events, whole, with their storage positions."""
        return self.store.user_events_after(user_id, 0)

    def _item_code(self, item_id: str) -> int:
        """Internal id of a known item; RequestError(404) for an item the model never saw."""
        item = self.timelines.item_code(item_id)
        if not item:
            raise RequestError(404, f"unknown item {item_id!r}: the model was not trained on it")
        return item

    def _action_code(self, action: str) -> int:
        """Code of a known action (``Purchase`` is ``purchase``: ``Dataset.action_name``);
        RequestError(422) naming the known ones otherwise."""
        code = self.timelines.actions.get(self.artifact.dataset.action_name(action))
        if code is None:
            raise RequestError(422, self._unknown_action(action))
        return code

    def _trained_action(self, action: str, *, head: bool = False) -> int:
        """Code of an action of the data set that the model read (and, with ``head``, can
        predict: :func:`behaviorlm.explain.artifacts.trained_action`); RequestError(422)
        otherwise."""
        self._action_code(action)  # an unknown action is named with the known ones
        try:
            return trained_action(self.artifact, action, head=head)
        except ValueError as exc:
            raise RequestError(422, str(exc)) from exc

    def _unknown_action(self, action: str) -> str:
        return f"unknown action {action!r}; known: {', '.join(self.timelines.actions)}"

    def status(self) -> dict[str, Any]:
        """Readiness facts: the model and the number of stored events (touches the store)."""
        return {
            "status": "ready",
            "model": self.model_name,
            "model_version": self.model_version,
            "events_stored": self.store.count(),
        }

"""Request and response bodies of the HTTP API (pydantic v2; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Longest external id (user, item, event) or context value (device, location, source, action).
MAX_ID = 256
#: Longest search query.
MAX_QUERY = 1000
#: Latest accepted timestamp (seconds since 1970, the year 5000 or so): keeps sums exact.
MAX_TIMESTAMP = 100_000_000_000


class TimelineEvent(BaseModel):
    """One event of a timeline: what a user did to which item (or which search), and when.

    Only one of ``item_id`` / ``query`` is required. ``action`` defaults to ``search`` for an
    event with a query and no item, else ``view``; ``timestamp`` (seconds since 1970)
    defaults to the time the server received it.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    item_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    timestamp: int | None = Field(default=None, ge=0, le=MAX_TIMESTAMP)
    action: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    value: float | None = None
    query: str | None = Field(default=None, min_length=1, max_length=MAX_QUERY)
    device: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    location: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    source: str | None = Field(default=None, min_length=1, max_length=MAX_ID)


class Event(TimelineEvent):
    """An event for ``POST /v1/events``: a timeline event plus its user and an optional
    client ``event_id`` (a retry with the same id is not stored twice)."""

    event_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    user_id: str = Field(min_length=1, max_length=MAX_ID)


class EventBatch(BaseModel):
    """A batch of events; each is validated on its own against the ``Event`` schema."""

    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(
        description="events in the `Event` schema; a malformed one is rejected alone"
    )


class EventResult(BaseModel):
    """What happened to one event of a batch (``index`` = its position in the batch)."""

    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = Field(default=None, description="why the event was rejected")
    note: str | None = Field(default=None, description="e.g. the item is unknown to the model")


class EventsResponse(BaseModel):
    """Counts and per-event results; every accepted event is on disk."""

    accepted: int
    duplicates: int
    rejected: int
    unknown_items: int = Field(description="accepted events whose item the model does not know")
    results: list[EventResult]


class RecommendedItem(BaseModel):
    """One entry of a ranked list, with the item's metadata."""

    rank: int
    item_id: str
    score: float
    title: str | None = None
    category: str | None = None


class Recommendations(BaseModel):
    """A top-K list and how it was made."""

    user_id: str | None = Field(description="null for a timeline given in the request")
    model: str
    model_version: str
    source: Literal["model", "popularity"] = Field(
        description="popularity when the timeline has no event the model can read"
    )
    known_user: bool = Field(description="the user occurs in the training data")
    timeline_events: int = Field(description="events of the timeline the model read")
    live_events: int = Field(description="of these, events ingested since training")
    ignored_events: int = Field(description="events on items unknown to the model")
    note: str | None = None
    items: list[RecommendedItem]


class TimelineRequest(BaseModel):
    """Recommendations for a timeline given in the request (anonymous or new users)."""

    model_config = ConfigDict(extra="forbid")

    events: list[TimelineEvent] = Field(default_factory=list)
    k: int = Field(default=10, ge=1)
    exclude_seen: bool = True
    action: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID,
        description="with exclude_seen, only items the timeline did this action on are excluded",
    )


class SimilarItems(BaseModel):
    """Items most similar to one item."""

    item_id: str
    method: Literal["embedding_cosine", "cooccurrence_cosine"]
    items: list[RecommendedItem]


class Status(BaseModel):
    """Liveness or readiness."""

    status: str
    model: str | None = None
    model_version: str | None = None
    events_stored: int | None = None


class Problem(BaseModel):
    """An error: what went wrong and how to fix it."""

    detail: str | list[dict[str, Any]]

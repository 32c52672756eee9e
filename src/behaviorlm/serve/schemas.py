"""Request and response bodies of the HTTP API (pydantic v2; they make the OpenAPI schema)."""

from __future__ import annotations

import numbers
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)
from pydantic.fields import FieldInfo

from behaviorlm.schema import MAX_VALUE

#: Longest external id (user, item, event) or context value (device, location, source, action).
MAX_ID = 256
#: Longest search query.
MAX_QUERY = 1000
#: Latest accepted timestamp (seconds since 1970, the year 5000 or so): keeps sums exact.
MAX_TIMESTAMP = 100_000_000_000


def _not_a_boolean(value: Any) -> Any:
    """Refuse ``true`` and ``false`` where a number is expected (pydantic reads them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("a number is expected, not a boolean")
    return value


#: A number field that refuses booleans.
NotBool = BeforeValidator(_not_a_boolean)


def whole_number_id(value: Any) -> Any:
    """A whole number given for an id is that id as it prints (7 is "7"), as data files read
    ids; anything else as it is (a boolean or a fraction is no id: the caller refuses it).

    Examples
    --------
    >>> whole_number_id(7), whole_number_id("u1"), whole_number_id(7.5), whole_number_id(True)
    ('7', 'u1', 7.5, True)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    return value


#: An id field (user, item, event) that takes a whole number as its text.
WholeId = BeforeValidator(whole_number_id)


def _float32(value: float | None) -> float | None:
    """Refuse a number that float32 cannot hold (it would be stored as infinity)."""
    if value is not None and abs(value) > MAX_VALUE:
        raise ValueError(f"a value of at most {MAX_VALUE:.3g} in size is expected (float32)")
    return value


#: A number field that float32 holds.
Float32 = AfterValidator(_float32)


M = TypeVar("M", bound=BaseModel)


def bounded(model: type[M], **bounds: FieldInfo) -> type[M]:
    """``model`` with further constraints on some fields, for limits known when the app is
    made (:class:`behaviorlm.serve.settings.Limits`): a subclass of the same name whose field
    ``name`` also takes ``bounds[name]``, so the OpenAPI schema shows them (``maxItems``,
    ``maximum``) and a list over its length is refused before its items are validated.

    Examples
    --------
    >>> Small = bounded(TimelineRequest, k=Field(le=50))
    >>> Small.model_json_schema()["properties"]["k"]["maximum"], Small.__name__
    (50, 'TimelineRequest')
    """
    fields: dict[str, Any] = {}
    for name, bound in bounds.items():
        info = model.model_fields[name]
        fields[name] = (Annotated[info.annotation, bound], info)
    return create_model(
        model.__name__,
        __base__=model,
        __doc__=model.__doc__,
        __module__=model.__module__,
        **fields,
    )


class TimelineEvent(BaseModel):
    """One event of a timeline: what a user did to which item (or which search), and when.

    Only one of ``item_id`` / ``query`` is required. ``action`` defaults to ``search`` for an
    event with a query and no item, else ``view``; an action or source that spells a built-in
    name in another case (``Purchase``) is that name, as in data files; ``timestamp`` (seconds
    since 1970) defaults to the time the server received it.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    item_id: Annotated[str | None, WholeId] = Field(default=None, min_length=1, max_length=MAX_ID)
    timestamp: Annotated[int | None, NotBool] = Field(default=None, ge=0, le=MAX_TIMESTAMP)
    action: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    value: Annotated[float | None, NotBool, Float32] = Field(
        default=None,
        description="e.g. a rating or an amount; stored as float32, so at most about 3.4e38 "
        "in size",
        json_schema_extra={"minimum": -MAX_VALUE, "maximum": MAX_VALUE},
    )
    query: str | None = Field(default=None, min_length=1, max_length=MAX_QUERY)
    device: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    location: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    source: str | None = Field(default=None, min_length=1, max_length=MAX_ID)


class Event(TimelineEvent):
    """An event for ``POST /v1/events``: a timeline event plus its user and an optional
    client ``event_id`` (a retry with the same id is not stored twice)."""

    event_id: Annotated[str | None, WholeId] = Field(default=None, min_length=1, max_length=MAX_ID)
    user_id: Annotated[str, WholeId] = Field(min_length=1, max_length=MAX_ID)


class EventBatch(BaseModel):
    """A batch of events; each is validated on its own against the ``Event`` schema."""

    model_config = ConfigDict(extra="forbid")

    # validated one at a time by the service, so a malformed event is rejected alone; the
    # OpenAPI schema shows the Event schema they must meet
    events: list[Annotated[Any, WithJsonSchema(Event.model_json_schema())]] = Field(
        description="events in the `Event` schema; a malformed one is rejected alone"
    )


class EventResult(BaseModel):
    """What happened to one event of a batch (``index`` = its position in the batch)."""

    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = Field(default=None, description="why the event was rejected")
    note: str | None = Field(
        default=None, description="e.g. the item or the action is unknown to the model"
    )


class EventsResponse(BaseModel):
    """Counts and per-event results; every accepted event is on disk."""

    accepted: int
    duplicates: int
    rejected: int
    unknown_items: int = Field(description="accepted events whose item the model does not know")
    untrained_actions: int = Field(
        default=0,
        description="accepted events whose action the model's training data did not have",
    )
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
        description="popularity for a user unknown to the training data whose timeline has "
        "no event the model can read"
    )
    known_user: bool = Field(description="the user occurs in the training data")
    timeline_events: int = Field(
        description="events of the timeline built for the model (on known items, and "
        "searches; a model that reads no query words ranks from those on items alone, and "
        "answers a new user who has none with popularity); a sequence model looks at the most "
        "recent max_len of them"
    )
    live_events: int = Field(
        description="of these, events not from the training data: ingested since training, "
        "or given in the request"
    )
    ignored_events: int = Field(description="events on items unknown to the model")
    note: str | None = Field(
        default=None,
        description="why the list is what it is, where that needs saying: fewer than k items "
        "(and why), popularity for a new user, events on unknown items ignored",
    )
    items: list[RecommendedItem]


class TimelineRequest(BaseModel):
    """Recommendations for a timeline given in the request (anonymous or new users)."""

    model_config = ConfigDict(extra="forbid")

    events: list[TimelineEvent] = Field(default_factory=list)
    k: int = Field(default=10, ge=1, strict=True)
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


#: Answers any route under /v1 may give (from the dependencies and the batchers).
V1_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": "the model is not loaded yet, or too many requests are waiting, or the "
        "service is shutting down (with Retry-After)",
    },
}
#: Answers of any route that reads a JSON body (from the middleware and the error handlers).
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        # a body that is not UTF-8 JSON is a validation error (422, type json_invalid), as
        # FastAPI answers it
        "description": "Content-Length is not a number",
    },
    413: {"model": Problem, "description": "the body, or its list of events, over the limit"},
    415: {"model": Problem, "description": "the body is not application/json"},
}


# ---------------------------------------------------------------------------- explanations


class ExplainedTarget(BaseModel):
    """The explained output: an item's or an action's next-event score."""

    kind: Literal["item", "action"]
    id: int = Field(description="internal item id or action code")
    item_id: str | None = None
    title: str | None = None
    action_name: str | None = None


class ExplainedEvent(BaseModel):
    """One event of the user's timeline: its influence on the target where the model reads
    it; none for the events set aside (``set_aside``)."""

    index: int = Field(description="position in the user's timeline (0 = oldest event)")
    event_id: int = Field(
        description="internal event id; a live event's counts on from the data set's last, by "
        "its place among this timeline's live events (so it repeats across users: "
        "client_event_id names a live event)"
    )
    item: int
    action: int
    timestamp: int
    kind: str = Field(description="history, search or social")
    logit: float | None = Field(default=None, description="influence on the target's logit")
    probability: float | None = Field(default=None, description="influence on its probability")
    attention: float | None = Field(default=None, description="attention weight (attention)")
    components: dict[str, float] = Field(
        default_factory=dict, description="integrated gradients: the logit split by group"
    )
    item_id: str | None = None
    title: str | None = None
    action_name: str = ""
    query: str | None = None
    followee_id: str | None = Field(
        default=None, description="the followed user whose event this is (a followee's share)"
    )
    live: bool = Field(default=False, description="the event was ingested since training")
    client_event_id: str | None = Field(
        default=None, description="the event_id a client posted the event with (live events)"
    )


class ExplainedGroup(BaseModel):
    """A feature group's influence, by ablation and by summed token attributions."""

    group: str
    ablation_logit: float | None
    ablation_probability: float | None
    attributed_logit: float | None = None
    attributed_probability: float | None = None
    single_value: bool = Field(
        default=False,
        description="the training data had one value of this group (e.g. every source "
        "'self'): the ablation removes a learned constant, not information",
    )


class ExplanationResponse(BaseModel):
    """Why the model scores a target as it does for the user's timeline as it is now."""

    user_id: str
    model: str
    model_version: str
    method: Literal["occlusion", "integrated_gradients", "shapley", "attention"]
    target: ExplainedTarget
    logit: float | None
    probability: float | None
    events: list[ExplainedEvent] = Field(description="the events the model reads, oldest first")
    groups: list[ExplainedGroup]
    baseline_logit: float | None = Field(
        default=None,
        description="integrated gradients: the score at zero tokens (event values sum to "
        "logit minus this); shapley: the score with every explained event deleted and "
        "location and device removed (event values and those groups' attributed values sum "
        "to logit minus this)",
    )
    baseline_probability: float | None = None
    steps: int | None = Field(
        default=None,
        description="integrated gradients: quadrature points used along the path (doubled "
        "from the asked number while completeness missed by over 1 %)",
    )
    unread: int = Field(description="older events beyond the model's window (no influence)")
    set_aside: list[ExplainedEvent] = Field(
        default_factory=list,
        description="the user's own events on the target item, set aside before explaining "
        "(without_target_events; no influence values)",
    )
    timeline_events: int = Field(description="events of the user's timeline the model can read")
    live_events: int = Field(description="of these, events ingested since training")
    ignored_events: int = Field(description="events on items unknown to the model")
    note: str = ""


# ---------------------------------------------------------------------------- influence


class InfluenceRequest(BaseModel):
    """A hypothetical event: what would ``user_id`` doing ``action`` on ``item_id`` now change?"""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[str, WholeId] = Field(min_length=1, max_length=MAX_ID)
    item_id: Annotated[str, WholeId] = Field(min_length=1, max_length=MAX_ID)
    action: str = Field(
        default="share",
        min_length=1,
        max_length=MAX_ID,
        description="an action the model's training data never had is refused (422)",
    )
    timestamp: Annotated[int | None, NotBool] = Field(
        default=None,
        ge=0,
        le=MAX_TIMESTAMP,
        description="default: the last event's time; an earlier time is refused (422)",
    )
    items: list[Annotated[str, WholeId, Field(min_length=1, max_length=MAX_ID)]] = Field(
        default_factory=list, description="further items whose probability change to report"
    )
    k: int = Field(default=10, ge=1, strict=True, description="length of the top-K lists compared")
    reach: bool | None = Field(
        default=None,
        description="social reach over the user's followers; default: for a share or like",
    )


class InfluenceItem(BaseModel):
    """An item of a top-K list."""

    item: int
    item_id: str | None
    title: str | None = None
    category: str | None = None


class InfluenceEvent(BaseModel):
    """The appended event."""

    item: int
    action: int
    source: int
    timestamp: int | None
    item_id: str | None
    title: str | None = None
    category: str | None = None
    action_name: str


class ItemProbability(InfluenceItem):
    """Probability of one item being next, before and after the event."""

    before: float
    after: float
    change: float


class FollowerUplift(BaseModel):
    """A follower's rise in the probability of the item as their next item, if they see it."""

    user: int
    user_id: str
    uplift: float


class ReachResult(BaseModel):
    """Social reach: per-follower uplift (given that they see it), the user's exposure rate
    and the predicted reach, exposure times each uplift, held to [-1, 1], summed (expected extra
    engagements)."""

    item: int
    exposure: float | None = Field(
        description=(
            "weight of the summed uplifts, learned from the training log: the chance that a "
            "follower sees the act, or with exposure_relative that chance over the average "
            "act's (1: seen as often as the average act); null when the log cannot tell "
            "(reach then counts every follower)"
        )
    )
    exposure_relative: bool = Field(
        description="exposure is relative to the average act (followee_event with an exposure)"
    )
    followee_event: bool = Field(
        description=(
            "the act entered each follower's timeline as the followee's act itself (the model "
            "reads followees' acts), so each uplift already averages over whether the follower "
            "sees it; false: as the follower's view of the item, an uplift given that they see it"
        )
    )
    reach: float
    followers: list[FollowerUplift]


class InfluenceResponse(BaseModel):
    """How the hypothetical event changes the user's next-item distribution (and followers')."""

    user_id: str
    model: str
    model_version: str
    event: InfluenceEvent
    kl: float | None = Field(
        description="KL(after || before) of the next-item distribution (nats); null if infinite"
    )
    before: list[InfluenceItem]
    after: list[InfluenceItem]
    entering: list[InfluenceItem]
    leaving: list[InfluenceItem]
    items: list[ItemProbability]
    reach: ReachResult | None
    timeline_events: int = Field(description="events of the user's timeline the model read")
    live_events: int = Field(description="of these, events ingested since training")

"""Forward-looking influence: what would one new behaviour change?

:func:`influence` appends a hypothetical event (user U purchases or shares item I, now) to
U's timeline and compares U's next-item distribution before and after: the top-K items
entering and leaving the recommendations (:func:`behaviorlm.recommend.recommend`), the
KL divergence ``KL(after || before)`` of the softmax over the catalogue, and the probability
change of named items. The social reach of a share lives in :mod:`behaviorlm.explain.reach`.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from behaviorlm.data.feed import as_followee_events
from behaviorlm.explain.target import neural
from behaviorlm.models.base import Recommender
from behaviorlm.recommend import in_catalogue, recommend
from behaviorlm.schema import F32, FOLLOWEE, SELF_SOURCE, Int, Sequences

if TYPE_CHECKING:
    from behaviorlm.explain.reach import Reach


@dataclass(frozen=True)
class Event:
    """A hypothetical event to append to a timeline.

    Attributes
    ----------
    item : int
        Internal item id.
    action : int
        Action code (the data set's vocabulary, e.g. ``dataset.action_code("share")``).
    source : int, optional
        Source code; not given: the user's own behaviour (``self``). A followee's event
        names the source the model reads followees' events with
        (:func:`behaviorlm.data.feed.followee_source` of the data set).
    timestamp : int, optional
        Event time; default: the time of the timeline's last event ("now", in the same
        session). Device and location are those of the last event.
    followee : int
        Not 0: the event is a followee's act in the user's timeline (``behaviorlm.data.feed``),
        by this internal user id (-1: not named), with no device or location of the user's,
        as the model reads followees' events; 0: the user's own event.

    Examples
    --------
    >>> Event(item=3, action=8).source
    1
    """

    item: int
    action: int
    source: int | None = None
    timestamp: int | None = None
    followee: int = 0

    def __post_init__(self) -> None:
        for name in ("item", "action", "source", "timestamp", "followee"):
            value = getattr(self, name)
            if value is not None:  # numpy's integers too, as plain ints (JSON writes them)
                object.__setattr__(self, name, operator.index(value))
        if self.source is not None:
            return
        if self.followee:
            raise ValueError(
                "a followee's event needs the source code the model reads followees' events "
                "with: source=behaviorlm.data.feed.followee_source(dataset)"
            )
        object.__setattr__(self, "source", SELF_SOURCE)


def source_of(event: Event) -> int:
    """The event's source code (set by :class:`Event` when not given)."""
    assert event.source is not None
    return event.source


def append_event(histories: Sequences, event: Event) -> Sequences:
    """Every row of ``histories`` with ``event`` appended as its most recent event.

    The new event has ``event_id`` -1, no value and no query words. Its device and location
    are those of the row's last event of its user's own (a followee's event carries none;
    0 where the row has no own event), as the user acts from where they last did; a
    followee's event (``event.followee``) has none. Its time is the row's last event's,
    unless given; a time before a row's last event is refused (the event comes next).

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2], []], n_items=3)
    >>> after = append_event(s, Event(item=3, action=1))
    >>> after.row(0).items.tolist(), after.row(1).items.tolist(), after.timestamps.tolist()
    ([1, 2, 3], [3], [0, 1, 1, 0])
    """
    if event.followee and FOLLOWEE not in histories.extra:
        zeros = np.zeros(len(histories.items), dtype=np.int64)
        histories = replace(histories, extra={**histories.extra, FOLLOWEE: zeros})
    rows = len(histories)
    lengths = histories.lengths
    offsets = histories.offsets + np.arange(rows + 1, dtype=np.int64)
    new = offsets[1:] - 1  # (R,) flat position of each appended event
    old = np.arange(len(histories.items), dtype=np.int64) + histories.row_of_event
    has_last = lengths > 0
    last = np.maximum(histories.offsets[1:] - 1, 0)  # (R,) last event (valid where has_last)
    own = np.where(~histories.is_followee_event(), np.arange(len(histories.items)), -1)
    last_own = np.full(rows, -1, dtype=np.int64)  # (R,) the row's last own event, or -1
    if len(own):
        last_own[has_last] = np.maximum.reduceat(own, histories.offsets[:-1][has_last])

    def taken(values: Int, at: Int, valid: np.ndarray) -> Int:
        """``values`` at the events ``at`` of each row, 0 where not ``valid``."""
        if len(values) == 0:
            return np.zeros(rows, dtype=np.int64)
        return np.where(valid, values[np.maximum(at, 0)], 0)

    latest = taken(histories.timestamps, last, has_last)
    if event.timestamp is not None and has_last.any() and event.timestamp < latest.max():
        raise ValueError(
            f"the event's time {event.timestamp} is before the timeline's last event "
            f"({int(latest.max())}): a hypothetical event comes next; leave its time out "
            "for now"
        )
    when = latest if event.timestamp is None else np.full(rows, event.timestamp, dtype=np.int64)
    added: dict[str, np.ndarray] = {
        "items": np.full(rows, event.item, dtype=np.int64),
        "actions": np.full(rows, event.action, dtype=np.int64),
        "timestamps": when,
        "event_ids": np.full(rows, -1, dtype=np.int64),
        "values": np.full(rows, np.nan, dtype=np.float32),
        "devices": taken(histories.devices, last_own, last_own >= 0),
        "locations": taken(histories.locations, last_own, last_own >= 0),
        "sources": np.full(rows, source_of(event), dtype=np.int64),
    }
    if event.followee:
        added = as_followee_events(added, np.full(rows, event.followee), source_of(event))
    arrays: dict[str, Any] = {}
    for name, values in histories.per_event().items():
        extra = np.zeros((len(values) + rows, *values.shape[1:]), dtype=values.dtype)
        extra[old] = values
        extra[new] = added.get(name, 0)
        arrays[name] = extra
    extras = {k: arrays.pop(k) for k in list(histories.extra)}
    return Sequences(
        offsets=offsets,
        users=histories.users,
        n_items=histories.n_items,
        extra=extras,
        **arrays,
    )


def log_softmax(scores: F32) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    s = np.asarray(scores, dtype=np.float64)
    top = s.max(axis=-1, keepdims=True)
    out: np.ndarray = s - top - np.log(np.exp(s - top).sum(axis=-1, keepdims=True))
    return out


@dataclass(frozen=True)
class ItemChange:
    """Probability of one item being next, before and after the event.

    Examples
    --------
    >>> ItemChange(item=3, before=0.1, after=0.25).change
    0.15
    """

    item: int
    before: float
    after: float

    @property
    def change(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class Influence:
    """How one hypothetical event changes a user's next-item distribution.

    Attributes
    ----------
    event : Event
        The appended event, with the time it was given (the timeline's last event's when
        none was named; none for an empty timeline).
    kl : float
        ``KL(after || before)`` of the next-item softmax over the catalogue (nats, >= 0).
    before, after : tuple of int
        Top-K recommendations before and after (with ``exclude_seen``, both without the
        items seen after the event: the event's item is in neither list).
    entering, leaving : tuple of int
        Items in ``after`` but not ``before``, and the reverse.
    items : tuple of ItemChange
        The event's item and any named items.
    reach : Reach, optional
        Social reach of the event over the user's followers, where computed.

    Examples
    --------
    >>> out = Influence(model="sasrec", event=Event(item=3, action=1), kl=0.1, before=(1, 2),
    ...                 after=(2, 4), entering=(4,), leaving=(1,),
    ...                 items=(ItemChange(3, before=0.1, after=0.3),))
    >>> round(out.items[0].change, 3), out.to_dict()["entering"]  # made by influence()
    (0.2, (4,))
    """

    model: str
    event: Event
    kl: float
    before: tuple[int, ...]
    after: tuple[int, ...]
    entering: tuple[int, ...]
    leaving: tuple[int, ...]
    items: tuple[ItemChange, ...]
    reach: Reach | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        out = {k: v for k, v in asdict(self).items() if k not in ("items", "reach")}
        out["items"] = [{**asdict(c), "change": c.change} for c in self.items]
        out["reach"] = None if self.reach is None else self.reach.to_dict()
        return out


def influence(
    model: Recommender,
    history: Sequences,
    event: Event,
    *,
    k: int = 10,
    items: tuple[int, ...] | list[int] = (),
    exclude_seen: bool = True,
) -> Influence:
    """Append ``event`` to one timeline and report the change of the next-item distribution.

    Parameters
    ----------
    model : Recommender
        A fitted neural sequence model.
    history : Sequences
        One timeline (internal ids).
    event : Event
        The hypothetical event.
    k : int
        Length of the top-K lists compared.
    items : sequence of int
        Further items whose probability change to report (the event's item always is).
    exclude_seen : bool
        Passed to :func:`behaviorlm.recommend.recommend` for the top-K lists.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3, 4]], n_items=4))
    >>> out = influence(model, Sequences.from_lists([[1, 2]], n_items=4), Event(item=3, action=1))
    >>> out.kl >= 0, [c.item for c in out.items]
    (True, [3])
    """
    net = neural(model)
    if len(history) != 1:
        raise ValueError(f"influence takes one timeline, got {len(history)} rows")
    in_catalogue(history, net)
    named = list(dict.fromkeys([event.item, *items]))
    for item in named:
        if not 1 <= item <= net.n_items:
            raise ValueError(f"item {item} is outside 1..{net.n_items}")
    # codes from 1: 0 is "no action"; a code the model never saw in training (an action of
    # the vocabulary that the training data lacks) reads as unknown, as an ingested one does
    if event.action < 1 or source_of(event) < 1:
        raise ValueError(
            f"action and source codes start at 1, got action {event.action}, source {event.source}"
        )
    after_history = append_event(history, event)
    before = log_softmax(net.score(history))[0]  # (N,) items 1..N
    after = log_softmax(net.score(after_history))[0]
    kl = float(max(0.0, np.sum(np.exp(after) * (after - before))))
    # with exclude_seen both lists leave out what the user has seen after the event, so the
    # acted-on item does not "leave" the top K merely by being acted on
    acted = [event.item] if exclude_seen and not event.followee else []
    top_before = recommend(net, history, k, exclude_seen=exclude_seen, exclude_items=acted).items[0]
    top_after = recommend(net, after_history, k, exclude_seen=exclude_seen).items[0]
    b = tuple(int(i) for i in top_before if i > 0)
    a = tuple(int(i) for i in top_after if i > 0)
    if event.timestamp is None and len(history.items):  # "now": the time it was given
        event = replace(event, timestamp=int(after_history.timestamps[-1]))
    return Influence(
        model=net.name,
        event=event,
        kl=kl,
        before=b,
        after=a,
        entering=tuple(i for i in a if i not in b),
        leaving=tuple(i for i in b if i not in a),
        items=tuple(
            ItemChange(int(i), float(np.exp(before[i - 1])), float(np.exp(after[i - 1])))
            for i in named
        ),
    )

"""Users' stored events, coded once and brought up to date by reading only what came since.

A recommendation reads the user's timeline as it is now: the training history and every
event the service accepted for the user. Read whole on every request, a user's accepted
events cost more with each one (the store's rows, then their codes, in Python), and a user
who keeps sending events slows every request of theirs down, until the server falls behind.
:class:`OwnEventCache` keeps each recent user's coded events
(:class:`~behaviorlm.serve.timelines.OwnEvents`) with the store position of the last one, and
on each request reads only the events stored after it (``EventStore.user_events_after``), so
reads stay fresh (read-your-writes) and the store read and the coding in Python cost what the
new events cost; only numpy's merge of the coded arrays with the training history still grows
with the history, at a small cost per event. Recommendations, explanations and influence
(for the user's own timeline) read through it, for the user and, with a model that reads
followees' events, for each followee: their events of the followee actions only, coded and
kept in an entry of their own (:meth:`OwnEventCache.followee_events`), so a followee who
posts often costs each follower's request what their new events cost, and a followee with
many events of other kinds costs nothing for them. Each coded event keeps its storage
position, so an explanation reads the records of the few live events it shows
(``EventStore.events_at``) to label them. The followers' timelines of social reach read
whole.

Memory is bounded: at most ``max_users`` entries and ``max_events`` coded events in all, the
least recently used going first; a user with more events than ``max_events`` (a followee:
more events of the followee actions) is read whole every time, as without the cache.
Followees share these bounds with the users asking, except that the followees of a user who
follows more than half ``max_users`` accounts are read whole and not kept (``keep=False``;
those already kept are used as they are), so that such a user does not push everyone out on
each request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from behaviorlm.schema import Int
from behaviorlm.serve.store import EventStore
from behaviorlm.serve.timelines import LiveTimelines, OwnEvents


class OwnEventCache:
    """The coded stored events of recently served users, kept up to date from the store.

    Parameters
    ----------
    timelines : LiveTimelines
        The codes of the served artifact.
    store : EventStore
        Where accepted events are stored.
    max_users, max_events : int
        Bounds of what is kept (entries: a user's own events, and apart from them their
        events of the followee actions; coded events of all of them together).

    Examples
    --------
    >>> import tempfile, behaviorlm as blm
    >>> from pathlib import Path
    >>> from behaviorlm.serve.store import EventRecord, open_store
    >>> art = blm.train(blm.preprocess(blm.simulate(30, seed=0)), "pop", progress=False)
    >>> store = open_store(f"sqlite:///{Path(tempfile.mkdtemp()) / 'ev.db'}")
    >>> cache = OwnEventCache(LiveTimelines(art), store)
    >>> item = art.dataset.items["item_id"][0]
    >>> _ = store.append([EventRecord(user_id="u1", item_id=item, timestamp=9, action="view")])
    >>> cache.get("u1").stored
    1
    >>> _ = store.append([EventRecord(user_id="u1", item_id="new", timestamp=10, action="view")])
    >>> own = cache.get("u1")  # reads the one event stored since
    >>> own.stored, own.ignored, own.size
    (2, 1, 1)
    """

    def __init__(
        self,
        timelines: LiveTimelines,
        store: EventStore,
        *,
        max_users: int = 4096,
        max_events: int = 200_000,
    ) -> None:
        if max_users < 1 or max_events < 1:
            raise ValueError(
                f"max_users and max_events must be positive, got {max_users} and {max_events}"
            )
        self.timelines = timelines
        self.store = store
        self.max_users = max_users
        self.max_events = max_events
        # (user, whether only their followee actions): their coded events
        self._entries: OrderedDict[tuple[str, bool], OwnEvents] = OrderedDict()
        self._events = 0  # coded events kept, all users together
        self._lock = threading.Lock()

    def get(self, user_id: str, keep: bool = True) -> OwnEvents:
        """The user's stored events as they are now, coded.

        With ``keep`` false, a user not kept already is read whole and coded, and not kept:
        for the followees of a user who follows more accounts than half the users the cache
        holds, who would push everyone else out on each request.
        """
        return self._get(user_id, keep, None)

    def followee_events(self, user_id: str, actions: Int, keep: bool = True) -> OwnEvents:
        """The user's stored events of the action codes ``actions`` as they are now, coded:
        what a timeline that follows them reads (the followee actions), kept apart from
        their own entry (:meth:`get`). Only these events count towards ``max_events``, so a
        followee with more stored events than that is still kept if few are of these
        actions. ``keep`` as in :meth:`get`; with ``keep`` false, the user's own entry serves
        where it is kept (it holds these events too)."""
        return self._get(user_id, keep, actions)

    def _get(self, user_id: str, keep: bool, actions: Int | None) -> OwnEvents:
        """:meth:`get` (``actions`` None) or :meth:`followee_events`."""
        key = (user_id, actions is not None)
        with self._lock:
            if not keep and key not in self._entries:
                if (user_id, False) in self._entries:  # their own entry holds these events too
                    return self._updated((user_id, False), None)
                new, positions = self.store.user_events_after(user_id, 0)
                return self.timelines.own_events(new, positions, None, actions)
            return self._updated(key, actions)

    def _updated(self, key: tuple[str, bool], actions: Int | None) -> OwnEvents:
        """The entry ``key`` brought up to date and kept, if it fits (the lock held)."""
        before = self._entries.pop(key, None)
        if before is not None:
            self._events -= before.size
        new, positions = self.store.user_events_after(key[0], before.mark if before else 0)
        if before is not None and not new:
            own = before
        else:
            own = self.timelines.own_events(new, positions, before, actions)
        if own.size <= self.max_events:
            self._entries[key] = own
            self._events += own.size
            while self._events > self.max_events or len(self._entries) > self.max_users:
                _, dropped = self._entries.popitem(last=False)
                self._events -= dropped.size
        return own

    def __len__(self) -> int:
        """Number of entries kept (a user's own, and their followee actions, count apart)."""
        return len(self._entries)

    def __contains__(self, user_id: object) -> bool:
        """Whether the user's coded events are kept (their own entry, :meth:`get`)."""
        return (user_id, False) in self._entries

    def keeps_followee_events(self, user_id: str) -> bool:
        """Whether the user's followee-action events are kept (:meth:`followee_events`)."""
        return (user_id, True) in self._entries

    @property
    def kept_events(self) -> int:
        """Coded events kept, all users together."""
        return self._events

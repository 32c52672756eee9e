"""Live timelines: a user's training history plus every event the service accepted since.

External ids become internal ids here, with the maps of the artifact's Dataset (the one
owner of ids): items ``1..n_items``, the action / device / location / source vocabularies and
the query-word vocabulary. An event on an item the model does not know is kept in the store
(a retrain will learn it) but left out of the timeline the model reads, and counted.
Context values the data set never had (a new city) become code 0, "unknown", as in training.

A model trained with followees' events (``split.followee_actions``, :mod:`behaviorlm.data.feed`)
reads them here too: the training timelines hold the data set's, and the accepted events of
those actions by the users one follows (in the data set's follow graph, from ``since`` on)
join one's live timeline as followee events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from behaviorlm.artifact import Artifact
from behaviorlm.data.dataset import QUERY_WORDS, query_text_words
from behaviorlm.data.feed import as_followee_events, followee_source
from behaviorlm.schema import FOLLOWEE, Int, Sequences
from behaviorlm.serve.store import EventRecord


@dataclass(frozen=True)
class Timeline:
    """One timeline as the model reads it.

    Attributes
    ----------
    sequences : Sequences
        One row, internal ids, in time order (training events first among equal times).
    known_user : bool
        The user occurs in the training data.
    live : tuple of EventRecord
        The events of the row that came from the store or the request (not from training):
        the user's own in the order given, then the followees' (their ``user_id`` is the
        followee's); the ``k``-th has ``event_id`` ``first_live_event + k``. None for a
        timeline built from the user's cached codes
        (:class:`~behaviorlm.serve.own_events.OwnEventCache`), whose records are not kept.
    ignored_events : int
        Events left out because the model does not know their item.
    live_events : int
        Number of events of the row that came from the store or the request.
    positions : (live_events,) int array
        The storage position of each live event, in the order of ``live``
        (``EventStore.events_at`` reads its record); 0 where it is not known (the events of a
        request, and those of :meth:`LiveTimelines.for_user`, whose records ``live`` holds).
    """

    sequences: Sequences
    known_user: bool
    live: tuple[EventRecord, ...] | None
    ignored_events: int
    live_events: int
    positions: Int

    @property
    def length(self) -> int:
        """Number of events the model reads."""
        return len(self.sequences.items)


@dataclass(frozen=True)
class OwnEvents:
    """A user's stored events as the model reads them, coded once.

    Attributes
    ----------
    arrays : dict
        Per-event arrays (:meth:`LiveTimelines.code`) of the events on known items and the
        searches, in storage order.
    stored : int
        All the user's stored events (those on unknown items included).
    ignored : int
        Of them, events not coded: on items the model does not know (and, in a followee's
        entry, of actions other than the followee actions).
    mark : int
        The store's position of the last event read (``EventStore.user_events_after``).
    positions : int array
        The storage position of each coded event (0 for events not from the store).
    """

    arrays: dict[str, np.ndarray]
    stored: int
    ignored: int
    mark: int
    positions: Int

    @property
    def size(self) -> int:
        """Number of coded events."""
        return len(self.arrays["items"])


@dataclass(frozen=True)
class _Followees:
    """The followees' events a timeline reads: per-event arrays (:meth:`LiveTimelines.code`),
    the internal id of each event's followee, their records where at hand, and their
    storage positions (0 where not known)."""

    arrays: dict[str, np.ndarray]
    who: Int
    records: Sequence[EventRecord] | None
    positions: Int


def _codes(values: Sequence[str]) -> dict[str, int]:
    return {value: code for code, value in enumerate(values, start=1)}


def _sequences(
    per_event: dict[str, np.ndarray], lengths: list[int], users: Int, n_items: int
) -> Sequences:
    """Rows of ``lengths`` events from the per-event arrays (``query_words`` and, where
    present, ``FOLLOWEE`` as extra)."""
    arrays = dict(per_event)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    extra: dict[str, np.ndarray] = {
        k: arrays.pop(k) for k in ("query_words", FOLLOWEE) if k in arrays
    }
    return Sequences(offsets=offsets, users=users, n_items=n_items, extra=extra, **arrays)


def _within(rows: Int, n_rows: int) -> Int:
    """Each event's place within its row, for events listed row after row (``rows``
    non-decreasing)."""
    first = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=first[1:])
    out: Int = np.arange(len(rows), dtype=np.int64) - first[rows]
    return out


class LiveTimelines:
    """Builds timelines from an artifact's training histories and new events.

    Attributes
    ----------
    followee_actions : frozenset of str
        Actions of the users one follows that a timeline reads (none unless the model was
        trained with followees' events).
    followee_action_codes : numpy array or None
        Their action codes; None where the model lacks a code for one of them (their events
        are then picked from records, not codes).

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(30, seed=1))
    >>> art = blm.Artifact(model=blm.MODELS["pop"][1](blm.MODELS["pop"][0]()).fit(
    ...     ds.sequences()), dataset=ds)
    >>> live = LiveTimelines(art)
    >>> new = EventRecord(user_id="u0", item_id="i3", timestamp=2_000_000_000, action="cart")
    >>> t = live.for_user("u0", [new])
    >>> t.live_events, int(t.sequences.items[-1]) == live.item_code("i3")
    (1, True)
    >>> rows = live.stack([t.sequences, live.for_user("u1", []).sequences])
    >>> len(rows), rows.lengths.tolist() == [t.length, live.for_user("u1", []).length]
    (2, True)
    >>> len(live.stack([])), live.stack([t.sequences]) is t.sequences
    (0, True)
    >>> e = ds.events.row(0, named=True)  # a training event, stored again (in_training)
    >>> again = EventRecord(
    ...     user_id=ds.users["user_id"][e["user"] - 1],
    ...     item_id=ds.items["item_id"][e["item"] - 1],
    ...     timestamp=e["timestamp"], action=ds.vocab["action"][e["action"] - 1])
    >>> live.in_training(again), live.in_training(replace(again, timestamp=2_000_000_000))
    (True, False)
    >>> stored = {"u0": [new]}  # many users at once, as for the followers of a social reach
    >>> many = live.for_users(["u1", "u0"], lambda user: stored.get(user, []))
    >>> many.lengths.tolist() == [live.for_user("u1", []).length, t.length]
    True
    """

    def __init__(self, artifact: Artifact) -> None:
        ds = artifact.dataset
        self.n_items = ds.n_items
        self.training = artifact.timelines()
        self._followee_of_training = self.training.followees()  # once, not per stored event
        self.first_live_event = ds.n_events  # event ids of live events follow the data set's
        self.items = _codes(ds.items["item_id"].cast(str).to_list())
        self.user_ids: list[str] = ds.users["user_id"].cast(str).to_list()  # by internal id - 1
        self.users = _codes(self.user_ids)
        self.actions = _codes(ds.vocab["action"])
        self.devices = _codes(ds.vocab.get("device", []))
        self.locations = _codes(ds.vocab.get("location", []))
        self.sources = _codes(ds.vocab.get("source", []))
        self.words = _codes(ds.query_vocab())
        self.query_split = ds.query_split  # as the model's data set split its queries
        self.followee_actions = frozenset(artifact.followee_actions)
        self.followee_source = followee_source(ds)
        # per follower (internal id): the followees' external ids and since, when read
        self.followees: dict[int, list[tuple[str, int | None]]] = {}
        if self.followee_actions:  # one edge per pair, as data.feed reads them
            edges = ds.follows.unique(
                subset=["follower", "followee"], keep="first", maintain_order=True
            )
            for follower, followee, since in edges.iter_rows():
                self.followees.setdefault(int(follower), []).append(
                    (self.user_ids[int(followee) - 1], since)
                )
        # the codes of the followee actions; None where the model lacks one (an uncoded
        # followee action would share code 0 with every other uncoded action)
        codes = [self.actions.get(action, 0) for action in sorted(self.followee_actions)]
        self.followee_action_codes: Int | None = (
            None if 0 in codes else np.array(codes, dtype=np.int64)
        )
        # no followee events and no training history, shared: never to be changed
        none = np.zeros(0, dtype=np.int64)
        self._nobody = _Followees(self.code([]), none, (), none)
        self._no_history = self.training.select(np.zeros(0, dtype=np.int64))
        for array in (
            *self._nobody.arrays.values(),
            self._nobody.who,
            self._nobody.positions,
            *self._no_history.per_event().values(),
        ):
            array.flags.writeable = False

    def followees_of(self, user_id: str) -> list[str]:
        """External ids of the users whose events ``user_id``'s timeline reads (none unless the
        model was trained with followees' events)."""
        return [f for f, _ in self.followees.get(self.users.get(user_id, 0), [])]

    def item_code(self, item_id: str) -> int:
        """Internal id of an external item id; 0 when the model does not know it."""
        return self.items.get(item_id, 0)

    def for_user(
        self,
        user_id: str,
        live: Sequence[EventRecord],
        followee_live: Sequence[EventRecord] = (),
    ) -> Timeline:
        """The user's training history (none for a new user) merged with ``live`` events and
        the followees' accepted events (``followee_live``: the store's events of
        :meth:`followees_of`; those the model does not read are left out)."""
        own = self.own_events(live, None, None)
        return self._user_timeline(user_id, own, followee_live, self.readable(live))

    def own_events(
        self,
        events: Sequence[EventRecord],
        positions: Sequence[int] | None,
        after: OwnEvents | None,
        actions: Int | None = None,
        alone: bool = False,
    ) -> OwnEvents:
        """``after`` (a user's coded events; None: none yet) extended by ``events``, the
        user's events stored after it at storage ``positions`` (None: events not from the
        store); with ``actions``, only the events of these action codes are coded; events
        already in the training data are left out, unless they make a timeline ``alone``."""
        picks = self._readable_at(events, alone)
        # the readable events left out are read with the training data
        trained = sum(1 for e in events if self._known(e)) - len(picks)
        if actions is not None:
            wanted = set(actions.tolist())
            picks = [i for i in picks if self.actions.get(events[i].action, 0) in wanted]
        stored = len(events) + (after.stored if after else 0)
        ignored = len(events) - len(picks) - trained + (after.ignored if after else 0)
        mark = int(positions[-1]) if positions else (after.mark if after is not None else 0)
        if after is not None and not picks:  # nothing new to code: the arrays as they are
            return replace(after, stored=stored, ignored=ignored, mark=mark)
        coded = self.code([events[i] for i in picks])
        at = np.zeros(len(picks), dtype=np.int64)
        if positions is not None:
            at = np.asarray(positions, dtype=np.int64)[picks]
        if after is not None:  # event ids go on counting from the events already coded
            coded["event_ids"] += after.size
            coded = {k: np.concatenate([after.arrays[k], v]) for k, v in coded.items()}
            at = np.concatenate([after.positions, at])
        for array in (*coded.values(), at):  # kept and shared by the cache: never changed
            array.flags.writeable = False
        return OwnEvents(arrays=coded, stored=stored, ignored=ignored, mark=mark, positions=at)

    def for_user_coded(
        self,
        user_id: str,
        own: OwnEvents,
        events_of: Callable[[str, Int], OwnEvents],
        records_of: Callable[[str], tuple[Sequence[EventRecord], Sequence[int]]],
    ) -> Timeline:
        """As :meth:`for_user`, from coded events
        (:class:`~behaviorlm.serve.own_events.OwnEventCache`); the same timeline, without the
        records (``Timeline.live`` is None) but with the storage position of every live
        event (``Timeline.positions``).

        ``own`` are the user's coded events. For a model that reads followees' events, each
        followee's come from ``events_of(followee, codes)`` (their coded events, at least
        those of the action codes :attr:`followee_action_codes`), picked on the codes; where
        the model lacks a code for a followee action (:attr:`followee_action_codes` is None)
        from their records and storage positions, ``records_of(followee)``
        (``EventStore.user_events_after(followee, 0)``), as in :meth:`for_user`.
        """
        codes = self.followee_action_codes
        if codes is None:
            read = [records_of(f) for f in self.followees_of(user_id)]
            records = [e for events, _ in read for e in events]
            at = [p for _, positions in read for p in positions]
            return self._user_timeline(user_id, own, records, None, at)
        user = self.users.get(user_id, 0)
        base = self.training.row(user - 1) if user else None
        followees = self.followees.get(user, [])
        if not followees:  # most users, and every one where the model reads no followees
            return self._merged(base, own, self._nobody, user, None)
        parts, who = [self._nobody.arrays], [self._nobody.who]
        positions = [self._nobody.positions]
        for followee, since in followees:
            coded = events_of(followee, codes)
            arrays = coded.arrays
            keep = np.isin(arrays["actions"], codes)  # the picks of _followee_events, on codes
            if since is not None:
                keep &= arrays["timestamps"] >= since
            parts.append({k: v[keep] for k, v in arrays.items()})
            who.append(np.full(int(keep.sum()), self.users.get(followee, 0), dtype=np.int64))
            positions.append(coded.positions[keep])
        theirs = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
        # numbered as code() numbers records: on from first_live_event, in order
        n_theirs = len(theirs["items"])
        theirs["event_ids"] = np.arange(n_theirs, dtype=np.int64) + self.first_live_event
        followee_events = _Followees(theirs, np.concatenate(who), None, np.concatenate(positions))
        return self._merged(base, own, followee_events, user, None)

    def _user_timeline(
        self,
        user_id: str,
        own: OwnEvents,
        followee_live: Sequence[EventRecord],
        known: Sequence[EventRecord] | None,
        positions: Sequence[int] | None = None,
    ) -> Timeline:
        """The user's training history merged with ``own`` and the followees' events the
        model reads (of ``followee_live``, at storage ``positions`` where known); ``known``:
        the records of ``own``, where at hand."""
        user = self.users.get(user_id, 0)
        base = self.training.row(user - 1) if user else None
        picks = self._followee_at(user, followee_live)
        theirs = self._nobody
        if picks:
            records = [followee_live[i] for i in picks]
            who = np.array([self.users.get(e.user_id, 0) for e in records], dtype=np.int64)
            at = np.zeros_like(who)
            if positions is not None:
                at = np.asarray(positions, dtype=np.int64)[picks]
            theirs = _Followees(self.code(records), who, records, at)
        return self._merged(base, own, theirs, user, known)

    def stack(self, rows: Sequence[Sequences]) -> Sequences:
        """Single-row timelines (``Timeline.sequences``) as one ``Sequences``, in order.

        One row is returned as it is (the same object), not copied.
        """
        if not rows:
            return self.training.select(np.zeros(0, dtype=np.int64))
        if len(rows) == 1:  # already one Sequences (a request alone in its batch)
            return rows[0]
        per = [row.per_event() for row in rows]
        return _sequences(
            {name: np.concatenate([p[name] for p in per]) for name in per[0]},
            [len(row.items) for row in rows],
            np.concatenate([row.users for row in rows]),
            self.n_items,
        )

    def for_users(
        self, user_ids: Sequence[str], records_of: Callable[[str], Sequence[EventRecord]]
    ) -> Sequences:
        """The live timelines of many users, one row each, in the order given: the rows of
        :meth:`for_user` with each user's stored events, ``records_of(user)``, and their
        followees' (a social reach's followers).

        Built in one pass: the stored events of all of them coded at once, and merged with
        the training rows by one sort. See the class's example.
        """
        users = np.array([self.users.get(u, 0) for u in user_ids], dtype=np.int64)
        own: list[EventRecord] = []  # the users' own readable events, user after user
        theirs: list[EventRecord] = []  # the followee events their timelines read
        own_rows: list[int] = []
        their_rows: list[int] = []
        for row, (user_id, user) in enumerate(zip(user_ids, users.tolist(), strict=True)):
            mine = self.readable(records_of(user_id))
            own += mine
            own_rows += [row] * len(mine)
            if user in self.followees:
                stored = [e for f in self.followees_of(user_id) for e in records_of(f)]
                picked = self._followee_events(user, stored)
                theirs += picked
                their_rows += [row] * len(picked)
        mine_rows = np.array(own_rows, dtype=np.int64)
        theirs_rows = np.array(their_rows, dtype=np.int64)
        rows = np.concatenate([mine_rows, theirs_rows])
        mine_coded, theirs_coded = self.code(own), self.code(theirs)
        live = {k: np.concatenate([mine_coded[k], theirs_coded[k]]) for k in mine_coded}
        # numbered as for_user numbers them: each user's own events on from first_live_event,
        # then their followees'
        n_own = np.bincount(mine_rows, minlength=len(users))
        numbers = [_within(mine_rows, len(users)), _within(theirs_rows, len(users))]
        live["event_ids"] = self.first_live_event + np.concatenate(
            [numbers[0], numbers[1] + n_own[theirs_rows]]
        )
        who = np.array(
            [0] * len(own) + [self.users.get(e.user_id, 0) for e in theirs], dtype=np.int64
        )
        known = np.flatnonzero(users)
        base = self.training.select(users[known] - 1)
        return self._rows(base, np.repeat(known, base.lengths), live, rows, who, users)

    def for_events(self, events: Sequence[EventRecord]) -> Timeline:
        """A timeline made only of ``events`` (a request's own timeline: no training events
        to read any of them twice, whatever user they name)."""
        own = self.own_events(events, None, None, alone=True)
        return self._merged(None, own, self._nobody, 0, self.readable(events, alone=True))

    def readable(self, live: Sequence[EventRecord], alone: bool = False) -> list[EventRecord]:
        """The events of ``live`` the model reads (searches and known items), in order."""
        return [live[i] for i in self._readable_at(live, alone)]

    def _readable_at(self, live: Sequence[EventRecord], alone: bool = False) -> list[int]:
        """The places in ``live`` of the events the model reads, in order: searches and
        events on known items, but not those already in the training data
        (:meth:`in_training`) unless the events make a timeline ``alone``."""
        return [
            i for i, e in enumerate(live) if self._known(e) and (alone or not self.in_training(e))
        ]

    def _known(self, event: EventRecord) -> bool:
        """Whether the model can read ``event``: a search, or an event on a known item."""
        return event.item_id is None or event.item_id in self.items

    def in_training(self, event: EventRecord) -> bool:
        """Whether ``event`` is one of its user's own training events: the same item (or
        search), action and time (a followee's event of the user's training row is none, even
        with the same item, action and time). A store's events exported into the data of the
        model now served (``behaviorlm export-events``, then a retrain) are then read once, not
        twice.

        (The class's example shows one.)
        """
        user = self.users.get(event.user_id, 0)
        if not user:
            return False
        start, stop = self.training.offsets[user - 1], self.training.offsets[user]
        times = self.training.timestamps[start:stop]
        if stop == start or event.timestamp > times[-1]:  # after training, as most are
            return False
        item = 0 if event.item_id is None else self.items.get(event.item_id, 0)
        same = (
            (times == event.timestamp)
            & (self.training.items[start:stop] == item)
            & (self.training.actions[start:stop] == self.actions.get(event.action, 0))
            & (self._followee_of_training[start:stop] == 0)
        )
        return bool(same.any())

    def _followee_events(self, user: int, events: Sequence[EventRecord]) -> list[EventRecord]:
        """Those of ``events`` that ``user``'s timeline reads as followee events."""
        return [events[i] for i in self._followee_at(user, events)]

    def _followee_at(self, user: int, events: Sequence[EventRecord]) -> list[int]:
        """The places in ``events`` of those :meth:`_followee_events` picks, in order."""
        since = dict(self.followees.get(user, []))
        return [
            i
            for i in self._readable_at(events)
            if (e := events[i]).action in self.followee_actions
            and e.user_id in since
            and ((start := since[e.user_id]) is None or e.timestamp >= start)
        ]

    def _merged(
        self,
        base: Sequences | None,
        own: OwnEvents,
        theirs: _Followees,
        user: int,
        known: Sequence[EventRecord] | None,
    ) -> Timeline:
        """The timeline of training history ``base``, the user's coded events ``own`` and
        the followees' events ``theirs``; ``known`` holds the records of ``own`` where they
        are at hand (None otherwise, or where ``theirs.records`` is None: ``Timeline.live`` is
        then None)."""
        mine, coded_theirs, n_mine = own.arrays, theirs.arrays, own.size
        # live event ids count on from the user's own events to the followees'
        arrays = {
            k: np.concatenate([mine[k], coded_theirs[k] + (n_mine if k == "event_ids" else 0)])
            for k in mine
        }
        who = np.concatenate([np.zeros(n_mine, dtype=np.int64), theirs.who])
        if base is None:
            base = self._no_history
        one = np.zeros(1, dtype=np.int64)
        sequences = self._rows(
            base,
            np.zeros(len(base.items), dtype=np.int64),
            arrays,
            np.zeros(len(who), dtype=np.int64),
            who,
            one + user,
        )
        return Timeline(
            sequences=sequences,
            known_user=user > 0,
            live=None if known is None or theirs.records is None else (*known, *theirs.records),
            ignored_events=own.ignored,
            live_events=n_mine + len(theirs.who),
            positions=np.concatenate([own.positions, theirs.positions]),
        )

    def _rows(
        self,
        base: Sequences,
        base_rows: Int,
        live: dict[str, np.ndarray],
        live_rows: Int,
        who: Int,
        users: Int,
    ) -> Sequences:
        """Rows of ``users``: the training events ``base`` (each in row ``base_rows``) and the
        coded live events ``live`` (rows ``live_rows``; ``who``: the followee of a followee
        event, else 0), in time order. On equal times: training events, then the user's own,
        then the followees' (as in data.feed.merge_feed), each in the order given."""
        if self.followee_actions:  # the followees' events as in data.feed: context only
            live = as_followee_events(live, who, self.followee_source)
        old = base.per_event()
        arrays = {k: np.concatenate([old[k], v]) for k, v in live.items()}
        rows = np.concatenate([base_rows, live_rows])
        # stable: the order above on ties
        if len(users) == 1:  # every recommendation: one row
            order = np.argsort(arrays["timestamps"], kind="stable")
        else:
            order = np.lexsort((arrays["timestamps"], rows))
        return _sequences(
            {k: v[order] for k, v in arrays.items()},
            np.bincount(rows, minlength=len(users)).tolist(),
            users,
            self.n_items,
        )

    def code(self, events: Sequence[EventRecord]) -> dict[str, np.ndarray]:
        """Per-event arrays (the fields of Sequences and ``query_words``) of ``events``;
        ``event_ids`` count from ``first_live_event``."""
        n = len(events)

        def ints(values: list[int]) -> Int:
            return np.array(values, dtype=np.int64).reshape(n)

        words = np.zeros((n, QUERY_WORDS), dtype=np.int64)
        for row, e in enumerate(events):
            if e.query:
                # as Dataset.query_words: lower case, split on white space, the first words
                for slot, word in enumerate(
                    query_text_words(e.query, self.query_split)[:QUERY_WORDS]
                ):
                    words[row, slot] = self.words.get(word, 0)
        return {
            "items": ints([self.items[e.item_id] if e.item_id else 0 for e in events]),
            "actions": ints([self.actions.get(e.action, 0) for e in events]),
            "timestamps": ints([e.timestamp for e in events]),
            "event_ids": np.arange(n, dtype=np.int64) + self.first_live_event,
            "values": np.array(
                [np.nan if e.value is None else e.value for e in events], dtype=np.float32
            ).reshape(n),
            "devices": ints([self.devices.get(e.device or "", 0) for e in events]),
            "locations": ints([self.locations.get(e.location or "", 0) for e in events]),
            "sources": ints([self.sources.get(e.source, 0) for e in events]),
            "query_words": words,
        }

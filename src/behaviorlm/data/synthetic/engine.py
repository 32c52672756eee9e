"""The rounds of the simulation: sessions of all active users generated together, window by window.

Time is cut into windows (``round_hours`` long). In every window each user is active with
their own probability; all active users' sessions are generated in one batch of array
operations. A window's shares reach followers in the next window and a purchase's complement
shows up in the user's next session, so causes always precede their effects.

A session is a list of *entries*, each one item shown to the user, in this order:

1. social views: items that followees shared in the previous window (``source = social``);
2. the complement of the user's last purchase (cause group ``history``);
3. a search (``query``, no item), on scheduled sessions only;
4. browsing views, each steered into the searched category if there was a search (cause
   ``search``; such a view is a click on a search result, ``source = search``), else drawn
   from the user's tastes (cause ``none``); one local item of the
   user's city (cause ``location``) and one app-only item on the app (cause ``device``) may be
   mixed in.

Each entry expands into its view and funnel (like, comment, cart, purchase, rate, share).
Every event of an entry carries the entry's planted cause: the funnel of a socially viewed
item is caused by the followee's share, that of a complement by the earlier purchase.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from behaviorlm.data.synthetic.config import SimConfig
from behaviorlm.data.synthetic.vocab import (
    APP_DEVICE,
    DEVICE,
    DEVICES,
    HISTORY,
    LOCATION,
    NONE,
    SEARCH,
    SOCIAL,
)
from behaviorlm.data.synthetic.world import World
from behaviorlm.schema import Bool, Int

#: Actions in code order of ``EventArrays.action``; all are names of ``schema.ACTIONS``.
EVENT_ACTIONS: tuple[str, ...] = (
    "search",
    "view",
    "like",
    "comment",
    "cart",
    "purchase",
    "rate",
    "share",
)
A_SEARCH, A_VIEW, A_LIKE, A_COMMENT, A_CART, A_PURCHASE, A_RATE, A_SHARE = range(len(EVENT_ACTIONS))
#: Marks an entry caused by its own session's search (resolved once that search has an id).
_OWN_SEARCH = -2

I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


def _empty_i64() -> Int:
    return np.zeros(0, dtype=np.int64)


@dataclass
class EventArrays:
    """Events as compact code arrays in generation order; ``cause`` holds generation indices."""

    user: I32 = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    item: I32 = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # -1: no item
    time: Int = field(default_factory=_empty_i64)
    action: I8 = field(default_factory=lambda: np.zeros(0, dtype=np.int8))  # EVENT_ACTIONS
    rating: I8 = field(default_factory=lambda: np.zeros(0, dtype=np.int8))  # 0: none, else 1..5
    query: I32 = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # -1: none
    device: I8 = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    social: Bool = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    cause: Int = field(default_factory=_empty_i64)  # -1: none
    group: I8 = field(default_factory=lambda: np.zeros(0, dtype=np.int8))  # CAUSE_GROUPS

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def concat(cls, parts: list[EventArrays]) -> EventArrays:
        if not parts:
            return cls()
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


@dataclass
class _Deliveries:
    """Social views waiting for the next window: who sees which item because of which share."""

    user: Int = field(default_factory=_empty_i64)
    item: Int = field(default_factory=_empty_i64)
    cause: Int = field(default_factory=_empty_i64)
    rank: Int = field(default_factory=_empty_i64)  # order among the user's deliveries


@dataclass
class _Rows:
    """A window's entries (and search rows) as columns, sorted by (session, slot)."""

    sess: Int
    item: Int  # -1 on search rows
    group: Int
    cause: Int  # generation id, -1 none, _OWN_SEARCH: the session's search
    query: Int  # -1 except on search rows
    social: Bool


@dataclass
class _Entries:
    """Items shown in sessions (plus search rows), gathered part by part."""

    parts: list[tuple[_Rows, F64]] = field(default_factory=list)

    def add(
        self,
        sess: Int,
        slot: F64 | float,
        item: Int,
        group: int | Int,
        cause: int | Int,
        query: Int | None = None,
        social: bool = False,
    ) -> None:
        """Add entries of sessions ``sess``; ``slot`` orders them within their session."""
        n = len(sess)
        rows = _Rows(
            sess=sess,
            item=item,
            group=np.broadcast_to(np.asarray(group, dtype=np.int64), (n,)),
            cause=np.broadcast_to(np.asarray(cause, dtype=np.int64), (n,)),
            query=np.full(n, -1, dtype=np.int64) if query is None else query,
            social=np.full(n, social, dtype=np.bool_),
        )
        self.parts.append((rows, np.broadcast_to(np.asarray(slot, dtype=np.float64), (n,))))

    def rows(self) -> _Rows:
        """All entries, sorted by (session, slot)."""
        sess = np.concatenate([p.sess for p, _ in self.parts])
        order = np.lexsort((np.concatenate([s for _, s in self.parts]), sess))

        def cat(name: str) -> Int:
            return np.concatenate([getattr(p, name) for p, _ in self.parts])[order]

        social = np.concatenate([p.social for p, _ in self.parts])[order]
        return _Rows(sess[order], cat("item"), cat("group"), cat("cause"), cat("query"), social)


def _activity(cfg: SimConfig, world: World) -> F64:
    """Each user's chance of a scheduled session per window, to meet ``events_per_user``.

    Scheduled sessions are scaled down for the entries they set off later: social views (each
    viewed item is shared with ``p_share``, reaching ``followers x influence`` people, who may
    share again) and complements (a purchase of an item with a complement, followed up with
    ``p_complement``).
    """
    app_share = cfg.device_shares[APP_DEVICE] / sum(cfg.device_shares)
    shown = cfg.views_per_session + cfg.p_local_view + cfg.p_app_view * app_share
    per_session = cfg.p_search + shown * cfg.events_per_entry()
    mean_followers = len(world.follows.follower) / max(cfg.n_users, 1)
    social = cfg.p_share * mean_followers * float(world.users.influence.mean())
    complement = cfg.p_cart * cfg.p_purchase * cfg.p_has_complement * cfg.p_complement
    echo = max(1.0 - social - complement, 0.5)  # share of entries that scheduled sessions make
    sessions = echo * cfg.events_per_user * world.users.activity / per_session
    return np.asarray(np.minimum(1.0, sessions / cfg.n_rounds))


def simulate_events(cfg: SimConfig, world: World, rng: np.random.Generator) -> EventArrays:
    """Run all windows and return every event in generation order."""
    p_active = _activity(cfg, world)
    n_users = cfg.n_users
    pending_item = np.full(n_users, -1, dtype=np.int64)
    pending_cause = np.full(n_users, -1, dtype=np.int64)
    deliveries = _Deliveries()
    parts: list[EventArrays] = []
    n_done = 0
    for r in range(cfg.n_rounds):
        scheduled = rng.random(n_users) < p_active
        events, purchases, shares = _window(
            cfg, world, rng, r, scheduled, deliveries, pending_item, pending_cause, n_done
        )
        # the last purchase (with a complement) of each user waits for their next session
        users, items, raw = purchases
        if len(users):
            last = len(users) - 1 - np.unique(users[::-1], return_index=True)[1]
            pending_item[users[last]] = items[last]
            pending_cause[users[last]] = raw[last]
        deliveries = _deliver(cfg, world, rng, *shares)
        parts.append(events)
        n_done += len(events)
    return EventArrays.concat(parts)


def _window(
    cfg: SimConfig,
    world: World,
    rng: np.random.Generator,
    r: int,
    scheduled: Bool,
    deliveries: _Deliveries,
    pending_item: Int,
    pending_cause: Int,
    base: int,
) -> tuple[EventArrays, tuple[Int, Int, Int], tuple[Int, Int, Int]]:
    """One window: sessions of every active user. Returns the events (ids from ``base``),
    purchases with a complement (user, complement, id) and shares (user, item, id)."""
    items, users = world.items, world.users
    active_mask = scheduled.copy()
    active_mask[deliveries.user] = True
    active = np.flatnonzero(active_mask)
    n_s = len(active)
    is_sched = scheduled[active]
    device = users.device[active].copy()
    switch = rng.random(n_s) >= cfg.p_main_device
    device[switch] = (device[switch] + rng.integers(1, len(DEVICES), int(switch.sum()))) % len(
        DEVICES
    )
    entries = _Entries()
    S = cfg.max_social_per_session  # slots: social 0..S-1, complement S, search S+1, views S+2..

    # 1. social views; app-only items reach only followers who are on the app now
    d_sess = np.searchsorted(active, deliveries.user)
    ok = ~items.app_only[deliveries.item] | (device[d_sess] == APP_DEVICE)
    entries.add(
        d_sess[ok],
        deliveries.rank[ok].astype(np.float64),
        deliveries.item[ok],
        SOCIAL,
        deliveries.cause[ok],
        social=True,
    )

    # 2. the complement of the last purchase, in the next session
    pending = pending_item[active] >= 0
    take = np.flatnonzero(pending & (rng.random(n_s) < cfg.p_complement))
    entries.add(take, float(S), pending_item[active[take]], HISTORY, pending_cause[active[take]])
    pending_item[active] = -1

    # 3. search: a category from the user's tastes or a new one, a query of its words
    s_sess = np.flatnonzero(is_sched & (rng.random(n_s) < cfg.p_search))
    s_cat = users.taste.sample(active[s_sess], rng)
    explore = rng.random(len(s_sess)) < cfg.p_search_explore
    s_cat[explore] = rng.integers(0, world.vocab.n, int(explore.sum()))
    q_start = world.vocab.query_start
    query = q_start[s_cat] + (
        rng.random(len(s_sess)) * (q_start[s_cat + 1] - q_start[s_cat])
    ).astype(np.int64)
    entries.add(
        s_sess, float(S + 1), np.full(len(s_sess), -1, dtype=np.int64), NONE, -1, query=query
    )
    searched = np.full(n_s, -1, dtype=np.int64)
    searched[s_sess] = s_cat

    # 4. browsing, steered by the search; one local and one app-only item may be mixed in
    n_views = np.where(is_sched, 1 + rng.poisson(cfg.views_per_session - 1.0, n_s), 0)
    n_views = np.minimum(n_views, cfg.max_views_per_session)
    v_sess = np.repeat(np.arange(n_s, dtype=np.int64), n_views)
    within = np.arange(len(v_sess)) - np.repeat(np.cumsum(n_views) - n_views, n_views)
    v_cat = users.taste.sample(active[v_sess], rng)
    steer = (searched[v_sess] >= 0) & (rng.random(len(v_sess)) < cfg.p_search_steer)
    v_cat[steer] = searched[v_sess[steer]]
    v_item = world.browse.sample(v_cat, rng)
    v_group = np.where(steer, SEARCH, NONE)
    entries.add(
        v_sess,
        (S + 2.0 + within).astype(np.float64),
        v_item,
        v_group,
        np.where(steer, _OWN_SEARCH, -1),
    )

    local = np.flatnonzero(is_sched & (rng.random(n_s) < cfg.p_local_view))
    local_item = world.local.sample(users.city[active[local]], rng)
    app = np.flatnonzero(is_sched & (device == APP_DEVICE) & (rng.random(n_s) < cfg.p_app_view))
    app_item = world.app.sample(np.zeros(len(app), dtype=np.int64), rng)
    for group, sess, item in ((LOCATION, local, local_item), (DEVICE, app, app_item)):
        # a random place among the session's views (half slots fall between them)
        slot = (S + 1.5 + rng.integers(0, n_views[sess] + 1)).astype(np.float64)
        keep = item >= 0
        entries.add(sess[keep], slot[keep], item[keep], group, -1)
    return _expand(cfg, world, rng, r, entries, active, device, base)


def _expand(
    cfg: SimConfig,
    world: World,
    rng: np.random.Generator,
    r: int,
    entries: _Entries,
    active: Int,
    device: Int,
    base: int,
) -> tuple[EventArrays, tuple[Int, Int, Int], tuple[Int, Int, Int]]:
    """Turn a window's entries into events: funnels, times, ids and resolved causes."""
    rows = entries.rows()
    sess, item, group, query = rows.sess, rows.item, rows.group, rows.query
    n_rows = len(sess)
    is_search = query >= 0
    shown = ~is_search
    p_cart = np.minimum(
        1.0, cfg.p_cart * np.where(group == HISTORY, cfg.complement_cart_boost, 1.0)
    )
    u = rng.random((n_rows, 6))
    steps = np.empty((n_rows, len(EVENT_ACTIONS)), dtype=np.bool_)
    steps[:, A_SEARCH] = is_search
    steps[:, A_VIEW] = shown
    steps[:, A_LIKE] = shown & (u[:, 0] < cfg.p_like)
    steps[:, A_COMMENT] = shown & (u[:, 1] < cfg.p_comment)
    steps[:, A_CART] = shown & (u[:, 2] < p_cart)
    steps[:, A_PURCHASE] = steps[:, A_CART] & (u[:, 3] < cfg.p_purchase)
    steps[:, A_RATE] = steps[:, A_PURCHASE] & (u[:, 4] < cfg.p_rate)
    steps[:, A_SHARE] = shown & (u[:, 5] < cfg.p_share)
    row, action = np.nonzero(steps)  # row-major: entries in session order, steps in funnel order
    n = len(row)
    ev_sess = sess[row]
    ev_item = item[row]
    ev_user = active[ev_sess]

    # times: the session starts at a random moment of the window that leaves room for it
    gaps = 1 + np.minimum(rng.exponential(cfg.mean_gap_seconds, n), cfg.max_gap_seconds - 1).astype(
        np.int64
    )
    per_session = np.bincount(ev_sess, minlength=len(active))
    duration = np.bincount(ev_sess, weights=gaps, minlength=len(active)).astype(np.int64)
    room = cfg.round_seconds - duration
    start = (
        cfg.start_time + r * cfg.round_seconds + (rng.random(len(active)) * room).astype(np.int64)
    )
    elapsed = np.cumsum(gaps)  # gaps up to and including each event, then made per session
    before = np.concatenate([[0], elapsed])[np.cumsum(per_session) - per_session]
    time = start[ev_sess] + elapsed - np.repeat(before, per_session) - gaps

    # causes: generation ids; an entry steered by its session's search points at that search
    ev_cause = rows.cause[row]
    searches = np.flatnonzero(action == A_SEARCH)
    search_id = np.full(len(active), -1, dtype=np.int64)
    search_id[ev_sess[searches]] = base + searches
    own = ev_cause == _OWN_SEARCH
    ev_cause[own] = search_id[ev_sess[own]]

    rating = np.zeros(n, dtype=np.int8)
    rated = action == A_RATE
    score = 3.6 + 1.5 * world.items.quality[ev_item[rated]] + rng.normal(0.0, 0.7, int(rated.sum()))
    rating[rated] = np.clip(np.rint(score), 1, 5).astype(np.int8)

    events = EventArrays(
        user=ev_user.astype(np.int32),
        item=ev_item.astype(np.int32),
        time=time,
        action=action.astype(np.int8),
        rating=rating,
        query=query[row].astype(np.int32),
        device=device[ev_sess].astype(np.int8),
        social=rows.social[row] & (action == A_VIEW),
        cause=ev_cause,
        group=group[row].astype(np.int8),
    )
    bought = np.flatnonzero(
        (action == A_PURCHASE) & (world.items.complement[np.maximum(ev_item, 0)] >= 0)
    )
    purchases = (ev_user[bought], world.items.complement[ev_item[bought]], base + bought)
    shared = np.flatnonzero(action == A_SHARE)
    shares = (ev_user[shared], ev_item[shared], base + shared)
    return events, purchases, shares


def _deliver(
    cfg: SimConfig, world: World, rng: np.random.Generator, sharer: Int, item: Int, share_id: Int
) -> _Deliveries:
    """Followers who will view a shared item in the next window.

    Each follower of a sharer views the item with the sharer's influence, unless the item is
    local to another city. A follower sees an item once per window (the first share counts)
    and at most ``max_social_per_session`` items.
    """
    follows, users = world.follows, world.users
    first = follows.followers_start[sharer]
    degree = follows.followers_start[sharer + 1] - first
    which = np.repeat(np.arange(len(sharer)), degree)
    within = np.arange(len(which)) - np.repeat(np.cumsum(degree) - degree, degree)
    follower = follows.followers[first[which] + within]
    seen = rng.random(len(which)) < users.influence[sharer[which]]
    city = world.items.city[item[which]]
    seen &= (city < 0) | (users.city[follower] == city)
    follower, which = follower[seen], which[seen]
    # one delivery per (follower, item): the earliest share; ordered by follower, then share
    order = np.argsort(follower, kind="stable")
    key = follower[order] * len(world.items) + item[which[order]]
    keep = order[np.sort(np.unique(key, return_index=True)[1])]
    follower, which = follower[keep], which[keep]
    rank = np.arange(len(follower)) - np.searchsorted(follower, follower, side="left")
    ok = rank < cfg.max_social_per_session
    return _Deliveries(follower[ok], item[which[ok]], share_id[which[ok]], rank[ok])

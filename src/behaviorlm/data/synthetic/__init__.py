"""The built-in behaviour simulator: a shop with a social network and planted causes.

``simulate`` draws a catalogue (items in categories, titles of category words, prices,
complementary pairs, city-local and app-only items), users (sparse category tastes, a home
city, a main device, an influence strength), a follow graph with a power law of followers, and
then sessions window by window: searches, views, a view -> cart -> purchase funnel, ratings,
likes, comments and shares.

Five causes are planted, and every event records its own in ``truth_cause_group`` (and the
causing event in ``truth_cause_event`` where there is one):

* ``history``: after a purchase, the next session views the item's complement (``complement_id``)
  with chance ``p_complement``; cause = the purchase;
* ``social``: a share makes each follower view the item in the next window with the sharer's
  ``truth_influence``; the follower's view has ``source = "social"``, cause = the share;
* ``search``: views after a search are steered into the searched category; cause = the search;
  such a view is a click on a search result and has ``source = "search"``;
* ``location``: local items (items column ``city``) are shown only to users of that city;
* ``device``: app-only items (items column ``app_only``) are shown only on ``mobile_app``.

The funnel events after a view (like, comment, cart, purchase, rate, share) carry the cause of
that view. Events are sorted by user (``u0``, ``u1``, ... in number order) then time, and
``event_id`` is the row number; timestamps are seconds since the epoch and strictly increase
within a user. Same config and seed give identical frames.

Examples
--------
>>> from behaviorlm.data.raw import RAW_EVENT_DTYPES
>>> raw = simulate(50, seed=1)
>>> raw.events.columns[:9] == list(RAW_EVENT_DTYPES)
True
>>> sorted(raw.events["truth_cause_group"].unique())
['device', 'history', 'location', 'none', 'search', 'social']
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from behaviorlm.data.raw import RawData
from behaviorlm.data.synthetic.config import SimConfig
from behaviorlm.data.synthetic.engine import simulate_events
from behaviorlm.data.synthetic.output import (
    events_frame,
    follows_frame,
    items_frame,
    users_frame,
    write_simulation,
)
from behaviorlm.data.synthetic.world import make_world

__all__ = ["SimConfig", "simulate", "write_simulation"]


def simulate(
    n_users: int | None = None,
    *,
    seed: int | None = None,
    events_per_user: float | None = None,
    config: SimConfig | None = None,
) -> RawData:
    """Simulate a shop's behaviour log with known causes.

    Parameters
    ----------
    n_users : int, optional
        Number of users (default: the config's, 1000).
    seed : int, optional
        Random seed (default: the config's, 0).
    events_per_user : float, optional
        Mean events per user (default: the config's, 40).
    config : SimConfig, optional
        Every other setting; ``n_users``, ``seed`` and ``events_per_user`` override its fields.

    Returns
    -------
    RawData
        ``events`` (schema columns, then ``event_id``, ``truth_cause_event``,
        ``truth_cause_group``), ``items``, ``users`` (with ``truth_influence``) and ``follows``;
        ``name="simulator"``, ``has_time=True`` and a report step ``"simulate"``.

    Examples
    --------
    >>> raw = simulate(n_users=50, seed=0)
    >>> raw.events.height > 0, raw.users.height
    (True, 50)
    >>> raw.events.equals(simulate(n_users=50, seed=0).events)
    True
    """
    cfg = config if config is not None else SimConfig()
    changes: dict[str, int | float] = {}
    if n_users is not None:
        changes["n_users"] = n_users
    if seed is not None:
        changes["seed"] = seed
    if events_per_user is not None:
        changes["events_per_user"] = events_per_user
    cfg = replace(cfg, **changes)  # type: ignore[arg-type]
    world_rng, event_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(2)
    )
    world = make_world(cfg, world_rng)
    events = events_frame(world, simulate_events(cfg, world, event_rng))
    raw = RawData(
        events=events,
        items=items_frame(world),
        users=users_frame(world),
        follows=follows_frame(world),
        name="simulator",
        has_time=True,
    )
    raw.report.add("simulate", events.height, events.height)
    return raw

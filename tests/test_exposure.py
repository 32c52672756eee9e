"""Exposure rates learned from the log: trials, hits, shrinkage, and the simulator's truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

import behaviorlm as blm
from behaviorlm.data.preprocess import PrepareConfig
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.explain.exposure import HORIZON_S, _prior_strength

KEEP_ALL = PrepareConfig(min_user_events=1, min_item_events=1)
LATE = 100 + HORIZON_S + 10


def ev(
    user: str, item: str, t: int, action: str = "view", source: str = "self"
) -> dict[str, object]:
    return {"user_id": user, "item_id": item, "timestamp": t, "action": action, "source": source}


def log(has_time: bool = True, sources: bool = True) -> blm.Dataset:
    """Sharer a (followers b, c, d, and e since t=200) and sharer f (follower b)."""
    rows = [
        ev("a", "x", 90),
        ev("a", "x", 100, "share"),  # trials b, c, d (e follows later)
        ev("b", "x", 150, source="social"),  # hit
        ev("c", "x", 120),  # not a social view: no hit
        ev("c", "x", LATE, source="social"),  # after the horizon: no hit
        ev("d", "x", 50, source="social"),  # before the share: no hit
        ev("e", "x", 150, source="social"),  # e did not follow a yet: no trial
        ev("a", "y", 290),
        ev("a", "y", 300, "share"),  # trials b, c, d, e
        ev("b", "y", 400, source="social"),  # hit
        ev("e", "y", 350, source="social"),  # hit
        ev("f", "z", 490),
        ev("f", "z", 500, "share"),  # trial b, no hit
        ev("b", "z", 10),  # before the share
    ]
    events = pl.DataFrame(
        {name: [row.get(name) for row in rows] for name in RAW_EVENT_DTYPES},
        schema=RAW_EVENT_DTYPES,
    )
    if not sources:
        events = events.with_columns(pl.lit("self").alias("source"))
    follows = pl.DataFrame(
        {
            "follower_id": ["b", "c", "d", "e", "b"],
            "followee_id": ["a", "a", "a", "a", "f"],
            "since": [None, 0, 0, 200, None],
        },
        schema={"follower_id": pl.String(), "followee_id": pl.String(), "since": pl.Int64()},
    )
    return blm.preprocess(RawData(events=events, follows=follows, has_time=has_time), KEEP_ALL)


def uid(ds: blm.Dataset, name: str) -> int:
    return int(ds.user_index([name])[0])


def test_trials_and_hits_follow_the_rules_of_a_social_view() -> None:
    ds = log()
    exposure = blm.estimate_exposure(ds, "share")
    assert exposure is not None
    a, f, b = uid(ds, "a"), uid(ds, "f"), uid(ds, "b")
    assert (exposure.trials[a], exposure.hits[a]) == (7, 3)
    assert (exposure.trials[f], exposure.hits[f]) == (1, 0)
    assert exposure.trials.sum() == 8
    assert exposure.pooled == pytest.approx(3 / 8)
    s = exposure.strength
    assert exposure.rate[a] == pytest.approx((3 + s * 3 / 8) / (7 + s), rel=1e-6)
    assert exposure.rate[f] == pytest.approx((0 + s * 3 / 8) / (1 + s), rel=1e-6)
    # no trials, or a user not in the data: the pooled rate
    assert exposure.of(b) == pytest.approx(3 / 8)
    assert exposure.of(0) == pytest.approx(3 / 8)
    assert exposure.rates(np.array([a, 0, 99])).tolist() == pytest.approx(
        [exposure.rate[a], 3 / 8, 3 / 8]
    )


def test_without_a_horizon_any_later_social_view_counts() -> None:
    ds = log()
    a = uid(ds, "a")
    exposure = blm.estimate_exposure(ds, "share", horizon_s=None)
    assert exposure is not None
    assert exposure.hits[a] == 4  # c's late social view of x
    untimed = blm.estimate_exposure(log(has_time=False), "share")
    assert untimed is not None
    assert untimed.hits[a] == 4


def test_no_estimate_where_the_log_cannot_tell() -> None:
    assert blm.estimate_exposure(log(sources=False), "share") is None  # no social views
    assert blm.estimate_exposure(log(), "purchase") is None  # no such action
    no_graph = log()
    no_graph.follows = no_graph.follows.clear()
    assert blm.estimate_exposure(no_graph, "share") is None


def test_prior_strength_recovers_the_spread_between_users() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(2.0, 6.0, 4000)  # a + b = 8
    n = rng.integers(5, 60, 4000)
    h = rng.binomial(n, p)
    pooled = float(h.sum() / n.sum())
    assert _prior_strength(n, h, pooled) == pytest.approx(8.0, rel=0.25)
    same = rng.binomial(n, 0.3)  # no spread: everyone gets the pooled rate
    assert _prior_strength(n, same, float(same.sum() / n.sum())) >= 100


def test_exposure_ranks_users_like_the_simulators_planted_influence() -> None:
    ds = blm.preprocess(blm.simulate(1000, seed=2, events_per_user=120))
    exposure = blm.estimate_exposure(ds, "share")
    assert exposure is not None
    truth = ds.users.sort("user")["truth_influence"].to_numpy()
    users = np.flatnonzero(exposure.trials[1:] >= 20) + 1
    assert len(users) >= 100
    rho = spearmanr(exposure.rate[users], truth[users - 1]).statistic
    assert rho > 0.75
    likes = blm.estimate_exposure(ds, "like")  # likes do not reach followers there
    assert likes is not None
    assert likes.pooled < 0.2 * exposure.pooled

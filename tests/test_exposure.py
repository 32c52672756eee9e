"""Exposure rates learned from the log: trials, hits, shrinkage, and the simulator's truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

import behaviorlm as blm
from behaviorlm.data.errors import DataError
from behaviorlm.data.preprocess import PrepareConfig
from behaviorlm.data.raw import RAW_EVENT_DTYPES, RawData
from behaviorlm.explain.exposure import HORIZON_S, _prior_strength

KEEP_ALL = PrepareConfig(min_user_events=1, min_item_events=1)
LATE = 100 + HORIZON_S + 10


def ev(
    user: str, item: str, t: int, action: str = "view", source: str = "self"
) -> dict[str, object]:
    return {"user_id": user, "item_id": item, "timestamp": t, "action": action, "source": source}


def dataset(
    rows: list[dict[str, object]],
    follows: list[tuple[str, str, int | None]],
    has_time: bool = True,
) -> blm.Dataset:
    """A data set of raw rows and (follower, followee, since) edges, every row kept."""
    events = pl.DataFrame(
        {name: [row.get(name) for row in rows] for name in RAW_EVENT_DTYPES},
        schema=RAW_EVENT_DTYPES,
    )
    edges = pl.DataFrame(
        {
            "follower_id": [f for f, _, _ in follows],
            "followee_id": [g for _, g, _ in follows],
            "since": [t for _, _, t in follows],
        },
        schema={"follower_id": pl.String(), "followee_id": pl.String(), "since": pl.Int64()},
    )
    return blm.preprocess(RawData(events=events, follows=edges, has_time=has_time), KEEP_ALL)


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
    if not sources:
        rows = [{**row, "source": "self"} for row in rows]
    follows = [("b", "a", None), ("c", "a", 0), ("d", "a", 0), ("e", "a", 200), ("b", "f", None)]
    return dataset(rows, follows, has_time)


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


def test_the_window_is_open_at_the_act_and_closed_at_the_horizon() -> None:
    rows = [
        ev("a", "x", 100, "share"),  # a trial for b only: c follows a from t=200
        ev("b", "x", 100, source="social"),  # at the share itself: not after it
        ev("c", "x", 150, source="social"),  # c does not follow a yet: no trial
        ev("a", "y", 200, "share"),  # trials b and c (c's follow starts at this very second)
        ev("b", "y", 200 + HORIZON_S, source="social"),  # the last second of the window: a hit
        ev("c", "y", 250, source="social"),  # a hit
    ]
    ds = dataset(rows, [("b", "a", None), ("c", "a", 200)])
    exposure = blm.estimate_exposure(ds, "share")
    assert exposure is not None
    a = uid(ds, "a")
    assert (exposure.trials[a], exposure.hits[a]) == (3, 2)


def test_a_view_is_credited_once_to_the_latest_act_before_it() -> None:
    rows = [
        ev("a", "x", 100, "share"),
        ev("a", "x", 110, "share"),  # a shares x again: the view goes to this one
        ev("f", "x", 105, "share"),  # f, also followed by b, shared x between the two
        ev("g", "x", 120, "like"),  # a like after the shares does not take the view...
        ev("b", "x", 150, source="social"),
        ev("g", "y", 300, "like"),
        ev("g", "y", 305, "share"),  # ...but a share after a like does
        ev("b", "y", 310, source="social"),
    ]
    follows = [("b", "a", None), ("b", "f", None), ("b", "g", None)]
    ds = dataset(rows, follows)
    shares = blm.estimate_exposure(ds, "share")
    assert shares is not None
    a, f, g = uid(ds, "a"), uid(ds, "f"), uid(ds, "g")
    assert (shares.trials[a], shares.hits[a]) == (2, 0)
    assert (shares.trials[f], shares.hits[f]) == (1, 0)
    assert (shares.trials[g], shares.hits[g]) == (1, 1)
    likes = blm.estimate_exposure(ds, "like")
    assert likes is not None
    assert (likes.trials[g], likes.hits[g]) == (2, 1)  # x went to the like, y to the share
    assert shares.hits.sum() + likes.hits.sum() == 2  # one credit per view


def test_without_a_horizon_any_later_social_view_counts() -> None:
    ds = log()
    a = uid(ds, "a")
    exposure = blm.estimate_exposure(ds, "share", horizon_s=None)
    assert exposure is not None
    assert exposure.hits[a] == 4  # c's late social view of x


def test_without_real_times_order_and_follow_dates_are_not_checked() -> None:
    untimed = log(has_time=False)
    exposure = blm.estimate_exposure(untimed, "share")
    assert exposure is not None
    a = uid(untimed, "a")
    # e's follow date is ignored (trials 4 + 4) and d's earlier view of x counts too
    assert exposure.trials[a] == 8
    assert exposure.hits[a] == 6


def test_no_estimate_where_the_log_cannot_tell() -> None:
    assert blm.estimate_exposure(log(sources=False), "share") is None  # no social views
    no_graph = log()
    no_graph.follows = no_graph.follows.clear()
    assert blm.estimate_exposure(no_graph, "share") is None
    missed = dataset(
        [ev("a", "x", 100, "share"), ev("b", "x", 100 + 2 * HORIZON_S, source="social")],
        [("b", "a", None)],
    )
    assert blm.estimate_exposure(missed, "share") is None  # no view credited to any act
    # views credited to shares and none to likes: likes are not seen (rate 0), not unknown
    unseen = dataset(
        [
            ev("a", "x", 100, "like"),
            ev("a", "y", 200, "share"),
            ev("b", "y", 250, source="social"),
        ],
        [("b", "a", None)],
    )
    likes = blm.estimate_exposure(unseen, "like")
    assert likes is not None
    assert (likes.pooled, likes.of(uid(unseen, "a"))) == (0.0, 0.0)
    assert likes.relative().of(uid(unseen, "a")) == 1.0  # a model's uplift holds it already
    with pytest.raises(DataError, match="shrae"):
        blm.estimate_exposure(log(), "shrae")


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
    assert likes.pooled < 0.02 * exposure.pooled


def test_the_view_action_is_read_as_actions_are_and_checked() -> None:
    import behaviorlm as blm
    from behaviorlm.data.errors import DataError

    ds = blm.preprocess(blm.simulate(200, seed=1))
    plain = blm.estimate_exposure(ds, "share")
    assert plain is not None
    folded = blm.estimate_exposure(ds, "share", view="View")
    assert folded is not None
    assert folded.pooled == plain.pooled
    with pytest.raises(DataError, match="'vieww' does not occur"):
        blm.estimate_exposure(ds, "share", view="vieww")
    with pytest.raises(ValueError, match="horizon_s must be at least 0"):
        blm.estimate_exposure(ds, "share", horizon_s=-5)

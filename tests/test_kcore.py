"""The k-core filter against the textbook round-by-round definition."""

from __future__ import annotations

import numpy as np
import pytest

from behaviorlm.data.kcore import KCore, RoundLimitError, k_core


def rounds_by_definition(
    users: np.ndarray, items: np.ndarray, min_user: int, min_item: int
) -> tuple[np.ndarray, int, int, int]:
    """Each round recounts every kept event and drops those of users and items under the minimum."""
    keep = np.ones(len(users), dtype=bool)
    rounds = by_item = by_user = 0
    while True:
        user_count = np.bincount(users[keep], minlength=users.max(initial=0) + 1)
        item_count = np.bincount(items[keep] + 1, minlength=items.max(initial=0) + 2)
        item_count[0] = min_item
        low_item = keep & (item_count[items + 1] < min_item)
        low_user = keep & ~low_item & (user_count[users] < min_user)
        if not (low_item | low_user).any():
            return keep, rounds, by_item, by_user
        rounds += 1
        by_item += int(low_item.sum())
        by_user += int(low_user.sum())
        keep &= ~(low_item | low_user)


@pytest.mark.parametrize("seed", range(40))
def test_equals_the_round_by_round_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    users = rng.integers(0, int(rng.integers(1, 40)), n)
    items = rng.integers(-1, int(rng.integers(1, 40)), n)  # -1: a search
    min_user, min_item = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    core = k_core(users, items, min_user, min_item)
    keep, rounds, by_item, by_user = rounds_by_definition(users, items, min_user, min_item)
    assert core.keep.tolist() == keep.tolist()
    assert (core.rounds, core.by_item, core.by_user) == (rounds, by_item, by_user)
    assert core.users_after == len(np.unique(users[keep]))
    assert core.items_after == len(np.unique(items[keep & (items >= 0)]))


def test_a_chain_peels_one_link_a_round_from_both_ends() -> None:
    links = np.arange(50)
    users = np.repeat(links, 2)
    items = np.stack([links, links + 1], axis=1).ravel()
    core = k_core(users, items, 2, 2)
    assert not core.keep.any()
    assert core.rounds == 50
    assert (core.users_before, core.items_before) == (50, 51)
    assert (core.users_after, core.items_after) == (0, 0)


def test_searches_count_for_their_user_and_go_with_it() -> None:
    # user 0: one item event and two searches (3 >= 3); user 1: two item events (< 3)
    core = k_core(np.array([0, 0, 0, 1, 1]), np.array([0, -1, -1, 0, 1]), 3, 1)
    assert core.keep.tolist() == [True, True, True, False, False]
    assert (core.rounds, core.by_user, core.items_after) == (1, 2, 1)


def test_round_limit() -> None:
    links = np.arange(10)
    users, items = np.repeat(links, 2), np.stack([links, links + 1], axis=1).ravel()
    with pytest.raises(RoundLimitError):
        k_core(users, items, 2, 2, max_rounds=3)
    assert isinstance(k_core(users, items, 2, 2, max_rounds=10), KCore)


def test_empty_log() -> None:
    core = k_core(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 2, 2)
    assert core.keep.shape == (0,)
    assert core.rounds == 0

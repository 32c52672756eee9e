"""The simulated world before anything happens: the catalogue, the users and the follow graph.

Everything is held as integer codes and numpy arrays; string ids and titles are only built
when the output frames are made (``output.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from behaviorlm.data.synthetic.config import SimConfig
from behaviorlm.data.synthetic.sampling import F64, GroupSampler
from behaviorlm.data.synthetic.vocab import DEVICES, Vocabulary, city_names, vocabulary
from behaviorlm.schema import Bool, Int

#: Users' category tastes are drawn in blocks of this many users to bound temporary memory.
_TASTE_BLOCK = 1 << 16
#: Category tastes below this share are dropped (the favourite category is always kept).
_MIN_TASTE = 0.01


@dataclass
class Items:
    """The catalogue: one entry per item, item ``k`` is external id ``i{k}``."""

    category: Int
    popularity: F64
    quality: F64
    price: F64
    city: Int  # -1: sold everywhere
    app_only: Bool
    complement: Int  # -1: none
    modifier: Int  # index into Vocabulary.modifiers
    modifier2: Int
    noun: Int  # index into Vocabulary.nouns
    model_letter: Int
    model_number: Int

    def __len__(self) -> int:
        return len(self.category)


@dataclass
class Users:
    """Users and their hidden traits; user ``u`` is external id ``u{u}``."""

    city: Int
    device: Int  # main device code (index into DEVICES)
    activity: F64  # mean 1; scales events_per_user
    influence: F64  # chance a follower views what this user shares
    taste: GroupSampler  # draws a category for a user

    def __len__(self) -> int:
        return len(self.city)


@dataclass
class Follows:
    """Directed follow edges (follower -> followee), and followers by followee (CSR)."""

    follower: Int
    followee: Int
    since: Int
    followers_start: Int  # (n_users + 1,) followers of v: followers[followers_start[v]:...[v+1]]
    followers: Int


@dataclass
class World:
    """Everything the rounds of the simulation draw from."""

    vocab: Vocabulary
    cities: list[str]
    items: Items
    users: Users
    follows: Follows
    browse: GroupSampler  # items sold everywhere and not app-only, by category
    local: GroupSampler  # local items, by city
    app: GroupSampler  # app-only items (one group)


def _zipf(n: int, exponent: float) -> F64:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return np.asarray(w / w.sum())


def _pick_within(
    rng: np.random.Generator, start: Int, groups: Int, exclude: Int | None = None
) -> Int:
    """A uniform index in ``start[g]:start[g + 1]`` for each ``g`` of ``groups``.

    With ``exclude``, the index differs from it (unless the group has a single entry).
    """
    count = start[groups + 1] - start[groups]
    if exclude is None:
        return np.asarray(start[groups] + (rng.random(len(groups)) * count).astype(np.int64))
    # shift past the excluded position: uniform over the other count - 1 entries
    local = exclude - start[groups]
    other = (
        local + 1 + (rng.random(len(groups)) * np.maximum(count - 1, 1)).astype(np.int64)
    ) % count
    return np.asarray(start[groups] + other)


def make_items(
    cfg: SimConfig, vocab: Vocabulary, rng: np.random.Generator
) -> tuple[Items, GroupSampler]:
    """The catalogue and the sampler of items every user can see (by category)."""
    n, C = cfg.item_count, vocab.n
    category = rng.choice(C, size=n, p=_zipf(C, 0.6)[rng.permutation(C)])
    category[:C] = np.arange(C)  # every category has an item
    popularity = rng.lognormal(0.0, cfg.popularity_sigma, n)
    quality = rng.normal(0.0, 0.5, n)
    price = vocab.price[category] * rng.lognormal(0.0, cfg.price_sigma, n)
    price = np.where(price >= 2.0, np.floor(price) + 0.99, np.round(price, 2))

    kind = rng.random(n)
    local = kind < cfg.p_local_item
    app_only = (kind >= cfg.p_local_item) & (kind < cfg.p_local_item + cfg.p_app_only_item)
    # the most popular item of every category is sold everywhere, so browsing never runs dry
    by_cat = np.lexsort((-popularity, category))
    top = by_cat[np.r_[True, category[by_cat][1:] != category[by_cat][:-1]]]
    local[top] = False
    app_only[top] = False
    city = np.full(n, -1, dtype=np.int64)
    city[local] = rng.choice(cfg.n_cities, size=int(local.sum()), p=_zipf(cfg.n_cities, 0.8))

    visible = ~local & ~app_only
    browse = GroupSampler(category, np.where(visible, popularity, 0.0), C)
    # a complement is any visible item of the partner category, popular or not
    partners = GroupSampler(category, visible.astype(np.float64), C)
    complement = partners.sample(vocab.partner[category].astype(np.int64), rng)
    complement[(rng.random(n) >= cfg.p_has_complement) | (complement == np.arange(n))] = -1

    modifier = _pick_within(rng, vocab.mod_start, category)
    items = Items(
        category=category.astype(np.int64),
        popularity=popularity,
        quality=quality,
        price=price,
        city=city,
        app_only=app_only,
        complement=complement,
        modifier=modifier,
        modifier2=_pick_within(rng, vocab.mod_start, category, exclude=modifier),
        noun=_pick_within(rng, vocab.noun_start, category),
        model_letter=rng.integers(0, 20, n),
        model_number=rng.integers(1, 100, n) * 10,
    )
    return items, browse


def _tastes(cfg: SimConfig, rng: np.random.Generator) -> GroupSampler:
    """Sparse category tastes: Dirichlet shares, small ones dropped, as a per-user sampler."""
    C = cfg.n_categories
    rows, cols, weights = [], [], []
    for start in range(0, cfg.n_users, _TASTE_BLOCK):
        m = min(_TASTE_BLOCK, cfg.n_users - start)
        taste = rng.dirichlet(np.full(C, cfg.taste_alpha), size=m)
        keep = taste >= _MIN_TASTE
        keep[np.arange(m), taste.argmax(axis=1)] = True
        r, c = np.nonzero(keep)
        rows.append(r + start)
        cols.append(c)
        weights.append(taste[r, c])
    return GroupSampler(
        np.concatenate(rows), np.concatenate(weights), cfg.n_users, values=np.concatenate(cols)
    )


def make_users(cfg: SimConfig, rng: np.random.Generator) -> Users:
    n = cfg.n_users
    shares = np.asarray(cfg.device_shares, dtype=np.float64)
    sigma = cfg.activity_sigma
    return Users(
        city=rng.choice(cfg.n_cities, size=n, p=_zipf(cfg.n_cities, 0.8)).astype(np.int64),
        device=rng.choice(len(DEVICES), size=n, p=shares / shares.sum()).astype(np.int64),
        activity=rng.lognormal(-0.5 * sigma * sigma, sigma, n),
        influence=rng.beta(cfg.influence_a, cfg.influence_b, n),
        taste=_tastes(cfg, rng),
    )


def make_follows(cfg: SimConfig, users: Users, rng: np.random.Generator) -> Follows:
    """A follow graph whose in-degrees follow a power law (a few influencers).

    Every user draws a Poisson number of others to follow, each chosen with probability
    proportional to a Pareto "attractiveness", so in-degrees inherit its tail; a share of
    follows stays in the follower's city. Draws of oneself and repeated draws are dropped
    (not drawn again), so users follow fewer than ``cfg.follows_per_user`` on average.
    """
    n = cfg.n_users
    out_degree = np.minimum(rng.poisson(cfg.follows_per_user, n), n - 1)
    follower = np.repeat(np.arange(n, dtype=np.int64), out_degree)
    attract = rng.pareto(cfg.follow_tail, n) + 1.0
    followee = np.empty(len(follower), dtype=np.int64)
    same = rng.random(len(follower)) < cfg.p_follow_same_city
    by_city = GroupSampler(users.city, attract, cfg.n_cities)
    followee[same] = by_city.sample(users.city[follower[same]], rng)
    anyone = GroupSampler(np.zeros(n, dtype=np.int64), attract, 1)
    followee[~same] = anyone.sample(np.zeros(int((~same).sum()), dtype=np.int64), rng)
    key = np.sort((follower * n + followee)[follower != followee])
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key  # unique edges
    follower, followee = key // n, key % n
    since = cfg.start_time - rng.integers(86_400, 2 * 365 * 86_400, len(key))
    order = np.argsort(followee, kind="stable")
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(followee, minlength=n), out=start[1:])
    return Follows(follower, followee, since, start, follower[order])


def make_world(cfg: SimConfig, rng: np.random.Generator) -> World:
    """Draw the catalogue, the users and the follow graph."""
    vocab = vocabulary(cfg.n_categories)
    items, browse = make_items(cfg, vocab, rng)
    users = make_users(cfg, rng)
    follows = make_follows(cfg, users, rng)
    popularity = items.popularity
    local = GroupSampler(
        np.maximum(items.city, 0), np.where(items.city >= 0, popularity, 0.0), cfg.n_cities
    )
    app = GroupSampler(
        np.zeros(len(items), dtype=np.int64), np.where(items.app_only, popularity, 0.0), 1
    )
    return World(vocab, city_names(cfg.n_cities), items, users, follows, browse, local, app)

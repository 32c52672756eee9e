"""SimConfig: every knob of the simulated shop, with defaults that give a realistic log."""

from __future__ import annotations

from dataclasses import dataclass, fields

from behaviorlm.config import check_finite
from behaviorlm.data.synthetic.vocab import DEVICES

#: Funnel actions an item entry can add after its view, in the order they happen.
FUNNEL_STEPS = 7  # view, like, comment, cart, purchase, rate, share


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """Settings of the behaviour simulator (sizes, time, tastes, funnel and planted causes).

    Probabilities are per session (``p_search``, ``p_local_view``, ``p_app_view``,
    ``p_complement``) or per viewed item (the funnel ``p_like`` ... ``p_share``).

    Attributes
    ----------
    n_users, n_items, n_categories, n_cities : int
        Sizes; ``n_items=None`` means ``max(100, n_users // 2)``.
    events_per_user : float
        Mean number of events per user (approximate: social views and complements add a few).
        Sessions are scaled down for the views that shares set off, as long as the share
        cascade dies out; with ``p_share`` well above its default (0.4 and up with the default
        follow graph) shares set off shares and the log outgrows the mean asked for (0.5:
        about 2.5 times), and the windows cap it at one session per user and window.
    seed : int
        Seed of the one random generator; the same config gives identical output.
    n_rounds, round_hours : int
        The simulation runs ``n_rounds`` time windows of ``round_hours`` hours; a user has at
        most one session per window, so sessions are hours to days apart.
    start_time : int
        Seconds since the epoch at which the first window opens.
    mean_gap_seconds, max_gap_seconds : float, int
        Seconds between consecutive events of a session (exponential, capped).
    activity_sigma : float
        Spread (lognormal sigma) of users' activity around ``events_per_user``.
    taste_alpha : float
        Dirichlet concentration of users' category tastes (small = few favourite categories).
    device_shares : tuple of float
        Share of users whose main device is mobile_app, mobile_web, desktop.
    p_main_device : float
        Chance that a session uses the user's main device (else one of the others).
    popularity_sigma, price_sigma : float
        Lognormal spread of item popularity and of prices around their category's price.
    p_local_item, p_app_only_item : float
        Share of items sold in one city only / shown on the app only.
    p_has_complement : float
        Share of items with a complementary item (``complement_id``) in the partner category.
    views_per_session, max_views_per_session : float, int
        Mean and cap of browsing views in a session.
    p_search, p_search_explore, p_search_steer : float
        Chance a session starts with a search; chance its category is new to the user (else
        drawn from their taste); chance each later view of that session is steered into it.
    p_local_view, p_app_view : float
        Chance a session shows one local item of the user's city / one app-only item (on the
        app only).
    p_like, p_comment, p_cart, p_purchase, p_rate, p_share : float
        Funnel after a view; ``p_purchase`` is given a cart, ``p_rate`` given a purchase.
    complement_cart_boost : float
        Factor on ``p_cart`` for a complement viewed because of an earlier purchase.
    p_complement : float
        Chance that the session after a purchase views that item's complement.
    follows_per_user, follow_tail, p_follow_same_city : float
        Mean follows each user draws (a Poisson count; a draw of oneself or of a user
        already followed is dropped, so the realised mean is lower, the more so with fewer
        users: 7.6 of 8 with 1,000 users and 6.8 with 100, seed 0);
        Pareto tail index of how attractive users are to follow (smaller = a few bigger
        influencers); share of follows inside the user's city.
    influence_a, influence_b : float
        Beta distribution of users' influence: the chance that a follower views what they share.
    max_social_per_session : int
        Cap on social views delivered to one user in one window (the first ones are kept).

    Examples
    --------
    >>> SimConfig(n_users=50).item_count
    100
    """

    n_users: int = 1000
    n_items: int | None = None
    n_categories: int = 16
    n_cities: int = 8
    events_per_user: float = 40.0
    seed: int = 0
    n_rounds: int = 180
    round_hours: int = 6
    start_time: int = 1_700_000_000
    mean_gap_seconds: float = 20.0
    max_gap_seconds: int = 45
    activity_sigma: float = 0.8
    taste_alpha: float = 0.2
    device_shares: tuple[float, ...] = (0.45, 0.3, 0.25)
    p_main_device: float = 0.85
    popularity_sigma: float = 1.2
    price_sigma: float = 0.5
    p_local_item: float = 0.1
    p_app_only_item: float = 0.05
    p_has_complement: float = 0.6
    views_per_session: float = 3.0
    max_views_per_session: int = 30
    p_search: float = 0.3
    p_search_explore: float = 0.5
    p_search_steer: float = 0.9
    p_local_view: float = 0.25
    p_app_view: float = 0.3
    p_like: float = 0.08
    p_comment: float = 0.02
    p_cart: float = 0.15
    p_purchase: float = 0.4
    p_rate: float = 0.3
    p_share: float = 0.05
    complement_cart_boost: float = 2.0
    p_complement: float = 0.5
    follows_per_user: float = 8.0
    follow_tail: float = 1.3
    p_follow_same_city: float = 0.4
    influence_a: float = 2.0
    influence_b: float = 6.0
    max_social_per_session: int = 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"SimConfig.{f.name} must be in [0, 1], got {value}")
        positive = [
            "n_users",
            "n_categories",
            "n_cities",
            "n_rounds",
            "round_hours",
            "max_gap_seconds",
            "max_views_per_session",
            "mean_gap_seconds",
            "events_per_user",  # a log without events is no data set
            "follow_tail",
            "influence_a",
            "influence_b",
            "taste_alpha",
            "views_per_session",
        ]
        for name in positive:  # written so that NaN fails too
            if not getattr(self, name) > 0:
                raise ValueError(f"SimConfig.{name} must be positive, got {getattr(self, name)}")
        non_negative = [
            "follows_per_user",
            "activity_sigma",
            "popularity_sigma",
            "price_sigma",
            "complement_cart_boost",
            "max_social_per_session",
        ]
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"SimConfig.{name} must be >= 0, got {getattr(self, name)}")
        check_finite(self, "SimConfig.")  # an infinite gap, price or share means nothing
        if self.item_count < self.n_categories:
            raise ValueError(
                f"SimConfig.n_items ({self.item_count}) must be at least n_categories "
                f"({self.n_categories})"
            )
        if self.p_local_item + self.p_app_only_item > 1.0:
            raise ValueError("SimConfig.p_local_item + p_app_only_item must be at most 1")
        shares = self.device_shares
        if len(shares) != len(DEVICES) or min(shares) < 0:
            raise ValueError(
                f"SimConfig.device_shares needs {len(DEVICES)} non-negative shares "
                f"({', '.join(DEVICES)}), got {self.device_shares}"
            )
        if sum(self.device_shares) <= 0:
            raise ValueError("SimConfig.device_shares must not all be 0")
        if not 1.0 <= self.views_per_session <= self.max_views_per_session:
            raise ValueError(
                "SimConfig.views_per_session must be at least 1 (a session shows an item) and "
                "at most max_views_per_session"
            )
        # a session (social views, complement, search, views, local and app views, each with its
        # funnel) must fit in one window, so windows keep every user's events in time order
        longest = (self.max_social_per_session + self.max_views_per_session + 4) * FUNNEL_STEPS
        if longest * self.max_gap_seconds >= self.round_hours * 3600:
            raise ValueError(
                "SimConfig: the longest session does not fit in one window; lower "
                "max_gap_seconds, max_views_per_session or max_social_per_session, or raise "
                "round_hours"
            )

    @property
    def item_count(self) -> int:
        """``n_items``, or its default ``max(100, n_users // 2)``."""
        return self.n_items if self.n_items is not None else max(100, self.n_users // 2)

    @property
    def round_seconds(self) -> int:
        return self.round_hours * 3600

    def events_per_entry(self) -> float:
        """Expected events of one viewed item: the view and its funnel."""
        return (
            1.0
            + self.p_like
            + self.p_comment
            + self.p_cart * (1.0 + self.p_purchase * (1.0 + self.p_rate))
            + self.p_share
        )

"""The simulated shop's words: categories, their title words and queries, cities and devices.

Every category owns its own modifier and noun words (no word is shared between the sixteen base
categories), so a query or a title names its category. With more than sixteen categories the
base ones repeat as product lines ("kids audio", "eco kitchen", ...) whose titles and queries
carry the line word as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from behaviorlm.schema import F32, FEATURE_GROUPS, I32, Int

#: base category -> (modifiers, nouns, typical price, complementary category)
BASE_CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float, str]] = {
    "audio": (
        ("wireless", "noise-cancelling", "bass", "studio", "portable", "bluetooth"),
        ("headphones", "earbuds", "speaker", "soundbar", "amplifier"),
        80.0,
        "accessories",
    ),
    "phones": (
        ("unlocked", "dual-sim", "5g", "flip", "rugged", "compact"),
        ("smartphone", "phone", "handset"),
        450.0,
        "accessories",
    ),
    "accessories": (
        ("protective", "slim", "fast-charging", "magsafe", "braided", "clear"),
        ("case", "charger", "cable", "screen-protector", "power-bank"),
        20.0,
        "phones",
    ),
    "laptops": (
        ("ultrabook", "gaming", "thin", "touchscreen", "convertible", "business"),
        ("laptop", "notebook", "chromebook"),
        900.0,
        "accessories",
    ),
    "cameras": (
        ("mirrorless", "action", "instant", "full-frame", "zoom", "vlogging"),
        ("camera", "lens", "tripod", "camcorder"),
        350.0,
        "accessories",
    ),
    "books": (
        ("bestselling", "illustrated", "classic", "hardcover", "paperback", "annotated"),
        ("novel", "cookbook", "biography", "guide", "anthology"),
        15.0,
        "home",
    ),
    "kitchen": (
        ("stainless", "nonstick", "electric", "cast-iron", "ceramic", "induction"),
        ("pan", "blender", "knife", "kettle", "toaster"),
        45.0,
        "coffee",
    ),
    "coffee": (
        ("espresso", "arabica", "fair-trade", "dark-roast", "single-origin", "decaf"),
        ("beans", "grinder", "coffee-maker", "filter", "mug"),
        25.0,
        "kitchen",
    ),
    "fitness": (
        ("adjustable", "resistance", "ergonomic", "heavy-duty", "non-slip", "home-gym"),
        ("dumbbells", "treadmill", "yoga-mat", "kettlebell", "bands"),
        60.0,
        "outdoor",
    ),
    "outdoor": (
        ("waterproof", "lightweight", "insulated", "ultralight", "all-season", "trail"),
        ("tent", "backpack", "sleeping-bag", "rain-jacket", "hiking-boots"),
        90.0,
        "fitness",
    ),
    "toys": (
        ("educational", "wooden", "remote-control", "plush", "stacking", "glow"),
        ("blocks", "puzzle", "robot", "doll", "toy-car"),
        25.0,
        "games",
    ),
    "games": (
        ("multiplayer", "co-op", "strategy", "retro", "open-world", "deluxe"),
        ("board-game", "video-game", "console", "controller", "card-game"),
        50.0,
        "toys",
    ),
    "fashion": (
        ("casual", "slim-fit", "vintage", "cotton", "denim", "linen"),
        ("shirt", "jeans", "dress", "sneakers", "sweater"),
        40.0,
        "beauty",
    ),
    "beauty": (
        ("hydrating", "vegan", "matte", "fragrance-free", "anti-aging", "mineral"),
        ("serum", "lipstick", "moisturizer", "perfume", "shampoo"),
        22.0,
        "fashion",
    ),
    "home": (
        ("scented", "minimalist", "velvet", "handwoven", "modern", "rustic"),
        ("lamp", "candle", "rug", "cushion", "shelf"),
        35.0,
        "garden",
    ),
    "garden": (
        ("solar", "cordless", "self-watering", "perennial", "raised", "weatherproof"),
        ("planter", "hose", "seeds", "lawn-mower", "string-lights"),
        30.0,
        "home",
    ),
}
#: Product-line words that tell repeated categories apart when there are more than sixteen.
LINES: tuple[str, ...] = ("", "kids", "eco", "pro", "travel", "premium", "budget", "smart")
CITIES: tuple[str, ...] = (
    "berlin",
    "paris",
    "madrid",
    "rome",
    "london",
    "amsterdam",
    "vienna",
    "prague",
    "lisbon",
    "warsaw",
    "stockholm",
    "oslo",
    "dublin",
    "athens",
    "zurich",
    "brussels",
)
#: Devices in code order; code 0 is the app, the only device that shows app-only items.
DEVICES: tuple[str, ...] = ("mobile_app", "mobile_web", "desktop")
APP_DEVICE = 0
#: Planted-cause groups in code order: code 0 is "none", then the feature groups.
CAUSE_GROUPS: tuple[str, ...] = ("none", *FEATURE_GROUPS)
NONE, HISTORY, SOCIAL, SEARCH, LOCATION, DEVICE = range(len(CAUSE_GROUPS))


def city_names(n: int) -> list[str]:
    """``n`` city names: the built-in ones, then ``city17``, ``city18``, ..."""
    return [CITIES[k] if k < len(CITIES) else f"city{k + 1}" for k in range(n)]


@dataclass(frozen=True)
class Vocabulary:
    """Categories with their words, flattened into arrays so items and queries are drawn in bulk.

    Category ``c`` owns modifiers ``modifiers[mod_start[c]:mod_start[c + 1]]``, nouns
    ``nouns[noun_start[c]:noun_start[c + 1]]`` and queries
    ``queries[query_start[c]:query_start[c + 1]]``.
    """

    names: list[str]
    line: list[str]
    modifiers: list[str]
    mod_start: Int
    nouns: list[str]
    noun_start: Int
    queries: list[str]
    query_start: Int
    price: F32
    partner: I32

    @property
    def n(self) -> int:
        return len(self.names)


def vocabulary(n_categories: int) -> Vocabulary:
    """The words of ``n_categories`` categories (base categories first, then product lines).

    Examples
    --------
    >>> v = vocabulary(18)
    >>> v.names[0], v.names[16], v.queries[v.query_start[16]]
    ('audio', 'kids audio', 'kids headphones')
    """
    base = list(BASE_CATEGORIES)
    names: list[str] = []
    lines: list[str] = []
    mods: list[str] = []
    nouns: list[str] = []
    queries: list[str] = []
    mod_start, noun_start, query_start = [0], [0], [0]
    price: list[float] = []
    partner: list[int] = []
    for c in range(n_categories):
        b = base[c % len(base)]
        k = c // len(base)
        line = LINES[k] if k < len(LINES) else f"line{k}"
        cat_mods, cat_nouns, cat_price, cat_partner = BASE_CATEGORIES[b]
        prefix = f"{line} " if line else ""
        names.append(prefix + b)
        lines.append(line)
        mods.extend(cat_mods)
        nouns.extend(cat_nouns)
        queries.extend(prefix + noun for noun in cat_nouns)
        queries.extend(f"{prefix}{m} {noun}" for m in cat_mods for noun in cat_nouns)
        mod_start.append(len(mods))
        noun_start.append(len(nouns))
        query_start.append(len(queries))
        price.append(cat_price)
        # the partner in the same product line when it exists, else the next category
        p = base.index(cat_partner) + k * len(base)
        partner.append(p if p < n_categories and p != c else (c + 1) % n_categories)
    return Vocabulary(
        names=names,
        line=lines,
        modifiers=mods,
        mod_start=np.asarray(mod_start, dtype=np.int64),
        nouns=nouns,
        noun_start=np.asarray(noun_start, dtype=np.int64),
        queries=queries,
        query_start=np.asarray(query_start, dtype=np.int64),
        price=np.asarray(price, dtype=np.float32),
        partner=np.asarray(partner, dtype=np.int32),
    )

"""The event schema and the plain array types that every layer shares.

A user is a timeline of events. This module names the columns of an event, the
built-in actions and sources, and holds :class:`Sequences`, the ragged (CSR)
array form of many timelines that models, ranking and evaluation consume.
It imports nothing from the project and no data-frame library: plain numpy.

Internal ids are contiguous integers with ``0`` reserved for padding / "none"
(an item id of 0 on a search event means "no item"); external ids are strings
and are translated only at the edges (``data.Dataset``, the CLI and the API).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Final

import numpy as np
import numpy.typing as npt

Int = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]

#: Built-in actions, in code order (code 0 is padding; custom actions get codes after these).
ACTIONS: Final[tuple[str, ...]] = (
    "view",
    "click",
    "cart",
    "purchase",
    "rate",
    "like",
    "comment",
    "share",
    "search",
)
#: Where an event came from: the user's own behaviour, a followee's activity that reached them,
#: or a search (a click on a search result).
SOURCES: Final[tuple[str, ...]] = ("self", "social", "search")
#: Codes of the built-in sources: data sets code sources with :data:`SOURCES`
#: first (0 = unknown).
SELF_SOURCE: Final = SOURCES.index("self") + 1
SOCIAL_SOURCE: Final = SOURCES.index("social") + 1
SEARCH_SOURCE: Final = SOURCES.index("search") + 1


def builtin_name(name: str, names: tuple[str, ...]) -> str:
    """The built-in name among ``names`` that ``name`` spells in another case or with spaces
    around it, else ``name`` as written (custom names keep their case).

    Examples
    --------
    >>> builtin_name("Purchase", ACTIONS), builtin_name(" SOCIAL", SOURCES)
    ('purchase', 'social')
    >>> builtin_name("AddToWishlist", ACTIONS)
    'AddToWishlist'
    """
    folded = name.strip().lower()
    return folded if folded in names else name


#: Key of ``Sequences.extra`` that holds, per event, the followed user who acted: a followee
#: event (context from ``behaviorlm.data.feed``, never a target) where not 0 (-1: a followee
#: event whose user is not named, as a hypothetical share scored for many sharers at once).
FOLLOWEE: Final = "followee"
#: The feature groups (docs/ARCHITECTURE.md); explanations and planted causes use these names.
FEATURE_GROUPS: Final[tuple[str, ...]] = ("history", "social", "search", "location", "device")

#: Columns of an event as users bring them (external ids, text). Only user_id and one of
#: item_id / query are required (a table without timestamps is taken to be in time order).
EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "user_id",
    "item_id",
    "timestamp",
    "action",
    "value",
    "query",
    "device",
    "location",
    "source",
)
#: Largest absolute event ``value``: values are stored as float32, and a larger one would
#: become infinite (the largest finite float32, about 3.4e38).
MAX_VALUE: Final[float] = float(np.finfo(np.float32).max)
#: Optional side-table columns.
ITEM_COLUMNS: Final[tuple[str, ...]] = ("item_id", "title", "category", "text", "price")
USER_COLUMNS: Final[tuple[str, ...]] = ("user_id",)
FOLLOW_COLUMNS: Final[tuple[str, ...]] = ("follower_id", "followee_id", "since")
#: Columns that start with this prefix carry ground truth (e.g. the simulator's planted causes).
#: They are kept through loading and preprocessing for evaluation but never reach model inputs.
TRUTH_PREFIX: Final[str] = "truth_"


def ragged_index(starts: Int, lengths: Int) -> tuple[Int, Int]:
    """Gather plan for segments ``starts[k] : starts[k] + lengths[k]`` of a flat array.

    Returns the offsets of the gathered rows and the flat index of every gathered element.

    Examples
    --------
    >>> offsets, index = ragged_index(np.array([5, 0]), np.array([2, 3]))
    >>> offsets.tolist(), index.tolist()
    ([0, 2, 5], [5, 6, 0, 1, 2])
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # element j of row k sits at starts[k] + (j - offsets[k])
    index = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(
        np.asarray(starts, dtype=np.int64) - offsets[:-1], lengths
    )
    return offsets, index


@dataclass(frozen=True)
class Sequences:
    """Many user timelines as ragged arrays (CSR layout), in time order within each user.

    Row ``r`` (one user) owns events ``offsets[r]:offsets[r + 1]`` of every per-event array.
    A row may be empty (a user with no inputs yet).

    Attributes
    ----------
    offsets : (R + 1,) int64
        Row boundaries; ``offsets[0] == 0`` and ``offsets[-1] == len(items)``.
    users : (R,) int64
        Internal user id of each row.
    items : (E,) int64
        Internal item id of each event (0 = no item, e.g. a search).
    actions : (E,) int64
        Action code of each event (1-based index into the dataset's action vocabulary).
    timestamps : (E,) int64
        Event time in seconds (or input order where the data had no time).
    event_ids : (E,) int64
        Row of the event in the dataset's event table: used for leakage checks and explanations.
    values : (E,) float32
        Event value (a rating), NaN where absent.
    devices, locations, sources : (E,) int64
        Context codes, 0 = unknown.
    n_items : int
        Size of the item vocabulary without padding: valid item ids are ``1..n_items``.

    Examples
    --------
    >>> import numpy as np
    >>> s = Sequences.from_lists([[1, 2, 3], [2]], n_items=3)
    >>> s.row(0).items.tolist(), len(s), s.lengths.tolist()
    ([1, 2, 3], 2, [3, 1])
    """

    offsets: Int
    users: Int
    items: Int
    actions: Int
    timestamps: Int
    event_ids: Int
    values: F32
    devices: Int
    locations: Int
    sources: Int
    n_items: int
    extra: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.items)
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.users) + 1:
            raise ValueError("offsets must have one more entry than users")
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != n:
            raise ValueError(
                f"offsets must run from 0 to {n}, got {self.offsets[0]}..{self.offsets[-1]}"
            )
        for name in _EVENT_FIELDS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> Int:
        """(R,) number of events in each row."""
        return np.diff(self.offsets)

    @property
    def row_of_event(self) -> Int:
        """(E,) the row that owns each event."""
        return np.repeat(np.arange(len(self.users), dtype=np.int64), self.lengths)

    def per_event(self) -> dict[str, npt.NDArray[np.generic]]:
        """The per-event arrays by name (everything but offsets, users, n_items)."""
        out: dict[str, npt.NDArray[np.generic]] = {
            name: getattr(self, name) for name in _EVENT_FIELDS
        }
        out.update(self.extra)
        return out

    def followees(self) -> Int:
        """(E,) the followed user who acted, per event: 0 for the user's own events.

        Examples
        --------
        >>> Sequences.from_lists([[1, 2]], n_items=2).followees().tolist()
        [0, 0]
        """
        who = self.extra.get(FOLLOWEE)
        if who is None:
            return np.zeros(len(self.items), dtype=np.int64)
        return np.asarray(who, dtype=np.int64)

    def is_followee_event(self) -> Bool:
        """(E,) True for followee events (context, never targets), False for own events.

        Examples
        --------
        >>> Sequences.from_lists([[1, 2]], n_items=2).is_followee_event().tolist()
        [False, False]
        """
        theirs: Bool = self.followees() != 0
        return theirs

    def take_events(self, mask: Bool) -> Sequences:
        """Keep the events where ``mask`` is true; rows stay (possibly empty)."""
        counts = np.bincount(self.row_of_event[mask], minlength=len(self.users))
        offsets = np.zeros(len(self.users) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        arrays = {k: v[mask] for k, v in self.per_event().items()}
        extra = {k: arrays.pop(k) for k in list(self.extra)}
        return replace(self, offsets=offsets, extra=extra, **arrays)  # type: ignore[arg-type]

    def select(self, rows: Int) -> Sequences:
        """Rows ``rows`` (in that order, repeats allowed) as a new Sequences."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.prefixes(rows, self.offsets[rows + 1])

    def prefixes(self, rows: Int, stops: Int) -> Sequences:
        """Rows ``rows``, row ``k`` cut just before the flat event position ``stops[k]``.

        Examples
        --------
        >>> s = Sequences.from_lists([[1, 2, 3], [4, 5]], n_items=5)
        >>> s.prefixes(np.array([0, 1]), np.array([2, 4])).items.tolist()
        [1, 2, 4]
        """
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.offsets[rows]
        stops = np.minimum(np.asarray(stops, dtype=np.int64), self.offsets[rows + 1])  # stay in row
        offsets, index = ragged_index(starts, np.maximum(stops - starts, 0))
        arrays = {k: v[index] for k, v in self.per_event().items()}
        extra = {k: arrays.pop(k) for k in list(self.extra)}
        return replace(self, offsets=offsets, users=self.users[rows], extra=extra, **arrays)  # type: ignore[arg-type]

    def row(self, r: int) -> Sequences:
        """One row as a Sequences of length 1."""
        return self.select(np.array([r], dtype=np.int64))

    def last(self, n: int) -> Sequences:
        """Keep only the last ``n`` events of every row (the most recent ones)."""
        position_from_end = np.repeat(self.offsets[1:], self.lengths) - np.arange(
            len(self.items), dtype=np.int64
        )
        return self.take_events(position_from_end <= n)

    @classmethod
    def from_lists(
        cls,
        items: list[list[int]],
        *,
        n_items: int,
        users: list[int] | None = None,
        actions: list[list[int]] | None = None,
    ) -> Sequences:
        """Build from Python lists (for tests, examples and single requests; not a hot path).

        Timestamps become positions 0, 1, ... within each row; action codes default to 1 (view);
        every event is the user's own (source "self"), without device or location. Item ids
        must lie in ``0..n_items`` (0: an event on no item).

        Examples
        --------
        >>> s = Sequences.from_lists([[3, 1], [2]], n_items=3)
        >>> s.items.tolist(), s.lengths.tolist(), s.sources.tolist()
        ([3, 1, 2], [2, 1], [1, 1, 1])
        """
        lengths = np.array([len(r) for r in items], dtype=np.int64)
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.array([i for r in items for i in r], dtype=np.int64)
        n = len(flat)
        if n and (flat.min() < 0 or flat.max() > n_items):
            bad = int(flat[(flat < 0) | (flat > n_items)][0])
            raise ValueError(f"item {bad} is outside 0..{n_items}")
        acts = (
            np.array([a for r in actions for a in r], dtype=np.int64)
            if actions is not None
            else np.ones(n, dtype=np.int64)
        )
        ts = np.arange(n, dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        return cls(
            offsets=offsets,
            users=np.arange(len(items), dtype=np.int64)
            if users is None
            else np.array(users, dtype=np.int64),
            items=flat,
            actions=acts,
            timestamps=ts,
            event_ids=np.arange(n, dtype=np.int64),
            values=np.full(n, np.nan, dtype=np.float32),
            devices=np.zeros(n, dtype=np.int64),
            locations=np.zeros(n, dtype=np.int64),
            sources=np.full(n, SOURCES.index("self") + 1, dtype=np.int64),
            n_items=n_items,
        )


#: The per-event array fields of Sequences (all but offsets, users, n_items and extra).
_EVENT_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in fields(Sequences) if f.name not in {"offsets", "users", "n_items", "extra"}
)


@dataclass(frozen=True)
class EvalSet:
    """Inputs and targets for evaluation: one row per evaluated user.

    Attributes
    ----------
    histories : Sequences
        What the model may see for each row (all events strictly before the targets).
    target_offsets : (R + 1,) int64
        Row boundaries into ``targets`` (leave-one-out has exactly one target per row).
    targets : (T,) int64
        Target item ids.
    target_event_ids : (T,) int64
        Rows of the target events in the dataset's event table (for leakage checks).
    """

    histories: Sequences
    target_offsets: Int
    targets: Int
    target_event_ids: Int

    def __post_init__(self) -> None:
        if len(self.target_offsets) != len(self.histories) + 1:
            raise ValueError("target_offsets must have one more entry than histories has rows")

    def __len__(self) -> int:
        return len(self.histories)

    def select(self, rows: Int) -> EvalSet:
        """Rows ``rows`` as a new EvalSet."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.target_offsets[rows]
        offsets, index = ragged_index(starts, self.target_offsets[rows + 1] - starts)
        return EvalSet(
            histories=self.histories.select(rows),
            target_offsets=offsets,
            targets=self.targets[index],
            target_event_ids=self.target_event_ids[index],
        )


@dataclass(frozen=True)
class Split:
    """A train / validation / test split of one dataset.

    ``train`` holds the timelines a model may fit on; ``valid`` and ``test`` hold evaluation rows.
    ``protocol`` names how it was made (``"leave_one_out"`` or ``"temporal"``) and ``info`` holds
    the counts and settings (rows in and out of every step).
    """

    train: Sequences
    valid: EvalSet
    test: EvalSet
    protocol: str
    info: dict[str, object] = field(default_factory=dict)

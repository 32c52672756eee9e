"""Ranking: masking, filters, padding, chunked top-k against a plain sort, ties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import pytest

from behaviorlm.models.base import Recommender
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.recommend import Ranked, decode, encode, item_mask, recommend
from behaviorlm.schema import F32, Sequences


@dataclass(frozen=True, kw_only=True)
class TableConfig:
    pass


class Table(Recommender):
    """Fixed scores: row ``r`` of ``table`` for the history of user ``r`` (columns = items 0..n)."""

    name: ClassVar[str] = "table"
    config_class: ClassVar[type[TableConfig]] = TableConfig

    def __init__(self, table: F32) -> None:
        super().__init__(TableConfig())
        self.table = table.astype(np.float32)
        self.n_items = table.shape[1] - 1
        self.calls: list[tuple[int, int, int]] = []

    def fit(self, train: Sequences) -> Self:
        return self

    def score(self, histories: Sequences, items: slice | None = None) -> F32:
        start, stop = self.item_range(items)
        self.calls.append((len(histories), start, stop))
        return self.table[histories.users, start:stop].copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"table": self.table}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.table = arrays["table"]


def histories(rows: list[list[int]], n_items: int) -> Sequences:
    return Sequences.from_lists(rows, n_items=n_items)


def reference(table: F32, seen: list[list[int]], k: int, exclude_seen: bool) -> np.ndarray:
    """Plain (slow, obvious) top-k: sort every row by (-score, item), drop masked items."""
    out = np.zeros((len(seen), k), dtype=np.int64)
    for r, row_seen in enumerate(seen):
        candidates = [
            i for i in range(1, table.shape[1]) if not (exclude_seen and i in set(row_seen))
        ]
        ranked = sorted(candidates, key=lambda i: (-float(table[r, i]), i))[:k]
        out[r, : len(ranked)] = ranked
    return out


@pytest.mark.parametrize(("batch_size", "item_chunk"), [(256, 262_144), (3, 7), (1, 1), (5, 50)])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_chunked_top_k_equals_plain_sort(
    batch_size: int, item_chunk: int, exclude_seen: bool
) -> None:
    rng = np.random.default_rng(0)
    n_items, n_rows, k = 40, 11, 9
    # round to a few levels so that many scores tie
    table = np.round(rng.normal(size=(n_rows, n_items + 1)), 1).astype(np.float32)
    seen = [rng.integers(0, n_items + 1, size=rng.integers(0, 6)).tolist() for _ in range(n_rows)]
    model = Table(table)
    ranked = recommend(
        model,
        histories(seen, n_items),
        k=k,
        exclude_seen=exclude_seen,
        batch_size=batch_size,
        item_chunk=item_chunk,
    )
    expected = reference(table, seen, k, exclude_seen)
    np.testing.assert_array_equal(ranked.items, expected)
    np.testing.assert_array_equal(ranked.scores, np.take_along_axis(table, expected, axis=1))
    # scores are sorted best first
    assert (np.diff(ranked.scores, axis=1) <= 0).all()
    # the catalogue was walked in chunks of at most item_chunk items
    assert max(stop - start for _, start, stop in model.calls) <= item_chunk
    assert max(rows for rows, _, _ in model.calls) <= batch_size


def test_seen_items_excluded_or_included_by_switch() -> None:
    table = np.array([[0, 5, 4, 3, 2, 1]], dtype=np.float32)
    h = histories([[1, 3]], 5)
    assert recommend(Table(table), h, k=3).items.tolist() == [[2, 4, 5]]
    assert recommend(Table(table), h, k=3, exclude_seen=False).items.tolist() == [[1, 2, 3]]


def test_filters() -> None:
    table = np.array([[0, 5, 4, 3, 2, 1]], dtype=np.float32)
    h = histories([[]], 5)
    model = Table(table)
    assert recommend(model, h, k=2, exclude_items=np.array([1, 3])).items.tolist() == [[2, 4]]
    assert recommend(model, h, k=2, allowed_items=np.array([5, 3])).items.tolist() == [[3, 5]]
    mask = np.array([False, False, True, False, True, True])
    assert recommend(model, h, k=2, allowed_items=mask).items.tolist() == [[2, 4]]
    both = recommend(model, h, k=3, allowed_items=np.array([2, 3, 4]), exclude_items=[3])
    assert both.items.tolist() == [[2, 4, 0]]
    with pytest.raises(ValueError, match="outside"):
        recommend(model, h, k=2, exclude_items=np.array([6]))
    with pytest.raises(ValueError, match="shape"):
        recommend(model, h, k=2, allowed_items=np.ones(3, dtype=bool))


@pytest.mark.parametrize("batch_size", [256, 2, 1])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_exclude_by_row_blocks_items_per_row(batch_size: int, exclude_seen: bool) -> None:
    table = np.tile(np.array([[0, 5, 4, 3, 2, 1]], dtype=np.float32), (3, 1))
    h = histories([[1], [2], []], 5)
    own: list[list[int]] = [[2], [], [1, 5, 3]]
    ranked = recommend(
        Table(table),
        h,
        k=5,
        exclude_seen=exclude_seen,
        exclude_by_row=own,
        batch_size=batch_size,
        item_chunk=2,
    )
    seen = [
        [*o, *(row if exclude_seen else [])] for o, row in zip(own, [[1], [2], []], strict=True)
    ]
    assert ranked.items.tolist() == reference(table, seen, 5, True).tolist()
    with pytest.raises(ValueError, match="2 entries for 3 rows"):
        recommend(Table(table), h, k=2, exclude_by_row=[[1], [2]])
    for bad in ([[6], [], []], [[-1], [], []]):  # as exclude_items: ids of the catalogue only
        with pytest.raises(ValueError, match=r"exclude_by_row holds ids outside 0\.\.5"):
            recommend(Table(table), h, k=2, exclude_by_row=bad)


def test_seen_actions_count_only_those_events_as_seen() -> None:
    table = np.tile(np.array([[0, 5, 4, 3, 2, 1]], dtype=np.float32), (2, 1))
    # row 0 viewed (1) item 1 and bought (3) item 2; row 1 bought item 1
    h = Sequences.from_lists([[1, 2], [1]], n_items=5, actions=[[1, 3], [3]])
    plain = recommend(Table(table), h, k=3)
    assert plain.items.tolist() == [[3, 4, 5], [2, 3, 4]]
    bought = recommend(Table(table), h, k=3, seen_actions=[3])
    assert bought.items.tolist() == [[1, 3, 4], [2, 3, 4]]  # the viewed item 1 comes back
    kept = recommend(Table(table), h, k=3, exclude_seen=False, seen_actions=[3])
    assert kept.items.tolist() == [[1, 2, 3], [1, 2, 3]]  # nothing seen without exclude_seen
    with pytest.raises(TypeError, match="action codes"):  # names are refused with the way
        recommend(Table(table), h, k=3, seen_actions=["purchase"])
    with pytest.raises(TypeError, match="action codes"):  # whether or not a row needs them
        recommend(Table(table), h, k=3, exclude_seen=False, seen_actions=["purchase"])
    nothing = recommend(Table(table), h, k=3, seen_actions=[])  # no action: nothing is seen
    assert nothing.items.tolist() == [[1, 2, 3], [1, 2, 3]]


def test_padding_item_never_recommended() -> None:
    # item 0 has the best score of all but is padding
    table = np.array([[100, 1, 2], [100, 3, 3]], dtype=np.float32)
    ranked = recommend(Table(table), histories([[], []], 2), k=2)
    assert ranked.items.tolist() == [[2, 1], [1, 2]]
    assert not item_mask(2)[0]


def test_ties_break_by_lower_item_id() -> None:
    table = np.zeros((1, 8), dtype=np.float32)
    table[0, [6, 2, 4]] = 1.0
    table[0, 5] = -0.0  # negative zero ties with zero
    ranked = recommend(Table(table), histories([[]], 7), k=7, item_chunk=3)
    assert ranked.items.tolist() == [[2, 4, 6, 1, 3, 5, 7]]


def test_k_larger_than_candidates_pads_with_zero() -> None:
    table = np.array([[0, 1, 2, 3]], dtype=np.float32)
    ranked = recommend(Table(table), histories([[2]], 3), k=5)
    # a list never holds more than the catalogue (3 items); the masked item leaves a pad
    assert ranked.items.tolist() == [[3, 1, 0]]
    assert ranked.scores[0, :2].tolist() == [3.0, 1.0]
    assert np.isneginf(ranked.scores[0, 2:]).all()
    assert ranked.items.dtype == np.int64
    assert ranked.scores.dtype == np.float32


def test_masked_scores_are_never_recommended_and_nan_raises() -> None:
    table = np.array([[0, -np.inf, 2.0, 1.0, -5.0]], dtype=np.float32)
    ranked = recommend(Table(table), histories([[2]], 4), k=4)
    assert ranked.items.tolist() == [[3, 4, 0, 0]]
    table[0, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN scores"):
        recommend(Table(table), histories([[]], 4), k=4)


def test_rows_with_fewer_finite_scores_than_k_pad_with_zero() -> None:
    table = np.full((3, 30), -np.inf, dtype=np.float32)
    table[0, [4, 9]] = [1.0, 2.0]  # two finite scores for k = 3
    table[2, 5:] = 0.5  # 25 ties: the lowest ids win
    ranked = recommend(Table(table), histories([[], [], []], 29), k=3, exclude_seen=False)
    assert ranked.items.tolist() == [[9, 4, 0], [0, 0, 0], [5, 6, 7]]
    assert ranked.scores[0].tolist() == [2.0, 1.0, -np.inf]
    assert np.isneginf(ranked.scores[1]).all()


def test_empty_input_and_bad_arguments() -> None:
    model = Table(np.zeros((1, 4), dtype=np.float32))
    ranked = recommend(model, histories([], 3), k=2)
    assert ranked.items.shape == (0, 2)
    with pytest.raises(ValueError, match="k must be"):
        recommend(model, histories([[]], 3), k=0)


def test_encode_decode_round_trip_and_order() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 20)).astype(np.float32)
    scores[0, :3] = [np.inf, -np.inf, 0.0]
    keys = encode(scores, start=5)
    back, items = decode(keys)
    np.testing.assert_array_equal(back, scores)
    np.testing.assert_array_equal(items, np.broadcast_to(np.arange(5, 25), (3, 20)))
    # key order = score order, then lower item first
    expected = np.lexsort((items, -scores), axis=1)
    np.testing.assert_array_equal(np.argsort(-keys, axis=1), expected)


def test_unfitted_model_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        recommend(Pop(PopConfig()), histories([[]], 3), k=2)


def test_million_item_catalogue_in_chunks() -> None:
    n_items = 1_000_000
    rng = np.random.default_rng(2)
    table = rng.random((2, n_items + 1)).astype(np.float32)
    model = Table(table)
    ranked = recommend(model, histories([[5], []], n_items), k=5, item_chunk=262_144)
    for r in range(2):
        order = np.argsort(-table[r, 1:], kind="stable") + 1
        expected = [i for i in order[:6].tolist() if not (r == 0 and i == 5)][:5]
        assert ranked.items[r].tolist() == expected
    assert len(model.calls) == 4


def test_a_table_of_lists_names_numeric_ids_and_refuses_a_short_item_column() -> None:
    ranked = Ranked(
        items=np.array([[2, 1], [1, 0]]),
        scores=np.array([[0.75, 0.5], [0.25, -np.inf]], dtype=np.float32),
    )
    table = ranked.table([7, 8], [101, 102])  # numeric ids, as a log's ids often are
    assert table.rows() == [("7", 1, "102", 0.75), ("7", 2, "101", 0.5), ("8", 1, "101", 0.25)]
    with pytest.raises(ValueError, match="1 item ids for lists that hold item 2"):
        ranked.table(["u1", "u2"], ["i1"])


def test_histories_of_another_catalogue_are_refused() -> None:
    model = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2], [2, 3]], n_items=3))
    with pytest.raises(ValueError, match=r"item id\(s\) 7 outside the model's catalogue 1\.\.3"):
        recommend(model, Sequences.from_lists([[1, 7]], n_items=7), k=2)


def test_an_artifact_pairs_a_model_with_its_own_catalogue() -> None:
    import behaviorlm as blm

    small = blm.preprocess(blm.simulate(40, seed=1))
    large = blm.preprocess(blm.simulate(120, seed=2))
    model = Pop(PopConfig()).fit(small.sequences())
    assert blm.Artifact(model=model, dataset=small).dataset is small
    assert small.n_items != large.n_items
    with pytest.raises(ValueError, match="the data set it was trained on"):
        blm.Artifact(model=model, dataset=large)

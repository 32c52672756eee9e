"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from behaviorlm.evaluate import metrics
from behaviorlm.evaluate.metrics import (
    coverage,
    hit_rate,
    mean_popularity,
    mrr,
    ndcg,
    recall,
    relevance,
)

# Four rows of ranked lists (best first, 0 = padding) and their targets:
#   row 0: ranked [5, 3, 7, 1]  targets {3}        -> hit at rank 2
#   row 1: ranked [2, 4, 6, 8]  targets {4, 8, 9}  -> hits at ranks 2 and 4; 9 never ranked
#   row 2: ranked [1, 2, 3, 4]  targets {7}        -> no hit
#   row 3: ranked [6, 0, 0, 0]  targets {6, 6}     -> hit at rank 1; repeated target counts once
RANKED = np.array([[5, 3, 7, 1], [2, 4, 6, 8], [1, 2, 3, 4], [6, 0, 0, 0]])
OFFSETS = np.array([0, 1, 4, 5, 7])
TARGETS = np.array([3, 4, 8, 9, 7, 6, 6])

L2, L3, L4, L5 = (math.log2(x) for x in (2, 3, 4, 5))


def test_relevance() -> None:
    hits, n = relevance(RANKED, OFFSETS, TARGETS)
    assert hits.astype(int).tolist() == [[0, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]]
    assert n.tolist() == [1, 3, 1, 1]


def test_hit_rate() -> None:
    # k=1: only row 3 hits at rank 1; k=2: rows 0, 1, 3
    assert hit_rate(RANKED, OFFSETS, TARGETS, 1).tolist() == [0, 0, 0, 1]
    assert hit_rate(RANKED, OFFSETS, TARGETS, 2).tolist() == [1, 1, 0, 1]
    assert hit_rate(RANKED, OFFSETS, TARGETS, 4).mean() == 0.75


def test_recall() -> None:
    # row 1 has 3 distinct targets: 1 found by k=2, 2 by k=4
    np.testing.assert_allclose(recall(RANKED, OFFSETS, TARGETS, 2), [1, 1 / 3, 0, 1])
    np.testing.assert_allclose(recall(RANKED, OFFSETS, TARGETS, 4), [1, 2 / 3, 0, 1])


def test_mrr() -> None:
    np.testing.assert_allclose(mrr(RANKED, OFFSETS, TARGETS, 4), [1 / 2, 1 / 2, 0, 1])
    # the first hit of rows 0 and 1 sits at rank 2, outside k=1
    np.testing.assert_allclose(mrr(RANKED, OFFSETS, TARGETS, 1), [0, 0, 0, 1])


def test_ndcg() -> None:
    # row 0: DCG = 1/log2(3), IDCG (1 target) = 1/log2(2) = 1
    # row 1 at k=4: DCG = 1/log2(3) + 1/log2(5); IDCG = min(4, 3) = 3 ideal hits
    #               = 1/log2(2) + 1/log2(3) + 1/log2(4)
    # row 1 at k=2: DCG = 1/log2(3); IDCG = 2 ideal hits = 1/log2(2) + 1/log2(3)
    # row 2: 0; row 3: hit at rank 1 -> 1
    np.testing.assert_allclose(
        ndcg(RANKED, OFFSETS, TARGETS, 4),
        [1 / L3, (1 / L3 + 1 / L5) / (1 / L2 + 1 / L3 + 1 / L4), 0, 1],
    )
    np.testing.assert_allclose(
        ndcg(RANKED, OFFSETS, TARGETS, 2), [1 / L3, (1 / L3) / (1 / L2 + 1 / L3), 0, 1]
    )


def test_rows_without_targets_score_zero() -> None:
    ranked = np.array([[1, 2], [3, 4]])
    offsets = np.array([0, 0, 1])
    targets = np.array([3])
    for fn in (hit_rate, recall, mrr, ndcg):
        assert fn(ranked, offsets, targets, 2).tolist() == [0.0, 1.0]


def test_padding_never_hits_and_zero_target_never_counts() -> None:
    ranked = np.array([[0, 0]])
    hits, n = relevance(ranked, np.array([0, 1]), np.array([0]))
    assert not hits.any()
    assert n.tolist() == [0]


def test_coverage() -> None:
    # distinct non-padding items in the top 1: {5, 2, 1, 6} -> 4 of 10
    assert coverage(RANKED, n_items=10, k=1) == 0.4
    # top 4: {1, 2, 3, 4, 5, 6, 7, 8} -> 8 of 10
    assert coverage(RANKED, n_items=10, k=4) == 0.8


def test_mean_popularity() -> None:
    popularity = np.arange(10, dtype=np.float64) / 10  # item i has popularity i / 10
    # top 1: items 5, 2, 1, 6 -> (0.5 + 0.2 + 0.1 + 0.6) / 4 = 0.35
    assert mean_popularity(RANKED, popularity, 1) == pytest.approx(0.35)
    # top 2: 5, 3, 2, 4, 1, 2, 6 (padding skipped) -> 2.3 / 7
    assert mean_popularity(RANKED, popularity, 2) == pytest.approx(2.3 / 7)
    assert mean_popularity(np.zeros((2, 2), dtype=np.int64), popularity, 2) == 0.0


def test_bad_k_and_shapes_raise() -> None:
    with pytest.raises(ValueError, match="k must be"):
        hit_rate(RANKED, OFFSETS, TARGETS, 5)
    with pytest.raises(ValueError, match="k must be"):
        ndcg(RANKED, OFFSETS, TARGETS, 0)
    with pytest.raises(ValueError, match="offsets"):
        relevance(RANKED, OFFSETS[:-1], TARGETS)


def test_metrics_match_a_plain_loop_on_random_data() -> None:
    rng = np.random.default_rng(3)
    R, K, n_items = 50, 10, 30
    ranked = np.stack([rng.permutation(n_items)[:K] + 1 for _ in range(R)])
    counts = rng.integers(0, 4, size=R)
    offsets = np.r_[0, np.cumsum(counts)]
    targets = rng.integers(1, n_items + 1, size=int(offsets[-1]))
    for k in (1, 5, 10):
        hr, rc, rr, nd = [], [], [], []
        for r in range(R):
            truth = set(targets[offsets[r] : offsets[r + 1]].tolist())
            ranks = [j + 1 for j, item in enumerate(ranked[r, :k]) if item in truth]
            hr.append(float(bool(ranks)))
            rc.append(len(ranks) / len(truth) if truth else 0.0)
            rr.append(1 / ranks[0] if ranks else 0.0)
            ideal = sum(1 / math.log2(j + 2) for j in range(min(k, len(truth))))
            nd.append(sum(1 / math.log2(j + 1) for j in ranks) / ideal if truth else 0.0)
        np.testing.assert_allclose(hit_rate(ranked, offsets, targets, k), hr)
        np.testing.assert_allclose(recall(ranked, offsets, targets, k), rc)
        np.testing.assert_allclose(mrr(ranked, offsets, targets, k), rr)
        np.testing.assert_allclose(ndcg(ranked, offsets, targets, k), nd)


@pytest.mark.parametrize("dense", [0, 16])
def test_relevance_paths_agree(dense: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # many targets per row (up to 25) and some target id 0; both search paths must agree
    rng = np.random.default_rng(5)
    R, K = 40, 12
    ranked = rng.integers(0, 30, size=(R, K))
    counts = rng.integers(0, 26, size=R)
    offsets = np.r_[0, np.cumsum(counts)]
    targets = rng.integers(0, 30, size=int(offsets[-1]))
    monkeypatch.setattr(metrics, "DENSE_TARGETS", dense)
    hits, n = relevance(ranked, offsets, targets)
    for r in range(R):
        truth = set(targets[offsets[r] : offsets[r + 1]].tolist()) - {0}
        assert hits[r].tolist() == [int(i) in truth and i > 0 for i in ranked[r]]
        assert n[r] == len(truth)
    all_zero, _ = relevance(ranked, offsets, np.zeros_like(targets))
    assert not all_zero.any()

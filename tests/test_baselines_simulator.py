"""Baselines learn the simulator's sequential structure: Markov and item-kNN beat popularity."""

from __future__ import annotations

import pytest

import behaviorlm as blm


@pytest.mark.parametrize("seed", [0, 1])
def test_sequence_aware_baselines_beat_popularity(seed: int) -> None:
    ds = blm.preprocess(blm.simulate(1500, seed=seed))
    ndcg = {
        model: blm.evaluate_artifact(blm.train(ds, model), ks=(10,)).metrics["NDCG"][10]
        for model in ("pop", "itemknn", "markov")
    }
    assert ndcg["markov"] > 1.15 * ndcg["pop"], ndcg
    assert ndcg["itemknn"] > 1.15 * ndcg["pop"], ndcg

"""SASRec: its config, its attention masks, and that it learns the simulator's sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import behaviorlm as blm
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.evaluate import evaluate
from behaviorlm.explain.occlusion import closing_gaps
from behaviorlm.models.batch import FeatureSizes, build_batch
from behaviorlm.models.neural import FeatureConfig, SequenceModule
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.models.sasrec import SASRec, SASRecConfig, SASRecModule
from behaviorlm.schema import Sequences
from behaviorlm.train import TrainConfig, fit_model


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 30, "heads": 4}, "divisible"),
        ({"max_len": 0}, "max_len"),
        ({"dropout": 1.0}, "dropout"),
        ({"layers": -1}, "layers"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, int | float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SASRecConfig(**kwargs)  # type: ignore[arg-type]


def module_for(seqs: Sequences, **kwargs: object) -> tuple[SASRecModule, FeatureSizes]:
    torch.manual_seed(0)
    sizes = FeatureSizes.of(seqs)
    config = SASRecConfig(dim=16, heads=2, **kwargs)  # type: ignore[arg-type]
    return SASRecModule(sizes, config).eval(), sizes


def test_positions_count_from_the_most_recent_event() -> None:
    seqs = Sequences.from_lists([[1, 2, 3]], n_items=4)
    module, sizes = module_for(seqs, max_len=5)
    with torch.no_grad():
        h = module.encode(build_batch(seqs, 5, sizes))
        # the same events behind two columns of padding: a batch five wide
        wide = build_batch(Sequences.from_lists([[1, 2, 3], [4, 4, 4, 4, 4]], n_items=4), 5, sizes)
        h_wide = module.encode(wide)
    torch.testing.assert_close(h_wide[0, -3:], h[0], rtol=1e-5, atol=1e-5)
    # the position embedding matters: the same item at another distance gives another state
    assert not torch.allclose(h[0, 0], h[0, -1])


def test_encode_keeps_the_last_max_len_events_of_a_wider_batch() -> None:
    seqs = Sequences.from_lists([[1, 2, 3, 4, 1, 2]], n_items=4)
    module, sizes = module_for(seqs, max_len=3)
    with torch.no_grad():
        wide = module.encode(build_batch(seqs, 6, sizes))
        cut = module.encode(build_batch(seqs, 3, sizes))
    assert wide.shape[1] == 3
    torch.testing.assert_close(wide, cut)


def test_zero_layers_and_id_only_tokens_still_work() -> None:
    seqs = Sequences.from_lists([[1, 2], []], n_items=3)
    off = FeatureConfig(
        actions=False, time=False, search=False, social=False, location=False, device=False
    )
    module, sizes = module_for(seqs, layers=0, features=off)
    with torch.no_grad():
        h = module.encode(build_batch(seqs, 50, sizes))
    assert h.shape == (2, 2, 16)
    assert torch.isfinite(h).all()


@pytest.fixture(scope="module")
def simulated() -> Sequences:
    """Timelines with every feature group: searches, social events, devices, locations."""
    return blm.preprocess(blm.simulate(60, seed=5)).sequences()


@pytest.mark.parametrize(
    ("layers", "max_len", "length", "some"),
    [
        (2, 20, 35, False),  # longer than the window: an older event enters on each deletion
        (3, 20, 20, False),  # exactly the window
        (2, 30, 12, False),  # shorter than the window
        (1, 20, 35, False),  # the last block only
        (2, 50, 60, True),  # several groups; some of the events, in shuffled order
        (0, 20, 35, False),  # no blocks: the generic path
    ],
)
def test_deletions_share_work_and_equal_rescoring(
    simulated: Sequences,
    monkeypatch: pytest.MonkeyPatch,
    layers: int,
    max_len: int,
    length: int,
    some: bool,
) -> None:
    row = simulated.row(int(np.flatnonzero(simulated.lengths >= length)[0]))
    history = row.take_events(np.arange(len(row.items)) >= len(row.items) - length)
    module, sizes = module_for(history, layers=layers, max_len=max_len)
    n, reach = len(history.items), min(length, max_len + 1)
    events = np.arange(n - min(n, max_len), n)  # every event the model reads
    if some:
        events = np.random.default_rng(0).permutation(events)[: len(events) - 7]
    drop = torch.from_numpy(events - (n - reach))
    gaps = torch.from_numpy(closing_gaps(history, events, sizes.gaps))
    batch, every = build_batch(history, reach, sizes), np.arange(n)
    with torch.no_grad():
        generic = SequenceModule.encode_last_without(module, batch, drop, gaps)
        rescored = torch.cat(
            [
                module.encode_last(build_batch(history.take_events(every != i), max_len, sizes))
                for i in events
            ]
        )
        if layers:  # the shared path must not fall back to the generic one
            monkeypatch.setattr(SequenceModule, "encode_last_without", _no_fallback)
        shared = module.encode_last_without(batch, drop, gaps)
    torch.testing.assert_close(shared, generic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, rescored, rtol=1e-5, atol=1e-5)


def _no_fallback(*_: object) -> torch.Tensor:
    raise AssertionError("SASRec took the generic path")


def test_deletions_of_nothing_and_of_a_single_event(simulated: Sequences) -> None:
    history = simulated.row(0)
    module, sizes = module_for(history, layers=2, max_len=50)
    batch = build_batch(history, 50, sizes)
    with torch.no_grad():
        none = module.encode_last_without(batch, *torch.zeros(2, 0, dtype=torch.long))
        alone = build_batch(history.take_events(np.arange(len(history.items)) == 0), 50, sizes)
        empty = module.encode_last(
            build_batch(history.take_events(np.zeros(len(history.items), dtype=bool)), 50, sizes)
        )
        without = module.encode_last_without(alone, torch.tensor([0]), torch.tensor([1]))
    assert none.shape == (0, 16)
    torch.testing.assert_close(without, empty)


def test_deletions_in_training_mode_take_the_generic_path(simulated: Sequences) -> None:
    history = simulated.row(0)
    module, sizes = module_for(history, layers=2, max_len=50, dropout=0.5)
    batch = build_batch(history, 50, sizes)
    drop, gaps = torch.tensor([0, 1]), torch.tensor([1, 1])
    module.train()
    torch.manual_seed(1)
    generic = SequenceModule.encode_last_without(module, batch, drop, gaps)
    torch.manual_seed(1)
    torch.testing.assert_close(module.encode_last_without(batch, drop, gaps), generic)


@pytest.mark.parametrize("seed", [0, 1])
def test_sasrec_learns_the_simulated_sequences(seed: int) -> None:
    """The simulator's funnel (view -> cart -> purchase of one item) and session structure.

    The ranking keeps seen items: the funnel's next event is mostly the item just viewed,
    which popularity cannot know and a sequence model learns in a few epochs.
    """
    ds = blm.preprocess(blm.simulate(300, seed=seed))
    split = make_split(ds, SplitConfig())
    model = SASRec(SASRecConfig(dim=32, layers=1, heads=2))
    config = TrainConfig(
        epochs=6, batch_size=32, lr=1e-2, warmup_steps=10, patience=0, threads=1, seed=seed
    )
    summary = fit_model(model, split, config, progress=False)
    assert summary["epochs"] == 6
    pop = Pop(PopConfig()).fit(split.train)

    def ndcg(m: blm.Recommender) -> float:
        return evaluate(m, split.test, ks=(10,), exclude_seen=False).metrics["NDCG"][10]

    assert ndcg(model) > 1.5 * ndcg(pop), (ndcg(model), ndcg(pop))
    assert np.isfinite(summary["best_valid"]["NDCG@10"])

"""SASRec: its config, its attention masks, and that it learns the simulator's sequences."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import behaviorlm as blm
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.evaluate import evaluate
from behaviorlm.models.batch import FeatureSizes, build_batch
from behaviorlm.models.neural import FeatureConfig
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.models.sasrec import SASRec, SASRecConfig, SASRecModule, gpu_attention
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


def switches() -> dict[str, bool]:
    cuda = torch.backends.cuda
    return {
        "flash": cuda.flash_sdp_enabled(),
        "efficient": cuda.mem_efficient_sdp_enabled(),
        "math": cuda.math_sdp_enabled(),
        "cudnn": cuda.cudnn_sdp_enabled(),
    }


@pytest.mark.parametrize(
    ("caller", "inside"),
    [
        (None, {"flash": True, "efficient": True, "math": True, "cudnn": False}),
        ([SDPBackend.MATH], {"flash": False, "efficient": False, "math": True, "cudnn": False}),
        (
            [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION],
            {"flash": True, "efficient": False, "math": False, "cudnn": False},
        ),
        # a caller who allows cuDNN alone keeps it
        (
            [SDPBackend.CUDNN_ATTENTION],
            {"flash": False, "efficient": False, "math": False, "cudnn": True},
        ),
    ],
)
def test_gpu_attention_turns_cudnn_off_and_keeps_the_callers_choices(
    caller: list[SDPBackend] | None, inside: dict[str, bool]
) -> None:
    before = switches()
    with sdpa_kernel(caller) if caller else contextlib.nullcontext():
        outside = switches()
        with gpu_attention():
            assert switches() == inside
        assert switches() == outside  # restored on the way out
    assert switches() == before

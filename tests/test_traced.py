"""TorchScript traces of encode_last: the same states as the eager pass for every batch."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import behaviorlm as blm
from behaviorlm.models import MODELS
from behaviorlm.models.batch import FeatureSizes, SequenceBatch, build_batch
from behaviorlm.models.mlp import MLP, MLPConfig
from behaviorlm.models.neural import NeuralRecommender, SequenceModule
from behaviorlm.models.traced import TracedEncoder
from behaviorlm.schema import Sequences

#: "hstu+options": HSTU with absolute positions (a slice to the window) and cosine scores
TRACEABLE = ("sasrec", "hstu", "hstu+options")


@pytest.fixture(scope="module")
def simulated() -> Sequences:
    """Timelines with every feature group: searches, social events, devices, locations."""
    return blm.preprocess(blm.simulate(60, seed=5)).sequences()


def untrained(model: str, seqs: Sequences, max_len: int = 20) -> NeuralRecommender:
    config: dict[str, Any] = {"dim": 16, "heads": 2, "layers": 2, "max_len": max_len}
    if model == "hstu+options":
        model = "hstu"
        config.update(absolute_position=True, similarity="cosine")
    net = MODELS[model][1](MODELS[model][0](**config))
    assert isinstance(net, NeuralRecommender)
    net.setup(seqs, seed=0)
    return net


def sasrec_encoder(simulated: Sequences) -> tuple[SequenceModule, TracedEncoder, SequenceBatch]:
    """An untrained SASRec's module (evaluation mode), its encoder and a batch of 4 users."""
    net = untrained("sasrec", simulated)
    module = net.module.eval()
    return module, TracedEncoder(module), net.batch(simulated.select(np.arange(4)))


@pytest.mark.parametrize("model", TRACEABLE)
def test_traces_equal_the_eager_pass_for_every_size_and_length(
    simulated: Sequences, model: str
) -> None:
    net = untrained(model, simulated)
    module = net.module.eval()
    encoder = TracedEncoder(module)
    rng = np.random.default_rng(0)
    lengths = np.minimum(simulated.lengths, 20)
    assert simulated.extra["query_words"].any()  # searches are in, so is their embedding
    with torch.inference_mode():
        for rows in (1, 2, 3, 7, 16):
            for _ in range(4):
                users = rng.choice(len(simulated), rows, replace=False)
                batch = net.batch(simulated.select(users))
                traced, eager = encoder(batch), module.encode_last(batch)
                torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-5)
        for length in (1, 2, 5, 20):  # rows of one length: batches without padding
            same = np.flatnonzero(lengths >= length)[:3]
            cut = Sequences.from_lists(
                [list(simulated.select([u]).items[-length:]) for u in same],
                n_items=simulated.n_items,
            )
            batch = build_batch(cut, 20, FeatureSizes.of(simulated))
            assert bool(batch.mask.all())
            torch.testing.assert_close(
                encoder(batch), module.encode_last(batch), rtol=1e-5, atol=1e-5
            )
    assert encoder.layouts == 2  # one trace with padding, one without, whatever the sizes


@pytest.mark.parametrize("model", TRACEABLE)
def test_a_traced_model_scores_as_before(simulated: Sequences, model: str) -> None:
    net = untrained(model, simulated)
    users = simulated.select(np.arange(10))
    eager = net.score(users)
    assert net.trace()
    assert isinstance(net.traced, TracedEncoder)
    np.testing.assert_allclose(net.score(users), eager, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        eager_states = net.module.encode_last(net.batch(users))
    # several batches, rows reordered by length and back
    torch.testing.assert_close(net.hidden(users, batch_size=3), eager_states, rtol=1e-5, atol=1e-5)
    net.setup(simulated)  # a new module: its traces are gone
    assert net.traced is None


def test_a_model_that_cannot_be_traced_stays_eager(simulated: Sequences) -> None:
    net = MLP(MLPConfig(hidden=8))
    net.setup(simulated)
    assert not net.trace()
    assert net.traced is None
    with pytest.raises(ValueError, match="not traceable"):
        TracedEncoder(net.module)
    with pytest.raises(RuntimeError, match="not fitted"):
        MLP(MLPConfig()).trace()


def test_tracing_that_fails_or_differs_leaves_the_eager_pass(
    simulated: Sequences, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = untrained("sasrec", simulated)
    module = net.module.eval()
    batch = net.batch(simulated.select(np.arange(4)))
    with torch.inference_mode():
        eager = module.encode_last(batch)

        def refuse(*_: object, **__: object) -> None:
            raise RuntimeError("no TorchScript in this torch")

        monkeypatch.setattr(torch.jit, "trace", refuse)
        encoder = TracedEncoder(module)
        torch.testing.assert_close(encoder(batch), eager)
        assert encoder.layouts == 0

        def wrong(*_: object, **__: object) -> object:
            return lambda *tensors: torch.zeros_like(eager)

        monkeypatch.setattr(torch.jit, "trace", wrong)
        encoder = TracedEncoder(module)
        torch.testing.assert_close(encoder(batch), eager)
        assert encoder.layouts == 0


def test_a_module_with_forward_hooks_runs_eagerly(simulated: Sequences) -> None:
    """A trace skips Python hooks; explanations edit components through them."""
    module, encoder, batch = sasrec_encoder(simulated)
    with torch.inference_mode():
        plain = encoder(batch)
        handle = module.tokens.action.register_forward_hook(lambda _m, _i, out: out * 0.0)
        try:
            hooked, eager = encoder(batch), module.encode_last(batch)
        finally:
            handle.remove()
        torch.testing.assert_close(hooked, eager)
        assert not torch.allclose(hooked, plain)
        torch.testing.assert_close(encoder(batch), plain)  # the trace again, once unhooked


@pytest.mark.parametrize("model", TRACEABLE)
def test_a_trace_made_on_one_event_serves_every_batch_and_longer_ones(
    simulated: Sequences, model: str
) -> None:
    """The first batch may be one row of one event; batches longer than the window are cut
    to it, as in the eager pass."""
    net = untrained(model, simulated)
    module = net.module.eval()
    encoder = TracedEncoder(module)
    sizes = FeatureSizes.of(simulated)
    first = build_batch(simulated.select([0]), 1, sizes)  # (1, 1), no padding
    with torch.inference_mode():
        torch.testing.assert_close(encoder(first), module.encode_last(first))
        for rows in ([1, 2, 3], [4], list(range(9))):
            for window in (20, 35):  # 35: longer than the model's window of 20
                batch = build_batch(simulated.select(rows), window, sizes)
                torch.testing.assert_close(
                    encoder(batch), module.encode_last(batch), rtol=1e-5, atol=1e-5
                )


@pytest.mark.parametrize("model", TRACEABLE)
def test_a_first_batch_padded_only_beyond_the_window_traces_the_unpadded_layout(
    model: str,
) -> None:
    """Padding in columns the model drops is no padding: the batch after it, padded in the
    window, still gets the padded trace (padding masked)."""
    seqs = Sequences.from_lists([[1, 2, 3, 4, 5, 6, 7], [2, 3, 4, 5, 6, 7]], n_items=7)
    net = untrained(model, seqs, max_len=5)
    module = net.module.eval()
    encoder = TracedEncoder(module)
    sizes = FeatureSizes.of(seqs)
    wide = build_batch(seqs, 7, sizes)  # the second row's padding lies before the window
    padded = build_batch(Sequences.from_lists([[1, 2, 3, 4, 5], [6, 7]], n_items=7), 5, sizes)
    with torch.inference_mode():
        for batch in (wide, padded):
            torch.testing.assert_close(
                encoder(batch), module.encode_last(batch), rtol=1e-5, atol=1e-5
            )


@pytest.mark.parametrize("model", TRACEABLE)
def test_a_trace_made_on_copies_of_one_row_serves_different_rows(
    simulated: Sequences, model: str
) -> None:
    """HSTU shares the attention context of rows with equal times and padding in the eager
    pass; a trace must not keep that branch."""
    net = untrained(model, simulated)
    module = net.module.eval()
    encoder = TracedEncoder(module)
    sizes = FeatureSizes.of(simulated)
    long = np.flatnonzero(simulated.lengths >= 5)[:4]
    cut = simulated.select(long).last(5)  # four timelines of 5 events, with their times
    copies = build_batch(cut.select(np.zeros(3, dtype=np.int64)), 20, sizes)
    different = build_batch(cut, 20, sizes)
    assert bool(copies.mask.all())
    assert bool(different.mask.all())  # the same layout: the trace of the copies serves it
    assert not torch.equal(different.timestamps, different.timestamps[:1].expand(4, -1))
    with torch.inference_mode():
        torch.testing.assert_close(encoder(copies), module.encode_last(copies))
        assert encoder.layouts == 1
        torch.testing.assert_close(
            encoder(different), module.encode_last(different), rtol=1e-5, atol=1e-5
        )
        assert encoder.layouts == 1


def test_a_copied_or_rebuilt_model_does_not_use_the_old_trace(simulated: Sequences) -> None:
    net = untrained("sasrec", simulated)
    users = simulated.select(np.arange(5))
    assert net.trace()
    net.score(users)  # traces made
    assert net.traced is not None
    copied = copy.deepcopy(net)
    assert copied.traced is not None
    assert copied.traced.module is copied.module
    assert copied.traced.layouts == 0  # no traces of the original's weights
    with torch.no_grad():
        for p in copied.module.parameters():
            p.add_(torch.randn_like(p))
    assert not np.allclose(copied.score(users), net.score(users))
    with torch.inference_mode():
        eager = copied.module.encode_last(copied.batch(users))
    torch.testing.assert_close(copied.hidden(users), eager)
    other = untrained("sasrec", simulated)
    other.traced = net.traced  # a trace of another module: not used
    with torch.inference_mode():
        torch.testing.assert_close(
            other.hidden(users), other.module.encode_last(other.batch(users))
        )
    net.restore_meta(net.meta())
    assert net.traced is None


def test_training_mode_runs_eagerly(simulated: Sequences) -> None:
    """Not traced in training mode (with dropout, as the eager pass), nor once traced."""
    module, encoder, batch = sasrec_encoder(simulated)
    module.train()
    with torch.no_grad():
        for traced_before in (False, True):
            torch.manual_seed(1)
            dropped = encoder(batch)
            torch.manual_seed(1)
            torch.testing.assert_close(dropped, module.encode_last(batch))  # with dropout
            assert encoder.layouts == int(traced_before)
            module.eval()
            assert not torch.allclose(dropped, encoder(batch))  # traced now, no dropout
            module.train()

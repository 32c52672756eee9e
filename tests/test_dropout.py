"""Dropout with fast CPU masks: the rate, the scale, the gradient, seeds, and SASRec's
attention dropout."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from behaviorlm.models.dropout import Dropout, dropout, keep_mask
from behaviorlm.models.sasrec import Block, attention_bias, attention_with_dropout


@pytest.mark.parametrize("p", [0.1, 0.35, 0.5, 0.9])
def test_masks_drop_at_the_rate_asked(p: float) -> None:
    torch.manual_seed(1)
    kept = float(keep_mask((1000, 1000), p).float().mean())
    assert kept == pytest.approx(1 - p, abs=0.002)  # a million draws: sd below 0.0005


def test_draws_are_independent_across_the_words_of_the_generator() -> None:
    # four draws share each 64-bit word: neighbours must not be kept together more often
    torch.manual_seed(2)
    mask = keep_mask((1_000_000,), 0.5).float()
    together = float((mask[:-1] * mask[1:]).mean())
    assert together == pytest.approx(0.25, abs=0.003)


def test_seeds_make_masks_reproducible_and_calls_differ() -> None:
    torch.manual_seed(3)
    first, second = keep_mask((50, 40), 0.3), keep_mask((50, 40), 0.3)
    torch.manual_seed(3)
    assert torch.equal(keep_mask((50, 40), 0.3), first)
    assert not torch.equal(first, second)


def test_kept_values_are_scaled_and_the_gradient_follows_the_mask() -> None:
    x = torch.randn(200, 300, requires_grad=True)
    torch.manual_seed(4)
    y = dropout(x, 0.35, training=True)
    torch.manual_seed(4)
    keep = keep_mask(x.shape, 0.35)
    torch.testing.assert_close(y, torch.where(keep, x / 0.65, torch.zeros(())))
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, keep.float() / 0.65)


def test_outside_training_and_at_zero_it_is_the_identity() -> None:
    x = torch.randn(3, 4)
    assert torch.equal(dropout(x, 0.5, training=False), x)
    assert torch.equal(dropout(x, 0.0, training=True), x)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros(3, 4))


def test_the_module_drops_in_training() -> None:
    layer = Dropout(0.5).train()
    out = layer(torch.ones(10_000))
    assert 0.45 < float((out == 0).float().mean()) < 0.55
    assert set(out.unique().tolist()) == {0.0, 2.0}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_it_is_torchs_dropout() -> None:
    x = torch.ones(1000, device="cuda")
    torch.manual_seed(5)
    ours = dropout(x, 0.3, training=True)
    torch.manual_seed(5)
    torch.testing.assert_close(ours, functional.dropout(x, 0.3, True))


@pytest.mark.parametrize("kind", ["causal", "boolean", "additive", "none"])
def test_attention_without_dropping_equals_torchs(kind: str) -> None:
    q, k, v = torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    allowed = torch.rand(2, 1, 6, 6) > 0.3
    allowed[..., 0] = True  # every query sees a key
    mask = {"boolean": allowed, "additive": torch.randn(2, 1, 6, 6)}.get(kind)
    causal = kind == "causal"
    expected = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    torch.testing.assert_close(attention_with_dropout(q, k, v, mask, causal, 0.0), expected)


def test_attention_drops_the_weights_with_the_fast_mask() -> None:
    q, k, v = torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    weights = functional.scaled_dot_product_attention(
        q, k, torch.eye(6).expand(2, 2, 6, 6), is_causal=True
    )  # the attention weights themselves
    torch.manual_seed(6)
    got = attention_with_dropout(q, k, v, None, True, 0.25)
    torch.manual_seed(6)
    keep = keep_mask(weights.shape, 0.25)
    torch.testing.assert_close(got, torch.where(keep, weights / 0.75, 0.0) @ v)


@pytest.mark.parametrize("last", [False, True])
def test_a_block_in_training_masks_padding_as_in_evaluation(last: bool) -> None:
    # a rate that rounds to nothing dropped: training takes attention_with_dropout, evaluation
    # torch's attention, and both must mask the padded keys alike
    torch.manual_seed(7)
    block = Block(dim=8, heads=2, ffn_dim=16, dropout=1e-9)
    present = torch.ones(3, 6, dtype=torch.bool)
    present[0, :2] = False  # left padding
    present[1, :5] = False
    x, bias = torch.randn(3, 6, 8), attention_bias(present)
    trained = block.train()(x, bias, last=last)
    evaluated = block.eval()(x, bias, last=last)
    torch.testing.assert_close(trained, evaluated, atol=1e-5, rtol=1e-5)
    unmasked = block.train()(x, None, last=last)  # plain causal: padded keys seen
    assert not torch.allclose(unmasked[0], trained[0], atol=1e-3)


def test_attention_under_bf16_autocast_runs_in_single_precision() -> None:
    q, k, v = (torch.randn(2, 2, 6, 4).bfloat16() for _ in range(3))
    expected = functional.scaled_dot_product_attention(q.float(), k.float(), v.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attention_with_dropout(q, k, v, None, False, 0.0)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, atol=1e-2, rtol=1e-2)

"""HSTU: shapes, causality, padding invariance, relative biases, save/load, and that it learns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional

import behaviorlm as blm
from behaviorlm.models import MODELS
from behaviorlm.models import hstu as hstu_module
from behaviorlm.models.batch import FeatureSizes, SequenceBatch, build_batch
from behaviorlm.models.hstu import (
    HSTU,
    HSTUConfig,
    HSTUModule,
    position_buckets,
    time_buckets,
)
from behaviorlm.models.neural import FeatureConfig
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.schema import Sequences
from behaviorlm.train import TrainConfig, fit_model
from behaviorlm.train.losses import full_softmax_loss, sampled_softmax_loss

N_ITEMS = 12
CONFIG = HSTUConfig(max_len=8, dim=16, layers=2, heads=2, dropout=0.0)
#: the same model as is, with the absolute position embedding and cosine scores, and with
#: inputs not scaled by sqrt(dim)
BOTH = pytest.mark.parametrize(
    "config",
    [
        CONFIG,
        replace(CONFIG, absolute_position=True, similarity="cosine"),
        replace(CONFIG, scale_inputs=False),
    ],
    ids=["relative", "absolute-cosine", "unscaled"],
)


def timelines(lengths: list[int], seed: int = 0) -> Sequences:
    """Random timelines using every feature group (actions, times, values, context, queries)."""
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.integers(1, 6, size=n).astype(np.float32)
    values[rng.random(n) < 0.5] = np.nan
    gaps = rng.integers(1, 100_000, size=n)
    return Sequences(
        offsets=offsets,
        users=np.arange(len(lengths), dtype=np.int64),
        items=rng.integers(0, N_ITEMS + 1, size=n).astype(np.int64),
        actions=rng.integers(1, 5, size=n).astype(np.int64),
        timestamps=(1_700_000_000 + np.cumsum(gaps)).astype(np.int64),
        event_ids=np.arange(n, dtype=np.int64),
        values=values,
        devices=rng.integers(0, 3, size=n).astype(np.int64),
        locations=rng.integers(0, 4, size=n).astype(np.int64),
        sources=rng.integers(0, 3, size=n).astype(np.int64),
        n_items=N_ITEMS,
        extra={"query_words": rng.integers(0, 7, size=(n, 4)).astype(np.int64)},
    )


SEQS = timelines([8, 3, 5, 1])
SIZES = FeatureSizes.of(SEQS)


def module(config: HSTUConfig = CONFIG) -> HSTUModule:
    torch.manual_seed(0)
    return HSTUModule(config, SIZES).eval()


def encode(m: HSTUModule, seqs: Sequences) -> torch.Tensor:
    with torch.no_grad():
        return m.encode(build_batch(seqs, m.config.max_len, SIZES))


def edit(seqs: Sequences, event: int, **changes: object) -> Sequences:
    """A copy of ``seqs`` with some per-event fields of one event replaced."""
    arrays = {}
    for name, value in changes.items():
        column = getattr(seqs, name).copy()
        column[event] = value
        arrays[name] = column
    return replace(seqs, **arrays)


def test_registered() -> None:
    assert MODELS["hstu"] == (HSTUConfig, HSTU)


def test_encode_shape_and_finite() -> None:
    batch = build_batch(SEQS, CONFIG.max_len, SIZES)
    out = module().encode(batch)
    assert out.shape == (4, 8, 16)
    assert torch.isfinite(out).all()


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="divisible"):
        HSTUConfig(dim=10, heads=3)
    with pytest.raises(ValueError, match="dropout"):
        HSTUConfig(dropout=1.0)
    with pytest.raises(ValueError, match="layers"):
        HSTUConfig(layers=0)


def test_position_buckets_exact_then_logarithmic() -> None:
    b = position_buckets(64, n_buckets=8, max_len=64)
    last = b[-1].flip(0)  # distances 0..63 from the last position
    assert last[:4].tolist() == [0, 1, 2, 3]  # exact below n_buckets // 2
    assert (last.diff() >= 0).all()
    assert int(last.max()) == 7
    assert (b.triu(1) == 0).all()  # future positions are clamped to distance 0 (masked anyway)


def test_time_buckets_are_log2_of_seconds() -> None:
    ts = torch.tensor([[0, 1, 3, 1000, 10**9]])
    got = time_buckets(ts, n_buckets=20)[0, :, 0]
    # floor(log2(1 + dt)): dt = 0, 1, 3, 1000 -> 0, 1, 2, 9; 1e9 s -> 29, clamped to 19
    assert got.tolist() == [0, 1, 2, 9, 19]


@BOTH
def test_causal_no_event_changes_an_earlier_output(config: HSTUConfig) -> None:
    m = module(config)
    row = SEQS.row(0)  # 8 events
    base = encode(m, row)[0]
    for k in range(8):
        changed = edit(
            row,
            k,
            items=(row.items[k] % N_ITEMS) + 1,
            actions=(row.actions[k] % 4) + 1,
            devices=(row.devices[k] + 1) % 3,
            sources=(row.sources[k] + 1) % 3,
            timestamps=row.timestamps[k] + (500 if k == 7 else 0),
        )
        out = encode(m, changed)[0]
        torch.testing.assert_close(out[:k], base[:k], rtol=0, atol=1e-6)
        assert not torch.allclose(out[k], base[k], atol=1e-4)


@BOTH
def test_padding_invariance(config: HSTUConfig) -> None:
    m = module(config)
    together = encode(m, SEQS)  # rows padded on the left to the longest row
    for r, n in enumerate(SEQS.lengths):
        alone = encode(m, SEQS.row(r))[0]  # no padding
        torch.testing.assert_close(together[r, -n:], alone, rtol=1e-5, atol=1e-5)


def test_layer_matches_the_equations_of_the_paper() -> None:
    """One layer against a loop-by-loop transcription of the HSTU equations."""
    m = module()
    layer = m.layers[0]
    with torch.no_grad():  # biases away from their tiny init so that mistakes show
        layer.position_bias.normal_()
        layer.time_bias.normal_()
    batch = build_batch(SEQS, CONFIG.max_len, SIZES)
    b, t = batch.shape
    x = torch.randn(b, t, CONFIG.dim)
    mask = batch.mask
    allowed = (torch.ones(t, t).tril().bool() & mask[:, None, :]).float()
    allowed = (allowed / allowed.sum(-1, keepdim=True).clamp(min=1)).unsqueeze(1)
    pos = position_buckets(t, CONFIG.position_buckets, CONFIG.max_len)
    times = time_buckets(batch.timestamps, CONFIG.time_buckets)
    with torch.no_grad():
        got = layer(x, allowed, pos, times)
        silu = torch.nn.functional.silu
        u, v, q, k = silu(layer.uvqk(layer.norm_in(x))).split(CONFIG.dim, dim=-1)
        h, d = CONFIG.heads, CONFIG.dim // CONFIG.heads
        av = torch.zeros(b, t, CONFIG.dim)
        for r in range(b):
            for i in range(t):
                keys = [j for j in range(i + 1) if mask[r, j]]
                for head in range(h):
                    cols = slice(head * d, (head + 1) * d)
                    for j in keys:
                        dt = int(batch.timestamps[r, i] - batch.timestamps[r, j])
                        bias = (
                            layer.position_bias[pos[i, j], head]
                            + (layer.time_bias[min(int(np.log2(1 + dt)), 31), head])
                        )
                        score = q[r, i, cols] @ k[r, j, cols] / d**0.5 + bias
                        av[r, i, cols] += silu(score) / len(keys) * v[r, j, cols]
        want = x + layer.out(layer.norm_attn(av) * u)
    valid = mask.unsqueeze(-1).expand_as(x)
    torch.testing.assert_close(got[valid], want[valid], rtol=1e-4, atol=1e-5)


def test_absolute_position_counts_from_the_last_event_and_reads_max_len() -> None:
    m = module(replace(CONFIG, absolute_position=True))
    assert m.position is not None
    assert m.position.num_embeddings == CONFIG.max_len
    row = SEQS.row(2)  # 5 events: positions 4 (the oldest) to 0 (the last)
    base = encode(m, row)[0]
    with torch.no_grad():
        m.position.weight[0] += torch.randn(CONFIG.dim)  # the last event's position
    moved = encode(m, row)[0]
    torch.testing.assert_close(moved[:-1], base[:-1])  # earlier states never see position 0
    assert not torch.allclose(moved[-1], base[-1], atol=1e-4)
    with torch.no_grad():
        m.position.weight[4] += torch.randn(CONFIG.dim)  # the oldest event's position
    assert not torch.allclose(encode(m, row)[0, 0], moved[0], atol=1e-4)
    longer = timelines([12], seed=4)  # 12 events: the model reads the last 8
    with torch.no_grad():
        whole = m.encode_last(build_batch(longer, 12, SIZES))
        window = m.encode_last(build_batch(longer, 8, SIZES))
    torch.testing.assert_close(whole, window)
    assert module().position is None  # off by default


def test_rows_of_one_timeline_share_one_attention_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = module()
    shapes: list[tuple[int, ...]] = []
    original = hstu_module.time_buckets

    def spy(timestamps: torch.Tensor, n_buckets: int) -> torch.Tensor:
        shapes.append(tuple(timestamps.shape))
        return original(timestamps, n_buckets)

    monkeypatch.setattr(hstu_module, "time_buckets", spy)
    one = SEQS.row(0)
    copies = build_batch(SEQS.select(np.zeros(4, dtype=np.int64)), CONFIG.max_len, SIZES)
    mixed = build_batch(SEQS, CONFIG.max_len, SIZES)
    with torch.no_grad():
        alone = m.encode_last(build_batch(one, CONFIG.max_len, SIZES))
        shared = m.encode_last(copies)
        each = m.encode_last(mixed)
    assert shapes[1] == (1, CONFIG.max_len)  # one row of buckets for the four copies
    assert shapes[2][0] == len(SEQS)  # different rows: their own
    torch.testing.assert_close(shared, alone.expand(4, -1), rtol=1e-5, atol=1e-6)
    for r in range(len(SEQS)):
        with torch.no_grad():
            single = m.encode_last(build_batch(SEQS.row(r), CONFIG.max_len, SIZES))
        torch.testing.assert_close(each[r : r + 1], single, rtol=1e-5, atol=1e-5)


def test_unscaled_inputs_enter_the_first_layer_as_the_bare_tokens() -> None:
    scaled, bare = module(), module(replace(CONFIG, scale_inputs=False))  # the same weights
    batch = build_batch(SEQS.row(0), CONFIG.max_len, SIZES)
    seen: list[torch.Tensor] = []
    for m in (scaled, bare):
        hook = m.layers[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        with torch.no_grad():
            tokens = m.tokens(batch)
            m.encode(batch)
        hook.remove()
    torch.testing.assert_close(seen[0], tokens * CONFIG.dim**0.5)
    torch.testing.assert_close(seen[1], tokens)


def test_cosine_scores_are_cosines_over_the_temperature() -> None:
    m = module(replace(CONFIG, similarity="cosine", temperature=0.1))
    with torch.no_grad():
        hidden = m.encode_last(build_batch(SEQS, 8, SIZES))
        scores = m.logits(hidden)[:, 1:]
        raw = m.tokens.item.weight[1:]
        plain = module(CONFIG)  # the same weights (same seed), dot products
        direction = plain.encode_last(build_batch(SEQS, 8, SIZES))
    cosine = functional.cosine_similarity(direction[:, None, :], raw[None, :, :], dim=-1)
    torch.testing.assert_close(scores, cosine / 0.1, rtol=1e-4, atol=1e-4)
    assert float(scores.abs().max()) <= 1 / 0.1 + 1e-4
    with torch.no_grad():  # a chunk of the catalogue normalises its own rows only, alike
        torch.testing.assert_close(m.logits(hidden, slice(2, 5)), scores[:, 1:4])
    with pytest.raises(ValueError, match="temperature"):
        HSTUConfig(similarity="cosine", temperature=0.0)
    with pytest.raises(ValueError, match="similarity"):
        HSTUConfig(similarity="l2")  # type: ignore[arg-type]
    from behaviorlm.config import ConfigError
    from behaviorlm.train import resolve_run_config

    with pytest.raises(ConfigError, match="with 'dot' it does nothing"):
        resolve_run_config("hstu", overrides=["model.temperature=5"])  # the dot takes none
    assert HSTUConfig(temperature=5.0).temperature == 5.0  # a saved model's config still loads
    with pytest.raises(ConfigError, match=r"which model\.features\.time = false turns off"):
        resolve_run_config(
            "hstu", overrides=["model.time_buckets=7", "model.features={time=false}"]
        )


def test_cosine_scores_in_both_losses_read_normalised_rows() -> None:
    m = module(replace(CONFIG, similarity="cosine"))
    hidden = torch.randn(3, CONFIG.dim)
    targets, negatives = torch.tensor([1, 4, 7]), torch.tensor([2, 3, 4, 9])
    log_q = torch.zeros(N_ITEMS + 1)
    unit = functional.normalize(m.tokens.item.weight, dim=-1)  # (N + 1, D)
    logits = torch.cat(
        [(hidden * unit[targets]).sum(-1, keepdim=True), hidden @ unit[negatives].T], 1
    )
    logits[1, 3] = float("-inf")  # item 4 is the second position's target: masked
    expected = functional.cross_entropy(logits, torch.zeros(3, dtype=torch.long))
    got = sampled_softmax_loss(m, hidden, targets, negatives, log_q)
    torch.testing.assert_close(got, expected)
    full = functional.cross_entropy(hidden @ unit[1:].T, targets - 1)
    torch.testing.assert_close(full_softmax_loss(m, hidden, targets), full)


def test_cosine_scores_normalise_only_the_rows_they_read(monkeypatch: pytest.MonkeyPatch) -> None:
    m = module(replace(CONFIG, similarity="cosine"))
    rows: list[int] = []
    normalize = functional.normalize

    def spy(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        rows.append(x.shape[0])
        return normalize(x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(functional, "normalize", spy)
    hidden = torch.randn(2, CONFIG.dim)
    m.logits(hidden, slice(2, 5))  # a chunk of 3 items
    sampled_softmax_loss(m, hidden, torch.tensor([1, 4]), torch.tensor([2, 3, 9]), torch.zeros(13))
    assert rows == [3, 2, 3]  # the chunk, the targets, the negatives; never the whole table


def test_relative_time_bias_follows_the_time_switch() -> None:
    row = SEQS.row(0)
    later = edit(row, 0, timestamps=row.timestamps[0] - 10**6)  # first event a day earlier
    with_time = module()
    assert not torch.allclose(encode(with_time, row)[0, -1], encode(with_time, later)[0, -1])
    # with time off (no gap embedding, no time bias) only the order of events matters
    no_time = module(replace(CONFIG, features=replace(FeatureConfig(), time=False)))
    torch.testing.assert_close(encode(no_time, row), encode(no_time, later))


def test_dropout_only_in_training_mode() -> None:
    m = module(replace(CONFIG, dropout=0.5))
    batch = build_batch(SEQS, 8, SIZES)
    torch.testing.assert_close(m.encode(batch), m.encode(batch))
    m.train()
    assert not torch.allclose(m.encode(batch), m.encode(batch))


@BOTH
def test_gradients_reach_every_parameter(config: HSTUConfig) -> None:
    m = module(config).train()
    batch: SequenceBatch = build_batch(SEQS, 8, SIZES)
    m.logits(m.encode(batch)).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None and "action_head" not in n]
    assert missing == []


@BOTH
def test_save_load_identical_scores(tmp_path: Path, config: HSTUConfig) -> None:
    model = HSTU(config)
    model.setup(SEQS, seed=3)
    model.save(tmp_path / "hstu")
    loaded = HSTU.load(tmp_path / "hstu")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.score(SEQS), model.score(SEQS))
    assert model.score(SEQS, slice(2, 5)).shape == (4, 3)


def test_learns_the_simulator_beyond_popularity() -> None:
    split = blm.leave_one_out(blm.preprocess(blm.simulate(300, seed=0)))
    model = HSTU(HSTUConfig(dim=32, layers=1, heads=2, max_len=50))
    epochs = 20
    # validation only after the last epoch: the reported score is not selected on itself
    train = TrainConfig(epochs=epochs, eval_every=epochs, batch_size=64, lr=1e-2, threads=1)
    summary = fit_model(model, split, train, progress=False)
    pop = blm.evaluate(Pop(PopConfig()).fit(split.train), split.valid, ks=(10,))
    pop_ndcg = pop.metrics["NDCG"][10]
    assert summary["best_epoch"] == epochs
    assert summary["best_valid"]["NDCG@10"] > 1.5 * pop_ndcg, (summary, pop_ndcg)


def test_time_buckets_are_floor_log2_at_every_power_of_two() -> None:
    powers = 2 ** torch.arange(1, 41, dtype=torch.int64)
    seconds = torch.cat([torch.arange(100), powers - 2, powers - 1, powers])  # 1 + dt around 2^k
    stamps = torch.stack([torch.zeros_like(seconds), seconds], dim=1)  # (N, 2): then, now
    buckets = time_buckets(stamps, n_buckets=64)[:, 1, 0]  # from the first event to the second
    expected = torch.floor(torch.log2(1.0 + seconds.double())).long()
    assert torch.equal(buckets, expected)

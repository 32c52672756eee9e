"""The feed-forward baseline: the formula, causality, padding, the losses, save/load, learning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import behaviorlm as blm
from behaviorlm.config import ConfigError
from behaviorlm.data.split import Split
from behaviorlm.models import MODELS
from behaviorlm.models.batch import FeatureSizes, build_batch
from behaviorlm.models.mlp import MLP, MLPConfig, MLPModule, item_weights
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.schema import EvalSet, Sequences
from behaviorlm.train import TrainConfig, fit_model

N_ITEMS = 9
CONFIG = MLPConfig(max_len=10, hidden=8, dropout=0.0)


def history(items: list[int], values: list[float] | None = None) -> Sequences:
    """One timeline with optional ratings (NaN = no value) and other groups set."""
    s = Sequences.from_lists([items], n_items=N_ITEMS)
    n = len(items)
    vals = np.array(values if values is not None else [np.nan] * n, dtype=np.float32)
    return replace(
        s,
        values=vals,
        actions=np.arange(n, dtype=np.int64) % 3 + 1,
        devices=np.arange(n, dtype=np.int64) % 2,
        timestamps=np.arange(n, dtype=np.int64) * 1000,
    )


SIZES = FeatureSizes.of(history([1, 2, 3]))


def module(config: MLPConfig = CONFIG) -> MLPModule:
    torch.manual_seed(0)
    m = MLPModule(config, SIZES).eval()
    with torch.no_grad():  # a non-zero bias, so that it shows up in the formula
        m.hidden_bias.normal_()
    return m


def encode(m: MLPModule, seqs: Sequences) -> torch.Tensor:
    with torch.no_grad():
        return m.encode(build_batch(seqs, m.config.max_len, SIZES))


def test_registered() -> None:
    assert MODELS["mlp"] == (MLPConfig, MLP)


def test_encode_shapes_and_output_layer() -> None:
    m = module()
    seqs = Sequences.from_lists([[1, 2, 3], [4], []], n_items=N_ITEMS)
    hidden = encode(m, seqs)
    assert hidden.shape == (3, 3, 8)
    assert (hidden >= 0).all()  # a ReLU layer
    # scores come from the separate output layer (N + 1, hidden) with its bias
    assert m.item_embeddings() is m.output.weight
    assert m.item_embeddings().shape == (N_ITEMS + 1, 8)
    assert m.item_embeddings() is not m.tokens.item.weight
    torch.testing.assert_close(
        m.logits(hidden), hidden @ m.output.weight.T + m.output.bias, rtol=0, atol=0
    )


def test_hidden_layer_is_the_normalised_weighted_multi_hot() -> None:
    m = module()
    # item 3 unrated (weight 1), item 5 rated 4 of 5 (0.8), item 3 again, now rated 2 (a
    # multi-hot: counted once, with its rating 0.4 from then on), a search without an item
    # (ignored), item 7 rated 5 (1.0)
    seqs = history([3, 5, 3, 0, 7], [np.nan, 4.0, 2.0, np.nan, 5.0])
    W1, b1 = m.tokens.item.weight.detach(), m.hidden_bias.detach()
    x = torch.zeros(N_ITEMS + 1)
    x[[3, 5, 7]] = torch.tensor([0.4, 0.8, 1.0])
    want = torch.relu(x @ W1 / x.norm() + b1)
    torch.testing.assert_close(encode(m, seqs)[0, -1], want, rtol=1e-5, atol=1e-6)
    # the prefix after two events: items 3 and 5 only
    x2 = torch.zeros(N_ITEMS + 1)
    x2[[3, 5]] = torch.tensor([1.0, 0.8])
    torch.testing.assert_close(encode(m, seqs)[0, 1], torch.relu(x2 @ W1 / x2.norm() + b1))
    # normalised by the sum instead
    by_sum = module(replace(CONFIG, normalize="sum"))
    got = encode(by_sum, seqs)[0, -1]
    torch.testing.assert_close(got, torch.relu(x @ W1 / x.sum() + b1), rtol=1e-5, atol=1e-6)


def test_rating_scale_weights_rated_items() -> None:
    m = module(replace(CONFIG, normalize="none", rating_scale=10.0))
    W1, b1 = m.tokens.item.weight.detach(), m.hidden_bias.detach()
    got = encode(m, history([2, 6], [5.0, np.nan]))[0, -1]
    torch.testing.assert_close(got, torch.relu(0.5 * W1[2] + W1[6] + b1))


def test_values_that_are_no_ratings_weigh_nothing_or_are_refused() -> None:
    watched = history([2, 6], [600.0, 30.0])  # watch times in seconds
    m = module(replace(CONFIG, normalize="none", ratings=False))
    W1, b1 = m.tokens.item.weight.detach(), m.hidden_bias.detach()
    torch.testing.assert_close(encode(m, watched)[0, -1], torch.relu(W1[2] + W1[6] + b1))
    for values in ([600.0, 30.0], [-1.0, 1.0]):
        with pytest.raises(ValueError, match=r"ratings from 0 to model\.rating_scale \(5\)"):
            MLP(CONFIG).setup(history([2, 6], values))
    MLP(replace(CONFIG, ratings=False)).setup(watched)  # read as no ratings: taken
    MLP(replace(CONFIG, rating_scale=600.0)).setup(watched)  # or as ratings up to 600
    MLP(CONFIG).setup(history([2, 6], [5.0, np.nan]))
    from behaviorlm.train import resolve_run_config

    with pytest.raises(ConfigError, match=r"model\.ratings = false leaves unread"):
        resolve_run_config("mlp", overrides=["model.ratings=false", "model.rating_scale=10"])
    resolve_run_config("mlp", overrides=["model.ratings=false"])  # the scale left alone


def test_an_item_weighs_its_latest_rating() -> None:
    items = torch.tensor([[0, 4, 4, 2, 4, 4], [3, 3, 1, 1, 3, 3]])
    mask = torch.tensor([[False] + [True] * 5, [True] * 6])
    nan = float("nan")
    values = torch.tensor([[nan, nan, 0.6, nan, nan, 0.2], [0.8, nan, nan, 0.4, nan, 1.0]])
    rated = ~torch.isnan(values)
    now, before = item_weights(items, mask, rated, torch.nan_to_num(values))
    # row 0: item 4 viewed (1), rated 0.6, item 2 (1), item 4 again (still 0.6), rated 0.2
    assert now[0].tolist() == pytest.approx([0.0, 1.0, 0.6, 1.0, 0.6, 0.2])
    assert before[0].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0, 0.6, 0.6])
    # row 1: item 3 rated 0.8 and kept through its repeat; item 1 viewed, then rated 0.4
    assert now[1].tolist() == pytest.approx([0.8, 0.8, 1.0, 0.4, 0.8, 1.0])
    assert before[1].tolist() == pytest.approx([0.0, 0.8, 0.0, 1.0, 0.8, 0.8])


def test_a_rating_after_a_view_sets_the_weight() -> None:
    # a view of item 2, then its rating of 1 star: the item weighs 0.2 from the rating on,
    # in the vector and in its norm, as a timeline with the rating alone
    m = module(replace(CONFIG, normalize="l2"))
    viewed_first = encode(m, history([2, 6, 2], [np.nan, np.nan, 1.0]))[0, -1]
    rated_only = encode(m, history([6, 2], [np.nan, 1.0]))[0, -1]
    torch.testing.assert_close(viewed_first, rated_only, rtol=1e-5, atol=1e-6)
    five_stars = encode(m, history([2, 6, 2], [np.nan, np.nan, 5.0]))[0, -1]
    assert not torch.allclose(viewed_first, five_stars)


def test_only_the_item_history_matters() -> None:
    m = module()
    a = history([1, 4, 2])
    b = replace(
        a, actions=np.array([4, 4, 4]), devices=np.array([1, 1, 1]), timestamps=np.arange(3)
    )
    torch.testing.assert_close(encode(m, a), encode(m, b), rtol=0, atol=0)
    # a bag: the order of the history does not change the last state
    torch.testing.assert_close(encode(m, a)[0, -1], encode(m, history([2, 1, 4]))[0, -1])


def test_causal_no_event_changes_an_earlier_output() -> None:
    m = module()
    row = history([1, 2, 3, 4, 5, 6], [np.nan, 3.0, np.nan, 1.0, np.nan, 2.0])
    base = encode(m, row)[0]
    for k in range(6):
        items = row.items.copy()
        items[k] = 9
        out = encode(m, replace(row, items=items))[0]
        torch.testing.assert_close(out[:k], base[:k], rtol=0, atol=0)
        assert not torch.allclose(out[k], base[k])


def test_padding_invariance_and_window() -> None:
    m = module()
    seqs = Sequences.from_lists([[1, 2, 3, 4, 5, 6, 7], [8, 9], [3]], n_items=N_ITEMS)
    together = encode(m, seqs)
    for r, n in enumerate(seqs.lengths):
        alone = encode(m, seqs.row(r))[0]
        torch.testing.assert_close(together[r, -n:], alone, rtol=1e-6, atol=1e-6)
    # only the last max_len events form the vector
    short = module(replace(CONFIG, max_len=2))
    last_two = encode(short, Sequences.from_lists([[6, 7]], n_items=N_ITEMS))[0, -1]
    torch.testing.assert_close(encode(short, seqs)[0, -1], last_two)


def test_squared_loss_matches_one_hot_and_ce_defers() -> None:
    m = module(replace(CONFIG, loss="squared"))
    hidden = torch.rand(5, 8, requires_grad=True)
    targets = torch.tensor([1, 9, 4, 4, 2])
    loss = m.item_loss(hidden, targets)
    assert loss is not None
    p = torch.softmax(m.logits(hidden, slice(1, None)), dim=-1)
    one_hot = torch.nn.functional.one_hot(targets - 1, N_ITEMS).float()
    torch.testing.assert_close(loss, ((p - one_hot) ** 2).sum(-1).mean())
    loss.backward()
    assert hidden.grad is not None
    assert m.output.weight.grad is not None
    assert module().item_loss(hidden, targets) is None  # "ce": the training loop's own loss


def test_squared_loss_holds_one_chunk_of_the_softmax() -> None:
    m = module(replace(CONFIG, loss="squared"))
    hidden = torch.rand(7, 8, requires_grad=True)
    targets = torch.tensor([1, 9, 4, 4, 2, 3, 8])
    whole = m.item_loss(hidden, targets)
    assert whole is not None
    expected = torch.autograd.grad(whole, [hidden, m.output.weight])
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        chunked = m.item_loss(hidden, targets, chunk_elements=2 * N_ITEMS)  # 2 rows at a time
    assert chunked is not None
    # nothing that the backward pass keeps is as large as the 7 x 9 softmax
    assert max(saved) < 7 * N_ITEMS
    torch.testing.assert_close(chunked, whole)
    grads = torch.autograd.grad(chunked, [hidden, m.output.weight])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="rating_scale"):
        MLPConfig(rating_scale=0.0)
    with pytest.raises(ValueError, match="loss"):
        MLPConfig(loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hidden"):
        MLPConfig(hidden=0)


def test_holds_no_unused_token_tables() -> None:
    m = MLPModule(CONFIG, FeatureSizes(items=10, actions=5, devices=4, query_words=50))
    tokens = m.tokens
    assert tokens.item.weight.shape == (10, 8)
    assert tokens.query.weight.shape[0] == 1
    assert tokens.device.weight.shape[0] == 1
    assert m.action_head.out_features == 5  # the next-action head keeps the real vocabulary


def test_save_load_identical_scores(tmp_path: Path) -> None:
    seqs = Sequences.from_lists([[1, 2, 3], [4, 4], [], [0]], n_items=N_ITEMS)
    model = MLP(CONFIG)
    model.setup(seqs, seed=1)
    model.save(tmp_path / "mlp")
    loaded = MLP.load(tmp_path / "mlp")
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.score(seqs), model.score(seqs))


def test_learns_the_simulator_beyond_popularity() -> None:
    split = blm.leave_one_out(blm.preprocess(blm.simulate(300, seed=0)))
    model = MLP(MLPConfig(hidden=128))
    epochs = 15
    # validation only after the last epoch: the reported score is not selected on itself
    train = TrainConfig(epochs=epochs, eval_every=epochs, batch_size=64, lr=1e-2, threads=1)
    summary = fit_model(model, split, train, progress=False)
    pop = blm.evaluate(Pop(PopConfig()).fit(split.train), split.valid, ks=(10,))
    pop_ndcg = pop.metrics["NDCG"][10]
    assert summary["best_epoch"] == epochs
    assert summary["best_valid"]["NDCG@10"] > 1.2 * pop_ndcg, (summary, pop_ndcg)


def test_the_squared_loss_refuses_another_training_loss() -> None:
    split = blm.leave_one_out(blm.preprocess(blm.simulate(30, seed=0)))
    model = MLP(replace(CONFIG, loss="squared"))
    with pytest.raises(ConfigError, match="would be ignored"):
        fit_model(model, split, TrainConfig(loss="sampled", epochs=1), progress=False)


def test_an_item_no_training_input_holds_keeps_no_random_first_layer_row() -> None:
    # item 9 is only ever a row's last event: a target, never an input
    rows = [[1, 2, 3, 9], [2, 3, 4, 9], [3, 4, 5], [1, 5, 2, 6], [7, 8, 1]] * 4
    train = Sequences.from_lists(rows, n_items=N_ITEMS)
    model = MLP(CONFIG)
    fast = TrainConfig(epochs=2, batch_size=4, threads=1, patience=0, device="cpu")
    held = EvalSet(
        histories=train,
        target_offsets=np.arange(len(train) + 1, dtype=np.int64),
        targets=np.ones(len(train), dtype=np.int64),
        target_event_ids=np.zeros(len(train), dtype=np.int64),
    )
    split = Split(train=train, valid=held, test=held, protocol="leave_one_out")
    fit_model(model, split, fast, progress=False)
    weight = model.module.tokens.item.weight
    assert not bool(weight[9].any())
    assert bool(weight[1].any())
    empty = model.score(Sequences.from_lists([[]], n_items=N_ITEMS))
    alone = model.score(Sequences.from_lists([[9]], n_items=N_ITEMS))
    np.testing.assert_allclose(alone, empty, atol=1e-6)  # read as unknown, as nothing

"""Leave-one-out deletions: the shared work of SASRec and HSTU equals encoding every row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import behaviorlm as blm
from behaviorlm.explain.occlusion import closing_gaps
from behaviorlm.models import deletions, hstu, hstu_deletions, sasrec, sasrec_deletions
from behaviorlm.models.batch import FeatureSizes, build_batch
from behaviorlm.models.deletions import DeletionInputs
from behaviorlm.models.hstu import (
    HSTUConfig,
    HSTULayer,
    HSTUModule,
    position_buckets,
    time_buckets_between,
)
from behaviorlm.models.hstu_deletions import first_layer_without
from behaviorlm.models.neural import FeatureConfig, SequenceModule
from behaviorlm.models.sasrec import SASRecConfig, SASRecModule
from behaviorlm.models.sasrec_deletions import first_block_without
from behaviorlm.schema import Sequences

#: "hstu+position": HSTU with the absolute position embedding besides the relative biases and
#: cosine scores; "hstu+unscaled": HSTU with inputs not scaled by sqrt(dim)
SHARED = ("sasrec", "hstu", "hstu+position", "hstu+unscaled")


@pytest.fixture(scope="module")
def simulated() -> Sequences:
    """Timelines with every feature group: searches, social events, devices, locations."""
    return blm.preprocess(blm.simulate(60, seed=5)).sequences()


def module_for(
    model: str, seqs: Sequences, layers: int, max_len: int, **options: object
) -> SequenceModule:
    torch.manual_seed(0)
    sizes = FeatureSizes.of(seqs)
    shape = {"dim": 16, "heads": 2, "layers": layers, "max_len": max_len, **options}
    if model == "sasrec":
        return SASRecModule(sizes, SASRecConfig(**shape))  # type: ignore[arg-type]
    if model == "hstu+position":
        shape.update(absolute_position=True, similarity="cosine")
    if model == "hstu+unscaled":
        shape.update(scale_inputs=False)
    return HSTUModule(HSTUConfig(**shape), sizes)  # type: ignore[arg-type]


def deletions_and_rescoring(
    module: SequenceModule, history: Sequences, events: np.ndarray, max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``encode_last_without`` for ``events`` (flat indices), its generic path, and the
    states of the rows re-encoded from the timeline without each event."""
    sizes, n = module.sizes, len(history.items)
    reach = min(n, max_len + 1)
    drop = torch.from_numpy(events - (n - reach))
    gaps = torch.from_numpy(closing_gaps(history, events, sizes.gaps))
    batch, every = build_batch(history, reach, sizes), np.arange(n)
    with torch.no_grad():
        rows = [history.take_events(every != i) for i in events]
        rescored = torch.cat([module.encode_last(build_batch(r, max_len, sizes)) for r in rows])
        generic = module.encode_last(batch.without(drop, gaps))  # the default path
        return module.encode_last_without(batch, drop, gaps), generic, rescored


def _no_fallback(*_: object) -> torch.Tensor:
    raise AssertionError("the model took the generic path")


@pytest.mark.parametrize("model", SHARED)
@pytest.mark.parametrize(
    ("layers", "max_len", "length", "some"),
    [
        (2, 20, 35, False),  # longer than the window: an older event enters on each deletion
        (3, 20, 20, False),  # exactly the window
        (2, 30, 12, False),  # shorter than the window
        (1, 20, 35, False),  # the last layer only
        (2, 50, 60, True),  # several groups; some of the events, in shuffled order
        (0, 20, 35, False),  # no layers: the generic path
    ],
)
def test_deletions_share_work_and_equal_rescoring(
    simulated: Sequences,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    layers: int,
    max_len: int,
    length: int,
    some: bool,
) -> None:
    if model.startswith("hstu") and layers == 0:
        pytest.skip("hstu has at least one layer")
    row = simulated.row(int(np.flatnonzero(simulated.lengths >= length)[0]))
    history = row.take_events(np.arange(len(row.items)) >= len(row.items) - length)
    module = module_for(model, history, layers, max_len).eval()
    n = len(history.items)
    events = np.arange(n - min(n, max_len), n)  # every event the model reads
    if some:
        events = np.random.default_rng(0).permutation(events)[: len(events) - 7]
    if layers:  # the shared path must not fall back to the default one
        monkeypatch.setattr(SequenceModule, "encode_last_without", _no_fallback)
    shared, generic, rescored = deletions_and_rescoring(module, history, events, max_len)
    torch.testing.assert_close(shared, generic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, rescored, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", SHARED)
def test_deletions_of_nothing_and_of_a_single_event(simulated: Sequences, model: str) -> None:
    history = simulated.row(0)
    module = module_for(model, history, layers=2, max_len=50).eval()
    sizes, n = module.sizes, len(history.items)
    with torch.no_grad():
        batch = build_batch(history, 50, sizes)
        none = module.encode_last_without(batch, *torch.zeros(2, 0, dtype=torch.long))
        alone = build_batch(history.take_events(np.arange(n) == 0), 50, sizes)
        empty = build_batch(history.take_events(np.zeros(n, dtype=bool)), 50, sizes)
        without = module.encode_last_without(alone, torch.tensor([0]), torch.tensor([1]))
        torch.testing.assert_close(without, module.encode_last(empty))
    assert none.shape == (0, 16)


@pytest.mark.parametrize("model", SHARED)
@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("the last event only", {}),
        ("float64 weights", {}),
        ("no time features", {"features": FeatureConfig(time=False)}),
    ],
)
def test_deletions_share_work_in_other_settings(
    simulated: Sequences,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    case: str,
    options: dict[str, object],
) -> None:
    history = simulated.row(int(np.flatnonzero(simulated.lengths >= 30)[0]))
    module = module_for(model, history, 2, 20, **options).eval()
    if case == "float64 weights":
        module = module.double()
    n = len(history.items)
    events = np.array([n - 1]) if case == "the last event only" else np.arange(n - 20, n)
    monkeypatch.setattr(SequenceModule, "encode_last_without", _no_fallback)
    shared, generic, rescored = deletions_and_rescoring(module, history, events, 20)
    assert shared.dtype == rescored.dtype
    torch.testing.assert_close(shared, generic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, rescored, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", SHARED)
def test_deletions_in_training_mode_take_the_generic_path(simulated: Sequences, model: str) -> None:
    history = simulated.row(0)
    module = module_for(model, history, layers=2, max_len=50, dropout=0.5)
    batch = build_batch(history, 50, module.sizes)
    drop, gaps = torch.tensor([0, 1]), torch.tensor([1, 1])
    module.train()
    torch.manual_seed(1)
    generic = SequenceModule.encode_last_without(module, batch, drop, gaps)
    torch.manual_seed(1)
    torch.testing.assert_close(module.encode_last_without(batch, drop, gaps), generic)


class FirstBlockSpy:
    """Records whether SASRec's first block took the prefix sums (a result) or not (None)."""

    def __init__(self) -> None:
        self.results: list[bool] = []

    def __call__(self, *args: Any) -> torch.Tensor | None:
        out = sasrec_deletions.first_block_without(*args)
        self.results.append(out is not None)
        return out


@pytest.mark.parametrize(
    ("case", "trusted"),
    [
        ("as trained", True),
        ("a query at a time", True),
        ("peaked attention", False),  # scores hundreds apart: the groups' path
        ("no sums trusted", False),
    ],
)
def test_sasrec_first_block_by_prefix_sums(
    simulated: Sequences, monkeypatch: pytest.MonkeyPatch, case: str, trusted: bool | None
) -> None:
    """Every deletion row through SASRec's first block at once equals re-encoding the rows;
    where the sums cannot be trusted the rows take the groups' path, with the same states."""
    history = simulated.row(int(np.flatnonzero(simulated.lengths >= 40)[0]))
    module = module_for("sasrec", history, layers=3, max_len=30).eval()
    assert isinstance(module, SASRecModule)
    if case == "peaked attention":  # a row's sum far below its query's largest weight
        with torch.no_grad():
            module.blocks[0].qkv.weight[:32] *= 30.0
    if case == "a query at a time":  # running sums of one query each
        monkeypatch.setattr(deletions, "SUM_ELEMENTS", 1)
    if case == "no sums trusted":
        monkeypatch.setattr(sasrec_deletions, "TINY", float("inf"))
    spy = FirstBlockSpy()
    monkeypatch.setattr(sasrec, "first_block_without", spy)
    n = len(history.items)
    events = np.random.default_rng(1).permutation(np.arange(n - 30, n))[:25]
    shared, generic, rescored = deletions_and_rescoring(module, history, events, 30)
    assert spy.results == [trusted]
    torch.testing.assert_close(shared, generic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, rescored, rtol=1e-5, atol=1e-5)


def test_first_block_leaves_half_precision_to_the_groups(simulated: Sequences) -> None:
    history = simulated.row(0)
    module = module_for("sasrec", history, layers=2, max_len=50).eval()
    assert isinstance(module, SASRecModule)
    block = module.blocks[0].to(torch.bfloat16)
    shared = torch.zeros(3, 16, dtype=torch.bfloat16)
    parts = DeletionInputs(shared, shared, shared[:1], torch.tensor([1]))
    assert first_block_without(block, parts, shared) is None


@pytest.mark.parametrize("model", ["hstu", "hstu+position"])
@pytest.mark.parametrize("time", [True, False], ids=["time", "no-time"])
def test_hstu_first_layer_by_running_sums(
    simulated: Sequences, monkeypatch: pytest.MonkeyPatch, model: str, time: bool
) -> None:
    """HSTU's first layer takes every deletion row at once (pointwise attention: nothing to
    stabilise), one query at a time too, and equals re-encoding the rows."""
    history = simulated.row(int(np.flatnonzero(simulated.lengths >= 40)[0]))
    module = module_for(model, history, 3, 30, features=FeatureConfig(time=time)).eval()
    taken: list[bool] = []

    def spy(*args: Any) -> torch.Tensor | None:
        out = hstu_deletions.first_layer_without(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(hstu, "first_layer_without", spy)
    monkeypatch.setattr(deletions, "SUM_ELEMENTS", 1)  # running sums of one query each
    n = len(history.items)
    events = np.random.default_rng(2).permutation(np.arange(n - 30, n))[:25]
    shared, generic, rescored = deletions_and_rescoring(module, history, events, 30)
    assert taken == [True]
    torch.testing.assert_close(shared, generic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, rescored, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", SHARED)
def test_deletions_with_gradients_recorded(simulated: Sequences, model: str) -> None:
    """Outside ``no_grad`` the rows are still encoded (the running sums, written in place,
    are left out) and gradients flow to the weights."""
    history = simulated.row(int(np.flatnonzero(simulated.lengths >= 30)[0]))
    module = module_for(model, history, 2, 20).eval()
    n = len(history.items)
    events = np.arange(n - 20, n)
    batch = build_batch(history, 21, module.sizes)
    drop = torch.from_numpy(events - (n - 21))
    gaps = torch.from_numpy(closing_gaps(history, events, module.sizes.gaps))
    recorded = module.encode_last_without(batch, drop, gaps)
    with torch.no_grad():
        plain = module.encode_last_without(batch, drop, gaps)
    assert recorded.requires_grad
    torch.testing.assert_close(recorded.detach(), plain, rtol=1e-5, atol=1e-5)
    recorded.sum().backward()
    assert module.tokens.item.weight.grad is not None


@pytest.mark.parametrize("time", [True, False], ids=["time", "no-time"])
@pytest.mark.parametrize("sum_elements", [1 << 22, 1, 170])
def test_hstu_first_layer_equals_the_layer_on_each_row(
    monkeypatch: pytest.MonkeyPatch, time: bool, sum_elements: int
) -> None:
    """The first layer alone, in double precision with large weights and biases (so that a
    wrong bucket, mask or divisor shows far above rounding): each row of
    first_layer_without equals the layer run on that row, deleted column 0 and n too."""
    monkeypatch.setattr(deletions, "SUM_ELEMENTS", sum_elements)
    torch.manual_seed(0)
    n, dim, dtype = 9, 8, torch.float64
    config = HSTUConfig(dim=dim, heads=2, max_len=8, position_buckets=8, time_buckets=12)
    layer = HSTULayer(config).eval().to(dtype)
    with torch.no_grad():
        layer.position_bias.normal_(0.0, 1.0)
        layer.time_bias.normal_(0.0, 1.0)
        layer.uvqk.weight.normal_(0.0, 0.5)
    full = torch.randn(n + 1, dim, dtype=dtype)  # the full row's inputs
    stamps = torch.cumsum(torch.randint(0, 2000, (n + 1,)), 0)
    drop = torch.tensor([5, 0, 9, 3, 3, 8, 1])
    closing = torch.randn(len(drop), dim, dtype=dtype)
    closing[drop == n] = 0.0
    parts = DeletionInputs(full[:-1], full[1:], closing, drop)
    pos = position_buckets(n, 8, 8)
    times = time_buckets_between(stamps[None], stamps[None], 12)[0] if time else None
    allowed = torch.ones(n, n, dtype=dtype).tril()
    allowed = (allowed / allowed.sum(-1, keepdim=True))[None, None]

    def run(row: torch.Tensor, row_stamps: torch.Tensor) -> torch.Tensor:
        between = time_buckets_between(row_stamps[None], row_stamps[None], 12) if time else None
        out: torch.Tensor = layer(row[None], allowed, pos, between)[0]
        return out

    with torch.no_grad():
        shared_states = run(full[:-1], stamps[:n])
        got = first_layer_without(layer, parts, shared_states, pos, times)
        assert got is not None
        for k, d in enumerate(drop.tolist()):
            row = torch.cat([full[:d], closing[k : k + 1], full[d + 2 :]]) if d < n else full[:-1]
            row_stamps = torch.cat([stamps[:d], stamps[d + 1 :]])
            torch.testing.assert_close(got[k], run(row, row_stamps), rtol=1e-10, atol=1e-10)


def test_hstu_first_layer_leaves_half_precision_to_the_groups() -> None:
    layer = HSTULayer(HSTUConfig(dim=16, heads=2)).eval().to(torch.bfloat16)
    shared = torch.zeros(3, 16, dtype=torch.bfloat16)
    parts = DeletionInputs(shared, shared, shared[:1], torch.tensor([1]))
    assert first_layer_without(layer, parts, shared, position_buckets(3, 32, 50), None) is None

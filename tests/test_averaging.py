"""The moving average of the weights: its update rule, its swap, and the loop that uses it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from behaviorlm.train.averaging import WeightAverage
from behaviorlm.train.checkpoint import META_FILE
from run_files import metrics_lines
from test_engine import FAST, assert_same_weights, fit, scripted_validation, weights


def test_the_average_follows_the_warmed_up_update_rule() -> None:
    layer = torch.nn.Linear(3, 2)
    frozen = torch.nn.Linear(3, 2)
    frozen.bias.requires_grad_(False)
    average = WeightAverage(layer, decay=0.95)
    expected = {n: p.detach().clone() for n, p in layer.named_parameters()}
    for n in range(1, 40):
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(torch.randn_like(p))
        average.update()
        keep = min(0.95, (1 + n) / (10 + n))
        for name, p in layer.named_parameters():
            expected[name] = keep * expected[name] + (1 - keep) * p.detach()
    for name, value in average.state().items():
        torch.testing.assert_close(value, expected[name])
    assert sorted(WeightAverage(frozen, 0.9).state()) == ["weight"]  # trainable weights only


def test_applied_swaps_the_average_in_and_the_live_weights_back() -> None:
    layer = torch.nn.Linear(2, 2)
    average = WeightAverage(layer, decay=0.5)
    with torch.no_grad():
        layer.weight.add_(1.0)
    live = layer.weight.detach().clone()
    average.update()
    with average.applied():
        torch.testing.assert_close(layer.weight.detach(), average.state()["weight"])
        assert not torch.equal(layer.weight.detach(), live)
    torch.testing.assert_close(layer.weight.detach(), live, rtol=0, atol=0)
    with pytest.raises(RuntimeError), average.applied():  # restored on an error too
        raise RuntimeError
    torch.testing.assert_close(layer.weight.detach(), live, rtol=0, atol=0)


def test_state_and_load_continue_the_average() -> None:
    layer = torch.nn.Linear(2, 2)
    a = WeightAverage(layer, decay=0.9)
    a.update()
    b = WeightAverage(torch.nn.Linear(2, 2), decay=0.9)
    b.load(a.state(), a.updates)
    assert b.updates == 1
    for name, value in a.state().items():
        torch.testing.assert_close(b.state()[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not match"):
        b.load({"weight": torch.zeros(2, 2)}, 1)
    for decay in (0.0, 1.0):
        with pytest.raises(ValueError, match="decay"):
            WeightAverage(layer, decay)


def test_the_loop_validates_keeps_and_hands_back_the_average(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plain_seen: list[dict[str, torch.Tensor]] = []
    scripted_validation(monkeypatch, [0.1, 0.3, 0.2, 0.1], plain_seen)
    fit(run_dir=tmp_path / "plain")
    averaged_seen: list[dict[str, torch.Tensor]] = []
    scripted_validation(monkeypatch, [0.1, 0.3, 0.2, 0.1], averaged_seen)
    model, summary = fit(replace(FAST, weight_average=0.9), run_dir=tmp_path / "averaged")
    # training itself is the same: the live weights and so the losses do not change ...
    losses = [line["loss"] for line in metrics_lines(tmp_path / "averaged")]
    expected = [line["loss"] for line in metrics_lines(tmp_path / "plain")]
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    # ... but validation sees the average, which lags behind the live weights
    for live, average in zip(plain_seen, averaged_seen, strict=True):
        assert not torch.equal(live["tokens.item.weight"], average["tokens.item.weight"])
    # the best validation's average is the model handed back
    assert summary["best_epoch"] == 2
    final = weights(model)
    for name, value in averaged_seen[1].items():
        torch.testing.assert_close(final[name], value.cpu(), rtol=0, atol=0)


def test_the_average_learns_the_walk() -> None:
    _, summary = fit(replace(FAST, weight_average=0.9))
    assert summary["best_valid"]["HR@10"] > 0.9


def test_resume_continues_the_average_exactly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash_at_validation: Callable[[int], None],
) -> None:
    config = replace(FAST, weight_average=0.9)
    whole, whole_summary = fit(config, run_dir=tmp_path / "whole")
    crash_at_validation(3)
    with pytest.raises(KeyboardInterrupt):
        fit(config, run_dir=tmp_path / "crashed")
    monkeypatch.undo()
    resumed, summary = fit(config, run_dir=tmp_path / "crashed", resume=True)
    assert_same_weights(resumed, whole)
    assert summary["best_valid"] == whole_summary["best_valid"]
    # a checkpoint written before the setting existed resumes as a run without an average
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "older")
    meta = json.loads((tmp_path / "older" / META_FILE).read_text())
    del meta["identity"]["train"]["weight_average"]
    (tmp_path / "older" / META_FILE).write_text(json.dumps(meta))
    _, older = fit(replace(FAST, epochs=1), run_dir=tmp_path / "older", resume=True)
    assert older["epochs"] == 1  # found finished, not refused
    # a run without an average cannot resume as one with it
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "plain")
    with pytest.raises(ValueError, match="another config"):
        fit(replace(FAST, epochs=1, weight_average=0.9), run_dir=tmp_path / "plain", resume=True)

"""The shared training loop: learning, early stopping, resuming, seeds, losses, run folders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import behaviorlm as blm
from behaviorlm.artifact import Artifact
from behaviorlm.cli import main
from behaviorlm.config import ConfigError, from_dict, load_toml
from behaviorlm.evaluate import evaluate_artifact
from behaviorlm.models.batch import FeatureSizes
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.models.sasrec import SASRec, SASRecConfig
from behaviorlm.recommend import recommend
from behaviorlm.schema import EvalSet, Sequences, Split
from behaviorlm.train import TrainConfig, engine, fit_model, resolve_run_config
from behaviorlm.train.batches import TrainingSet, sliding_windows
from behaviorlm.train.checkpoint import META_FILE, TENSORS_FILE
from behaviorlm.train.losses import (
    NegativeSampler,
    full_softmax_loss,
    item_loss_mask,
    sampled_softmax_loss,
)
from run_files import metrics_lines

TINY = SASRecConfig(dim=16, layers=1, heads=2, max_len=10, dropout=0.1)
#: on the CPU also where a GPU is: these tests hold the CPU to exact reproducibility, which
#: a GPU's kernels do not promise (tests/test_train_device.py trains on a GPU)
FAST = TrainConfig(
    epochs=4,
    batch_size=16,
    lr=1e-2,
    threads=1,
    warmup_steps=2,
    patience=0,
    weight_decay=0.0,
    device="cpu",
)


def timelines(
    items: np.ndarray, lengths: np.ndarray, n_items: int, actions: Any = None
) -> Sequences:
    """Sequences from flat items and row lengths (timestamps are positions)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n = int(offsets[-1])
    return Sequences(
        offsets=offsets,
        users=np.arange(len(lengths), dtype=np.int64),
        items=items.astype(np.int64),
        actions=np.ones(n, dtype=np.int64) if actions is None else actions.astype(np.int64),
        timestamps=np.arange(n, dtype=np.int64) - np.repeat(offsets[:-1], lengths),
        event_ids=np.arange(n, dtype=np.int64),
        values=np.full(n, np.nan, dtype=np.float32),
        devices=np.zeros(n, dtype=np.int64),
        locations=np.zeros(n, dtype=np.int64),
        sources=np.zeros(n, dtype=np.int64),
        n_items=n_items,
    )


def leave_last_out(full: Sequences, drop: int) -> tuple[Sequences, EvalSet]:
    """Drop each row's last ``drop`` events; the first dropped one is the target."""
    position_from_end = np.repeat(full.offsets[1:], full.lengths) - np.arange(len(full.items))
    target_at = full.offsets[1:] - drop
    ones = np.arange(len(full) + 1, dtype=np.int64)
    history = full.take_events(position_from_end > drop)
    return history, EvalSet(
        histories=history,
        target_offsets=ones,
        targets=full.items[target_at],
        target_event_ids=full.event_ids[target_at],
    )


def split_of(full: Sequences) -> Split:
    train, valid = leave_last_out(full, 2)
    _, test = leave_last_out(full, 1)
    return Split(train=train, valid=valid, test=test, protocol="leave_one_out")


def walks(n_users: int = 160, n_items: int = 30, seed: int = 0) -> Split:
    """Every user walks i -> i + 1 (mod n_items) from a random start: fully predictable."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 16, size=n_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    step = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    items = (np.repeat(rng.integers(0, n_items, size=n_users), lengths) + step) % n_items + 1
    return split_of(timelines(items, lengths, n_items))


SPLIT = walks()


def fit(
    config: TrainConfig = FAST, split: Split = SPLIT, **kwargs: Any
) -> tuple[SASRec, dict[str, Any]]:
    model = SASRec(TINY)
    summary = fit_model(model, split, config, progress=False, **kwargs)
    return model, summary


def weights(model: NeuralRecommender) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def assert_same_weights(a: NeuralRecommender, b: NeuralRecommender, atol: float = 1e-6) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=atol, msg=k)


# ---- learning and the run folder -------------------------------------------------------


def test_loss_decreases_and_the_model_learns_the_walk(tmp_path: Path) -> None:
    model, summary = fit(run_dir=tmp_path)
    lines = metrics_lines(tmp_path)
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    assert lines[-1]["loss"] < 0.7 * lines[0]["loss"]
    # a deterministic walk: the next item is (last + 1), so the model ranks it first mostly
    assert summary["best_valid"]["HR@10"] > 0.9
    assert summary["best_epoch"] == max(lines, key=lambda x: x["valid"]["NDCG@10"])["epoch"]
    assert summary["events_per_s"] > 0
    assert not model.module.training


def test_more_threads_than_cores_train_on_the_cores(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """torch.set_num_threads(100_000) made libgomp fail, or crashed the process."""
    monkeypatch.setattr(engine, "available_cores", lambda: 2)
    seen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    model = SASRec(TINY)
    fit_model(model, SPLIT, replace(FAST, epochs=1, threads=100_000), progress=True)
    assert 100_000 not in seen
    assert seen[0] == 2
    assert "train.threads = 100000 is more than the 2 cores" in capsys.readouterr().err


def test_run_dir_holds_config_metrics_summary_checkpoint(tmp_path: Path) -> None:
    _, summary = fit(run_dir=tmp_path, run_config={"train": {"lr": 0.01}})
    assert json.loads((tmp_path / "config.json").read_text()) == {"train": {"lr": 0.01}}
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    line = metrics_lines(tmp_path)[0]
    assert {"epoch", "loss", "valid", "seconds", "events_per_s", "lr"} <= set(line)
    assert set(line["valid"]) == {"NDCG@10", "HR@10"}
    assert (tmp_path / TENSORS_FILE).is_file()
    checkpoint = json.loads((tmp_path / META_FILE).read_text())
    assert checkpoint["epoch"] == 4
    assert checkpoint["stopped"] == "completed"
    # without a run_dir config.json holds the model and train parts
    other = tmp_path / "other"
    fit(replace(FAST, epochs=1), run_dir=other)
    assert set(json.loads((other / "config.json").read_text())) == {
        "model",
        "model_config",
        "train",
    }


def test_the_profiler_sees_each_part_of_every_step() -> None:
    with torch.profiler.profile() as prof:
        _, summary = fit(replace(FAST, epochs=2))
    calls = {e.key: e.count for e in prof.key_averages() if e.device_type.name == "CPU"}
    expected = {name: summary["steps"] for name in engine.REGIONS.values()}
    expected[engine.REGIONS["validate"]] = 2  # once per epoch
    assert {name: calls.get(name) for name in expected} == expected


def test_small_training_sets_get_smaller_batches_and_enough_steps() -> None:
    config = replace(FAST, epochs=2, batch_size=64, eval_every=2)
    _, plain = fit(config)
    rows = plain["training_rows"]  # 160 timelines plus sliding windows: 191 rows
    assert (plain["batch_size"], plain["steps"]) == (64, 2 * -(-rows // 64))  # 3 per epoch
    _, floor = fit(replace(config, min_steps_per_epoch=10))
    assert floor["training_rows"] == rows
    assert floor["batch_size"] == rows // 10 == 19
    assert floor["steps"] == 2 * -(-rows // 19) == 2 * 11  # at least 10 per epoch
    with pytest.raises(ValueError, match="min_steps_per_epoch"):
        TrainConfig(min_steps_per_epoch=-1)


def test_baselines_are_fitted_directly(tmp_path: Path) -> None:
    pop = Pop(PopConfig())
    summary = fit_model(pop, SPLIT, FAST, progress=False, run_dir=tmp_path)
    assert summary["epochs"] == 0
    assert pop.n_items == SPLIT.train.n_items
    assert (tmp_path / "config.json").is_file()


def test_seeds_make_runs_reproducible() -> None:
    cfg = replace(FAST, epochs=2)
    a, sa = fit(cfg)
    b, sb = fit(cfg)
    assert_same_weights(a, b, atol=0)
    assert sa["best_valid"] == sb["best_valid"]
    c, _ = fit(replace(cfg, seed=1))
    assert not torch.equal(weights(a)["tokens.item.weight"], weights(c)["tokens.item.weight"])


# ---- early stopping, time budget, resuming ---------------------------------------------


def scripted_validation(
    monkeypatch: pytest.MonkeyPatch, values: list[float], seen: list[dict[str, torch.Tensor]]
) -> None:
    """Replace validation by a fixed NDCG sequence; record the weights at each call."""

    def fake(model: NeuralRecommender, evalset: EvalSet, exclude_seen: bool) -> dict[str, float]:
        seen.append(weights(model))
        value = values[len(seen) - 1]
        return {"NDCG@10": value, "HR@10": value}

    monkeypatch.setattr(engine, "validate", fake)


def test_early_stopping_restores_the_best_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    scripted_validation(monkeypatch, [0.1, 0.3, 0.2, 0.25, 0.9, 0.9], seen)
    cfg = replace(FAST, epochs=10, patience=2)
    model, summary = fit(cfg, run_dir=tmp_path)
    assert summary["stopped"] == "early_stopping"
    assert summary["epochs"] == 4  # epochs 3 and 4 did not beat epoch 2
    assert summary["best_epoch"] == 2
    assert summary["best_valid"]["NDCG@10"] == 0.3
    final = weights(model)
    for k, v in seen[1].items():  # seen on the training device; the model is back on the CPU
        torch.testing.assert_close(final[k], v.cpu(), rtol=0, atol=0)
    assert not torch.equal(final["tokens.item.weight"], seen[3]["tokens.item.weight"])
    assert [line["best_epoch"] for line in metrics_lines(tmp_path)] == [1, 2, 2, 2]


def test_patience_used_up_in_the_last_epoch_is_no_early_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_validation(monkeypatch, [0.1, 0.3, 0.2, 0.25], [])
    _, summary = fit(replace(FAST, epochs=4, patience=2), run_dir=tmp_path)
    assert (summary["stopped"], summary["epochs"], summary["best_epoch"]) == ("completed", 4, 2)
    _, resumed = fit(replace(FAST, epochs=4, patience=2), run_dir=tmp_path, resume=True)
    assert (resumed["stopped"], resumed["epochs"]) == ("completed", 4)  # nothing more


def test_patience_waits_until_patience_from_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    scripted_validation(monkeypatch, [0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2], seen)
    cfg = replace(FAST, epochs=8, patience=2, patience_from=0.7)
    _, summary = fit(cfg, run_dir=tmp_path)
    # no better epoch after the first, but patience only counts from 70 % of the steps:
    # epochs 6 (6 / 8 >= 0.7) and 7 are the two validations it counts
    assert summary["stopped"] == "early_stopping"
    assert summary["epochs"] == 7
    assert summary["best_epoch"] == 1
    with pytest.raises(ValueError, match="patience_from"):
        replace(FAST, patience_from=1.0)
    with pytest.raises(ConfigError, match=r"which train\.patience = 0 turns off"):
        resolve_run_config("sasrec", overrides=["train.patience=0", "train.patience_from=0.5"])
    # a stored run that holds the pair (a run to resume) is not refused, nor a patience of 0
    # given to a run that holds a patience_from, as the hint of an early-stopped run says
    stored = {"train": {"patience": 0, "patience_from": 0.5}}
    assert resolve_run_config("sasrec", base=stored).train.patience_from == 0.5
    base = {"train": {"patience": 2, "patience_from": 0.5}}
    assert (
        resolve_run_config("sasrec", overrides=["train.patience=0"], base=base).train.patience == 0
    )


def test_validation_follows_the_seen_item_protocol_of_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the most popular item (2) is in the row's history; the target (3) comes next
    pop = Pop(PopConfig()).fit(Sequences.from_lists([[2], [2], [2, 3]], n_items=3))
    valid = EvalSet(
        Sequences.from_lists([[2]], n_items=3), np.array([0, 1]), np.array([3]), np.array([0])
    )
    assert engine.validate(pop, valid)["NDCG@10"] == 1.0  # history masked: the target leads
    assert engine.validate(pop, valid, exclude_seen=False)["NDCG@10"] == pytest.approx(
        1 / np.log2(3)
    )

    flags: list[bool] = []
    real = engine.validate

    def spy(model: NeuralRecommender, evalset: EvalSet, exclude_seen: bool) -> dict[str, float]:
        flags.append(exclude_seen)
        return real(model, evalset, exclude_seen)

    monkeypatch.setattr(engine, "validate", spy)
    fit(replace(FAST, epochs=1))
    fit(replace(FAST, epochs=1, valid_exclude_seen=False))
    assert flags == [True, False]


def test_eval_every_validates_less_often(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    scripted_validation(monkeypatch, [0.1, 0.2, 0.3], seen)
    cfg = replace(FAST, epochs=5, eval_every=2)
    _, summary = fit(cfg, run_dir=tmp_path)
    assert len(seen) == 3  # epochs 2, 4 and the last one
    assert [line["valid"] is not None for line in metrics_lines(tmp_path)] == [
        False,
        True,
        False,
        True,
        True,
    ]
    assert summary["best_epoch"] == 5


def test_time_budget_stops_and_keeps_the_best(tmp_path: Path) -> None:
    cfg = replace(FAST, epochs=50, time_budget_s=1e-6)
    _, summary = fit(cfg, run_dir=tmp_path)
    assert summary["stopped"] == "time_budget"
    assert summary["epochs"] == 1
    assert summary["steps"] == 1  # stopped after the first optimiser step
    assert summary["best_epoch"] == 1  # the partial epoch is validated
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert (meta["epoch"], meta["step"], meta["stopped"]) == (1, 1, "time_budget")


def test_a_budget_stopped_run_resumes_only_with_a_larger_budget(
    tmp_path: Path, count_epochs: Callable[[], list[int]]
) -> None:
    cut = replace(FAST, epochs=4, time_budget_s=1e-6)  # epoch 1 is cut after its first step
    first, _ = fit(cut, run_dir=tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / META_FILE).read_text())["batch"] == 1
    trained = count_epochs()
    # the same budget: the run is over, nothing is trained again
    again, summary = fit(cut, run_dir=tmp_path / "cut", resume=True)
    assert trained == []
    assert (summary["stopped"], summary["epochs"], summary["steps"]) == ("time_budget", 1, 1)
    assert_same_weights(again, first)
    # a budget larger than the one that cut it, but spent already: nothing either, and the
    # checkpoint and the metrics stay as they were
    before = (tmp_path / "cut" / META_FILE).read_text(), metrics_lines(tmp_path / "cut")
    meta = json.loads(before[0])
    _, summary = fit(
        replace(cut, time_budget_s=meta["elapsed_s"] / 2), run_dir=tmp_path / "cut", resume=True
    )
    assert trained == []
    assert summary["stopped"] == "time_budget"
    assert json.loads((tmp_path / "cut" / META_FILE).read_text())["batch"] == 1
    assert metrics_lines(tmp_path / "cut") == before[1]
    # a larger budget finishes the cut epoch from its second batch, then goes on
    larger = replace(cut, time_budget_s=600.0)
    _, summary = fit(larger, run_dir=tmp_path / "cut", resume=True)
    assert trained == [1, 2, 3, 4]
    assert (summary["stopped"], summary["epochs"]) == ("completed", 4)
    # as if never cut: every batch once, with the same draws (the cut epoch's partial
    # validation aside, which trains nothing and whose line is replaced)
    _, whole = fit(larger, run_dir=tmp_path / "whole")
    assert summary["steps"] == whole["steps"]
    lines, expected = metrics_lines(tmp_path / "cut"), metrics_lines(tmp_path / "whole")
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    assert [line["step"] for line in lines] == [line["step"] for line in expected]
    np.testing.assert_allclose(
        [line["loss"] for line in lines], [line["loss"] for line in expected], rtol=1e-5
    )


def cut_in_epoch_2(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> None:
    """Epoch 2 is cut after its first batch (the clock jumps past a 3 s budget there), and
    validation reads ``scores`` in order."""
    real_loss = engine._Loop._loss

    def loss(loop: Any, *args: Any) -> Any:
        if loop.step == loop.steps_per_epoch:  # the first batch of epoch 2
            time.sleep(3.2)
        return real_loss(loop, *args)

    left = list(scores)
    monkeypatch.setattr(engine._Loop, "_loss", loss)
    monkeypatch.setattr(engine, "validate", lambda *a, **k: {"NDCG@10": left.pop(0), "HR@10": 0.0})


def test_a_finished_cut_epoch_keeps_the_best_state_an_uncut_run_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = replace(FAST, epochs=4, patience=2, time_budget_s=3.0)
    cut_in_epoch_2(monkeypatch, [0.1, 0.3])  # epoch 1, then epoch 2's part, the best so far
    _, summary = fit(cfg, run_dir=tmp_path)
    assert (summary["stopped"], summary["best_epoch"]) == ("time_budget", 2)
    monkeypatch.undo()
    left = [0.2, 0.25, 0.26]  # epochs 2 to 4 whole, each better than the one before
    monkeypatch.setattr(engine, "validate", lambda *a, **k: {"NDCG@10": left.pop(0), "HR@10": 0.0})
    _, summary = fit(replace(cfg, time_budget_s=600.0), run_dir=tmp_path, resume=True)
    # as if never cut: the part's 0.3 is undone (before, epochs 2 and 3 were "bad" against
    # it and the run stopped early with the weights of the middle of epoch 2)
    assert (summary["stopped"], summary["best_epoch"]) == ("completed", 4)
    assert summary["best_valid"]["NDCG@10"] == 0.26
    assert [line["valid"]["NDCG@10"] for line in metrics_lines(tmp_path)] == [0.1, 0.2, 0.25, 0.26]


def test_a_cut_epoch_left_unfinished_keeps_its_line_and_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = replace(FAST, epochs=4, patience=5, time_budget_s=3.0)
    cut_in_epoch_2(monkeypatch, [0.3, 0.2])
    fit(cfg, run_dir=tmp_path)
    monkeypatch.undo()
    before = (tmp_path / META_FILE).read_text(), metrics_lines(tmp_path)
    assert json.loads(before[0])["bad_evals_before"] == 0
    # a lowered patience that the epochs before the cut one used up: the run is over
    meta = json.loads(before[0])
    meta["bad_evals_before"] = meta["bad_evals"] = 1
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    _, summary = fit(replace(cfg, patience=1, time_budget_s=600.0), run_dir=tmp_path, resume=True)
    assert summary["stopped"] == "early_stopping"
    assert metrics_lines(tmp_path) == before[1]  # before, the cut epoch's line was dropped
    (tmp_path / META_FILE).write_text(before[0])
    # interrupted while it finishes the cut epoch: the line stays until the epoch replaces it
    real_loss = engine._Loop._loss

    def interrupted(loop: Any, *args: Any) -> Any:
        if loop.step == loop.steps_per_epoch + 2:
            raise KeyboardInterrupt
        return real_loss(loop, *args)

    monkeypatch.setattr(engine._Loop, "_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(replace(cfg, time_budget_s=600.0), run_dir=tmp_path, resume=True)
    assert metrics_lines(tmp_path) == before[1]
    assert (tmp_path / META_FILE).read_text() == before[0]


def test_a_larger_budget_finishes_a_cut_last_epoch_and_undoes_its_part_validation(
    tmp_path: Path, count_epochs: Callable[[], list[int]]
) -> None:
    last = replace(FAST, epochs=1, time_budget_s=1e-6)
    fit(last, run_dir=tmp_path / "last")
    trained = count_epochs()
    _, summary = fit(replace(last, time_budget_s=600.0), run_dir=tmp_path / "last", resume=True)
    assert trained == [1]  # the cut epoch was the last: it is finished
    assert summary["stopped"] == "completed"
    assert summary["steps"] == fit(replace(last, time_budget_s=0.0))[1]["steps"]
    cut = replace(FAST, epochs=4, time_budget_s=1e-6, patience=1)
    fit(cut, run_dir=tmp_path / "patience")
    trained = count_epochs()
    meta = json.loads((tmp_path / "patience" / META_FILE).read_text())
    meta["bad_evals"] = 1  # as if the cut epoch's partial validation had used up the patience
    (tmp_path / "patience" / META_FILE).write_text(json.dumps(meta))
    larger = replace(cut, time_budget_s=600.0)
    fit(larger, run_dir=tmp_path / "patience", resume=True)
    assert trained[0] == 1  # the partial validation does not count: the epoch is finished
    # a patience used up before the cut epoch stops the run
    fit(cut, run_dir=tmp_path / "spent")
    trained = count_epochs()
    meta = json.loads((tmp_path / "spent" / META_FILE).read_text())
    meta["bad_evals"] = meta["bad_evals_before"] = 1
    (tmp_path / "spent" / META_FILE).write_text(json.dumps(meta))
    _, summary = fit(larger, run_dir=tmp_path / "spent", resume=True)
    assert trained == []
    assert summary["stopped"] == "early_stopping"
    # the budget compared is the one the epoch was cut with, not the clock (under torchrun
    # a rank may cut the epoch a little before rank 0's own deadline)
    meta["bad_evals"] = meta["bad_evals_before"] = 0
    meta["elapsed_s"], meta["time_budget_s"] = 10.0, 600.0
    (tmp_path / "spent" / META_FILE).write_text(json.dumps(meta))
    _, summary = fit(larger, run_dir=tmp_path / "spent", resume=True)
    assert trained == []
    assert summary["stopped"] == "time_budget"


def test_budget_schedule_decays_by_the_clock(tmp_path: Path) -> None:
    # the budget is gone at the first step: the learning rate is already at its floor
    cfg = replace(FAST, epochs=50, time_budget_s=1e-6, schedule="budget", min_lr=1e-5)
    fit(cfg, run_dir=tmp_path)
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert first["lr"] == pytest.approx(1e-5)
    plain = replace(cfg, schedule="epochs")
    fit(plain, run_dir=tmp_path / "plain")
    first = json.loads((tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["lr"] > 1e-5  # by steps, the first step is still warming up


def test_resume_continues_exactly_like_an_uninterrupted_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash_at_validation: Callable[[int], None],
    count_epochs: Callable[[], list[int]],
) -> None:
    whole, whole_summary = fit(run_dir=tmp_path / "whole")
    crash_at_validation(3)
    with pytest.raises(KeyboardInterrupt):
        fit(run_dir=tmp_path / "crashed")
    monkeypatch.undo()
    assert json.loads((tmp_path / "crashed" / META_FILE).read_text())["epoch"] == 2
    trained = count_epochs()
    resumed, summary = fit(run_dir=tmp_path / "crashed", resume=True)
    assert trained == [3, 4]  # resumed after epoch 2, not started over
    assert_same_weights(resumed, whole)
    assert summary["best_epoch"] == whole_summary["best_epoch"]
    assert summary["epochs"] == 4
    losses = [line["loss"] for line in metrics_lines(tmp_path / "crashed")]
    expected = [line["loss"] for line in metrics_lines(tmp_path / "whole")]
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    # resuming a finished run trains nothing more and returns its best state
    again, again_summary = fit(run_dir=tmp_path / "crashed", resume=True)
    assert_same_weights(again, whole)
    assert again_summary["steps"] == summary["steps"]


def test_a_resumed_run_counts_the_time_its_budget_already_spent(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash_at_validation: Callable[[int], None],
) -> None:
    budget = replace(FAST, epochs=6, time_budget_s=600.0, schedule="budget")
    crash_at_validation(3)
    with pytest.raises(KeyboardInterrupt):
        fit(budget, run_dir=tmp_path)
    monkeypatch.undo()
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["epoch"] == 2
    assert 0 < meta["elapsed_s"] < 600  # the run's clock, saved with the checkpoint
    meta["elapsed_s"] = 600.0  # as if the two epochs had taken the whole budget
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    _, summary = fit(budget, run_dir=tmp_path, resume=True)
    # the budget is spent: no epoch starts (a fresh budget of ten minutes would have
    # trained the four epochs left; before, a third "epoch" of one step and a whole
    # validation ran past the budget)
    assert summary["stopped"] == "time_budget"
    assert summary["epochs"] == 2
    assert summary["steps"] == meta["step"]
    assert summary["run_seconds"] >= 600.0 > summary["seconds"]  # the run's, the session's
    assert [line["epoch"] for line in metrics_lines(tmp_path)] == [1, 2]
    assert json.loads((tmp_path / META_FILE).read_text())["stopped"] == "time_budget"


def test_a_fresh_run_leaves_no_file_of_an_earlier_run_in_its_folder(tmp_path: Path) -> None:
    fit(replace(FAST, epochs=1), run_dir=tmp_path)
    assert (tmp_path / META_FILE).is_file()
    fit_model(Pop(PopConfig()), SPLIT, FAST, progress=False, run_dir=tmp_path)
    assert not (tmp_path / META_FILE).exists()  # a baseline has no checkpoint
    assert not (tmp_path / TENSORS_FILE).exists()
    assert not (tmp_path / engine.METRICS_FILE).exists()  # nor per-epoch metrics
    assert json.loads((tmp_path / engine.SUMMARY_FILE).read_text())["epochs"] == 0


def test_a_larger_patience_lets_an_early_stopped_run_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    scripted_validation(monkeypatch, [0.3, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1, 0.1], seen)
    _, summary = fit(replace(FAST, epochs=8, patience=1), run_dir=tmp_path)
    assert (summary["stopped"], summary["epochs"]) == ("early_stopping", 2)
    _, summary = fit(replace(FAST, epochs=8, patience=3), run_dir=tmp_path, resume=True)
    # epochs 2 and 3 count toward the new patience; epoch 4 is the best; 5 to 7 run it out
    assert (summary["stopped"], summary["epochs"], summary["best_epoch"]) == (
        "early_stopping",
        7,
        4,
    )
    # the same patience again: nothing more to train
    _, again = fit(replace(FAST, epochs=8, patience=3), run_dir=tmp_path, resume=True)
    assert again["steps"] == summary["steps"]


def test_a_clock_behind_the_steps_never_moves_the_learning_rate() -> None:
    """A run ahead of its budget's pace follows its steps alone, so its seed repeats it
    (the clock once led right after the warm-up, where the steps' decay restarted at 0)."""
    cfg = replace(FAST, lr=1.0, min_lr=0.0, warmup_steps=10)
    for step in range(101):
        for pace in (0.0, 0.3, 0.99):
            spent = pace * step / 100
            assert engine.lr_at(step, 101, cfg, spent) == engine.lr_at(step, 101, cfg), (step, pace)
    # a clock ahead of the steps leads: at step 10 with 55 % of the budget spent, as step 55
    assert engine.lr_at(10, 101, cfg, 0.55) == pytest.approx(engine.lr_at(55, 101, cfg))


def test_resuming_a_folder_without_a_checkpoint_says_a_new_run_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = SASRec(TINY)
    summary = fit_model(model, SPLIT, replace(FAST, epochs=1), run_dir=tmp_path, resume=True)
    assert summary["epochs"] == 1
    captured = capsys.readouterr()
    assert "no checkpoint in" in captured.out + captured.err


def test_a_budget_spent_in_validation_starts_no_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.validate

    def slow(model: Any, evalset: Any, exclude_seen: bool = True) -> dict[str, float]:
        time.sleep(1.2)  # the budget runs out while epoch 1 is validated
        return real(model, evalset, exclude_seen)

    monkeypatch.setattr(engine, "validate", slow)
    _, summary = fit(replace(FAST, epochs=50, time_budget_s=1.0), run_dir=tmp_path)
    # before, an epoch 2 of a single step and a whole validation ran past the budget
    assert (summary["stopped"], summary["epochs"]) == ("time_budget", 1)
    assert [line["epoch"] for line in metrics_lines(tmp_path)] == [1]
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert (meta["epoch"], meta["stopped"]) == (1, "time_budget")


def test_an_epoch_that_ends_past_the_deadline_is_validated_and_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine._Loop._train_epoch

    def slow(loop: Any, *args: Any) -> Any:
        out = real(loop, *args)
        time.sleep(1.2)  # the budget runs out after the epoch's last step
        return out

    monkeypatch.setattr(engine._Loop, "_train_epoch", slow)
    cfg = replace(FAST, epochs=4, eval_every=2, time_budget_s=1.0)
    _, summary = fit(cfg, run_dir=tmp_path)
    assert (summary["stopped"], summary["epochs"], summary["best_epoch"]) == ("time_budget", 1, 1)
    assert metrics_lines(tmp_path)[-1]["valid"] is not None  # off the eval_every beat


def test_a_run_that_cannot_go_on_says_so_on_resuming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def said() -> str:
        captured = capsys.readouterr()
        return " ".join((captured.out + captured.err).split())

    done = replace(FAST, epochs=1)
    fit_model(SASRec(TINY), SPLIT, done, run_dir=tmp_path / "done")
    said()
    fit_model(SASRec(TINY), SPLIT, done, run_dir=tmp_path / "done", resume=True)
    assert "(completed): nothing more to train; the run is over: train anew" in said()
    cut = replace(FAST, epochs=1, time_budget_s=1e-6)  # its one epoch cut after a step
    fit_model(SASRec(TINY), SPLIT, cut, run_dir=tmp_path / "cut")
    said()
    fit_model(SASRec(TINY), SPLIT, cut, run_dir=tmp_path / "cut", resume=True)
    # a larger budget finishes the cut epoch, even the last
    assert (
        "(time_budget): nothing more to train; raise train.time_budget_s (now 1e-06 s) above"
        in said()
    )
    # a raise that the run has used up already says the budget it was given
    fit_model(
        SASRec(TINY), SPLIT, replace(cut, time_budget_s=2e-6), run_dir=tmp_path / "cut", resume=True
    )
    told = said()
    assert "raise train.time_budget_s (now 2e-06 s) above the" in told
    assert "s it has run (0: no budget) to go on" in told
    # a schedule that follows the budget cannot go on without one: 0 is not offered
    paced = replace(cut, schedule="budget")
    fit_model(SASRec(TINY), SPLIT, paced, run_dir=tmp_path / "paced")
    said()
    fit_model(SASRec(TINY), SPLIT, paced, run_dir=tmp_path / "paced", resume=True)
    told = said()
    assert "raise train.time_budget_s (now 1e-06 s) above the" in told
    assert "0: no budget" not in told
    # an early stop at the last epoch, resumed with a larger patience: nothing to go on with
    fit_model(SASRec(TINY), SPLIT, done, run_dir=tmp_path / "early")
    meta = json.loads((tmp_path / "early" / META_FILE).read_text())
    meta["stopped"] = "early_stopping"
    (tmp_path / "early" / META_FILE).write_text(json.dumps(meta))
    said()
    more = replace(done, patience=9)
    summary = fit_model(SASRec(TINY), SPLIT, more, run_dir=tmp_path / "early", resume=True)
    assert summary["stopped"] == "completed"
    assert "(completed): nothing more to train; the run is over" in said()


def test_a_deadline_passed_in_the_last_batch_of_the_last_epoch_completes_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = engine._Loop._loss

    def loss(loop: Any, *args: Any) -> Any:
        if loop.step == loop.total_steps - 1:  # the last batch of all
            time.sleep(2.2)
        return real_loss(loop, *args)

    monkeypatch.setattr(engine._Loop, "_loss", loss)
    _, summary = fit(replace(FAST, epochs=2, time_budget_s=2.0), run_dir=tmp_path)
    assert (summary["stopped"], summary["epochs"]) == ("completed", 2)  # every batch ran


def test_resume_refuses_other_data_or_split_settings(tmp_path: Path) -> None:
    train = SPLIT.train
    # the same size, the same catalogue, other items: another data set
    other = replace(SPLIT, train=replace(train, items=train.items % train.n_items + 1))
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "data")
    with pytest.raises(ConfigError, match="another config") as refused:
        fit(replace(FAST, epochs=1), split=other, run_dir=tmp_path / "data", resume=True)
    assert "the training and validation events (a digest)" in str(refused.value)
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "data", resume=True)  # the same data
    # split settings that change the events are named with them; those that leave the
    # events as they were (valid_fraction under leave-one-out, say) may change
    config: dict[str, Any] = {"model": "sasrec", "split": {"followee_actions": ["share"]}}
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "split", run_config=config)
    other_split = {**config, "split": {"followee_actions": ["share", "purchase"]}}
    with pytest.raises(ConfigError, match=r"split\.followee_actions") as refused:
        fit(
            replace(FAST, epochs=1),
            split=other,
            run_dir=tmp_path / "split",
            resume=True,
            run_config=other_split,
        )
    assert "a digest" in str(refused.value)
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "split", resume=True, run_config=other_split)


def test_resume_refuses_events_that_differ_in_what_they_carry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from behaviorlm.train import engine

    train = SPLIT.train
    # the same items, actions, times and sources; other devices, or other ratings
    devices = np.roll(np.maximum(train.devices, 1), 1)
    other_devices = replace(SPLIT, train=replace(train, devices=devices))
    rated = replace(SPLIT, train=replace(train, values=np.full(len(train.items), 2.0, np.float32)))
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "a")
    for other in (other_devices, rated):
        with pytest.raises(ConfigError, match="another config") as refused:
            fit(replace(FAST, epochs=1), split=other, run_dir=tmp_path / "a", resume=True)
        assert "values, devices, locations and query words" in str(refused.value)
    # tables of other sizes that the digests did not tell apart: one line, not a traceback
    monkeypatch.setattr(engine, "context_digest", lambda split: "same")
    fit(replace(FAST, epochs=1), run_dir=tmp_path / "b")
    more = replace(SPLIT, train=replace(train, devices=np.full(len(train.items), 9)))
    with pytest.raises(ConfigError, match="weights of other shapes"):
        fit(replace(FAST, epochs=1), split=more, run_dir=tmp_path / "b", resume=True)


def test_an_interrupted_run_whose_lowered_patience_is_spent_trains_no_more(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash_at_validation: Callable[[int], None],
    count_epochs: Callable[[], list[int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = replace(FAST, epochs=6, patience=5)
    crash_at_validation(3)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, run_dir=tmp_path)
    monkeypatch.undo()
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["bad_evals"] = 2  # the two epochs did not improve (by patience 5: go on)
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    trained = count_epochs()
    summary = fit_model(
        SASRec(TINY), SPLIT, replace(cfg, patience=1), run_dir=tmp_path, resume=True
    )
    assert trained == []  # patience 1 is used up already
    assert (summary["stopped"], summary["epochs"]) == ("early_stopping", 2)
    captured = capsys.readouterr()
    said = " ".join((captured.out + captured.err).split())  # the console wraps lines
    assert "(early_stopping): nothing more to train; raise train.patience" in said


def test_resume_refuses_another_config(tmp_path: Path) -> None:
    fit(replace(FAST, epochs=1), run_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="another config") as refused:
        fit(replace(FAST, epochs=1, lr=0.5), run_dir=tmp_path, resume=True)
    assert "train.lr: 0.01 in the checkpoint, 0.5 now" in str(refused.value)  # names it
    # the refused run changed nothing: the first command still resumes its folder
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    # allowed changes (threads, patience, time budget) resume fine
    fit(replace(FAST, epochs=1, patience=3), run_dir=tmp_path, resume=True)


def test_a_checkpoint_cut_short_is_named_and_a_half_written_metrics_line_dropped(
    tmp_path: Path,
) -> None:
    fit(replace(FAST, epochs=1), run_dir=tmp_path)
    with (tmp_path / engine.METRICS_FILE).open("a") as f:
        f.write('{"epoch": 2, "lo')  # the process died while writing epoch 2's line
    fit(replace(FAST, epochs=1), run_dir=tmp_path, resume=True)
    assert [line["epoch"] for line in metrics_lines(tmp_path)] == [1]
    tensors = tmp_path / TENSORS_FILE
    tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])
    with pytest.raises(ValueError, match="the checkpoint cannot be read"):
        fit(replace(FAST, epochs=1), run_dir=tmp_path, resume=True)
    (tmp_path / META_FILE).write_text('{"epoch": 1, "st')
    with pytest.raises(ValueError, match="the checkpoint cannot be read"):
        fit(replace(FAST, epochs=1), run_dir=tmp_path, resume=True)


def test_mismatched_checkpoint_files_are_detected(tmp_path: Path) -> None:
    fit(replace(FAST, epochs=1), run_dir=tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["epoch"] = 7
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="epoch"):
        fit(replace(FAST, epochs=1), run_dir=tmp_path, resume=True)


# ---- losses ----------------------------------------------------------------------------


def test_sampled_softmax_with_every_item_once_equals_the_full_softmax() -> None:
    model = SASRec(TINY)
    module = model.setup(SPLIT.train)
    hidden = torch.randn(5, TINY.dim)
    targets = torch.tensor([1, 4, 4, 9, 30])
    everything = torch.arange(1, 31)
    uniform = torch.full((31,), -np.log(30.0))
    full = full_softmax_loss(module, hidden, targets)
    sampled = sampled_softmax_loss(module, hidden, targets, everything, uniform)
    torch.testing.assert_close(sampled, full)


def _biased_module() -> Any:
    module = SASRec(TINY).setup(SPLIT.train)
    bias = torch.nn.Parameter(torch.randn(31))
    module.item_bias = lambda: bias  # type: ignore[method-assign]
    return module, bias


@pytest.mark.parametrize("chunk_elements", [31, 4 * 30, 1 << 21])
def test_chunked_full_softmax_equals_cross_entropy_and_its_gradients(chunk_elements: int) -> None:
    module, bias = _biased_module()
    hidden = torch.randn(9, TINY.dim, requires_grad=True)
    targets = torch.tensor([1, 4, 4, 9, 30, 2, 2, 17, 8])
    table = module.item_embeddings()
    reference = torch.nn.functional.cross_entropy(module.logits(hidden)[:, 1:], targets - 1)
    expected = torch.autograd.grad(reference, [hidden, table, bias])
    got = full_softmax_loss(module, hidden, targets, chunk_elements=chunk_elements)
    grads = torch.autograd.grad(got * 3.0, [hidden, table, bias])  # the outer scale reaches them
    torch.testing.assert_close(got, reference)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, 3.0 * e)
    assert float(grads[1][0].abs().sum()) == 0.0  # padding gets no gradient


def test_chunked_full_softmax_is_stable_on_large_logits_and_without_gradients() -> None:
    module, bias = _biased_module()
    hidden = torch.randn(9, TINY.dim)
    scale = 400.0 / float(module.logits(hidden).detach().abs().max())  # logits up to 400
    hidden = (hidden * scale).requires_grad_()
    targets = torch.tensor([1, 4, 4, 9, 30, 2, 2, 17, 8])
    table = module.item_embeddings()
    reference = torch.nn.functional.cross_entropy(module.logits(hidden)[:, 1:], targets - 1)
    expected = torch.autograd.grad(reference, [hidden, table, bias])
    got = full_softmax_loss(module, hidden, targets, chunk_elements=31)
    grads = torch.autograd.grad(got, [hidden, table, bias])
    assert torch.isfinite(got)
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(got, reference)
    for g, e in zip(grads, expected, strict=True):  # float32 rounding of logits near 400
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # the loss alone, no gradients computed
        torch.testing.assert_close(full_softmax_loss(module, hidden, targets, 31), reference)


def test_chunked_full_softmax_under_bf16_autocast_stays_close() -> None:
    module, _ = _biased_module()
    hidden = torch.randn(20, TINY.dim, requires_grad=True)
    targets = torch.randint(1, 31, (20,))
    table = module.item_embeddings()
    reference = torch.nn.functional.cross_entropy(module.logits(hidden)[:, 1:], targets - 1)
    expected = torch.autograd.grad(reference, [hidden, table])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = full_softmax_loss(module, hidden, targets, chunk_elements=100)
    grads = torch.autograd.grad(got, [hidden, table])
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, reference, rtol=2e-2, atol=2e-2)
    for g, e in zip(grads, expected, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, e, rtol=5e-2, atol=5e-3)


def test_log_q_correction_subtracts_log_proposal() -> None:
    module = SASRec(TINY).setup(SPLIT.train)
    hidden = torch.randn(3, TINY.dim)
    targets = torch.tensor([2, 5, 7])
    negatives = torch.tensor([1, 3, 5, 11])
    log_q = torch.log(torch.rand(31) + 0.01)
    table = module.item_embeddings().detach()
    logits = hidden @ table.T - log_q  # (3, 31): corrected logits of every item
    expected = []
    for r in range(3):
        negs = [int(n) for n in negatives if int(n) != int(targets[r])]
        row = torch.cat([logits[r, targets[r]].reshape(1), logits[r, negs]])
        expected.append(-torch.log_softmax(row, 0)[0])
    got = sampled_softmax_loss(module, hidden, targets, negatives, log_q)
    torch.testing.assert_close(got, torch.stack(expected).mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["popularity", "uniform"])
def test_sampled_softmax_learns(kind: str) -> None:
    cfg = replace(FAST, loss="sampled", num_negatives=8, negatives=kind)
    _, summary = fit(cfg)
    assert summary["best_valid"]["HR@10"] > 0.8


def test_negative_sampler_follows_popularity() -> None:
    sampler = NegativeSampler.of(np.array([1] * 97 + [2]), n_items=3, kind="popularity")
    draws = sampler.sample(20_000, torch.Generator().manual_seed(0))
    share = torch.bincount(draws, minlength=4).float() / len(draws)
    assert share[0] == 0  # padding is never drawn
    np.testing.assert_allclose(share[1:].numpy(), [98 / 101, 2 / 101, 1 / 101], atol=0.01)
    torch.testing.assert_close(sampler.log_q[1:], torch.log(sampler.probs[1:]))


def test_validation_that_masking_makes_all_zero_is_refused(tmp_path: Path) -> None:
    # every user repeats the item before last: each validation target was seen already
    lengths = np.full(40, 6)
    items = np.tile(np.array([1, 2, 3, 4, 4, 5]), 40) + np.repeat(np.arange(40) % 20, 6)
    split = split_of(timelines(items, lengths, 30))
    _, summary = fit(replace(FAST, epochs=1, valid_exclude_seen=False), split, run_dir=tmp_path)
    assert summary["best_valid"]["NDCG@10"] > 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError, match="valid_exclude_seen=false"):
        fit(replace(FAST, epochs=1), split, run_dir=tmp_path)
    # a refused run leaves the earlier run's folder as it was
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_target_actions_restrict_the_item_loss() -> None:
    """Views (at random) are of items 1-10, purchases of items 11-20: predict purchases."""
    rng = np.random.default_rng(0)
    n_users, length = 120, 12
    actions = rng.choice([1, 4], size=n_users * length)
    items = np.where(
        actions == 1, rng.integers(1, 11, actions.size), rng.integers(11, 21, actions.size)
    )
    full = timelines(items, np.full(n_users, length), 20, actions=actions)
    split = split_of(full)
    mask = item_loss_mask(torch.tensor([[3, 12, 0]]), torch.tensor([[1, 4, 4]]), codes=[4])
    assert mask.tolist() == [[False, True, False]]

    def views(codes: list[int]) -> tuple[float, float]:
        """Share of views in the top 5 and the mean probability mass of the view items."""
        model = SASRec(TINY)
        fit_model(model, split, FAST, progress=False, target_actions=codes)
        top = recommend(model, split.test.histories, k=5, exclude_seen=False).items
        p = torch.softmax(torch.from_numpy(model.score(split.test.histories)), dim=1)
        return float((top <= 10).mean()), float(p[:, :10].sum(1).mean())

    top, mass = views([4])  # only purchases were targets: views never come first
    assert top < 0.05
    assert mass < 0.25
    _, mass_all = views([])  # every event is a target: views are half of them
    assert mass_all > 0.35


def test_the_reported_item_loss_is_the_mean_over_item_targets(tmp_path: Path) -> None:
    """With purchases as the only item targets, most one-row batches hold none: the epoch's
    item loss is the mean over the item targets, as one batch of every row gives it, not a
    mean over every event (which read far too low)."""
    rng = np.random.default_rng(0)
    n_users, length = 60, 12
    actions = rng.choice([1, 4], p=[0.97, 0.03], size=n_users * length)  # few purchases
    items = rng.integers(1, 41, actions.size)
    split = split_of(timelines(items, np.full(n_users, length), 40, actions=actions))

    def reported(batch_size: int, folder: str) -> dict[str, float]:
        still = replace(
            FAST, epochs=1, lr=1e-12, warmup_steps=0, batch_size=batch_size, min_steps_per_epoch=0
        )
        model = SASRec(replace(TINY, dropout=0.0))
        run = tmp_path / folder
        fit_model(model, split, still, progress=False, target_actions=[4], run_dir=run)
        line: dict[str, float] = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
        return line

    one_by_one, whole = reported(1, "rows"), reported(1000, "whole")
    assert one_by_one["item_loss"] == pytest.approx(whole["item_loss"], rel=1e-3)
    assert one_by_one["action_loss"] == pytest.approx(whole["action_loss"], rel=1e-3)
    weight = FAST.action_loss_weight
    assert whole["loss"] == pytest.approx(whole["item_loss"] + weight * whole["action_loss"])


def test_a_run_that_diverges_keeps_its_best_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NaN loss in epoch 3 ends the run before a step on it, with the best validated
    weights as the model; a NaN before any validation is an error that says what to do."""
    real = engine._Loop._loss
    calls: list[int] = []

    def nan_from(after: int) -> Any:
        def loss(self: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, float, float]:
            calls.append(1)
            total, item, act = real(self, *args, **kwargs)
            return (total * float("nan"), item, act) if len(calls) > after else (total, item, act)

        return loss

    steps = -(-len(SPLIT.train) // FAST.batch_size)
    monkeypatch.setattr(engine._Loop, "_loss", nan_from(2 * steps))
    model, summary = fit(replace(FAST, epochs=4), run_dir=tmp_path / "run")
    assert summary["stopped"] == "diverged"
    assert 1 <= summary["best_epoch"] < summary["epochs"] < 4
    assert np.isfinite(model.score(SPLIT.test.histories)).all()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == summary["epochs"]
    assert json.loads(lines[-1])["valid"] is None
    calls.clear()
    monkeypatch.setattr(engine._Loop, "_loss", nan_from(0))
    with pytest.raises(ValueError, match=r"diverged .* before any validation"):
        fit(replace(FAST, epochs=4), run_dir=tmp_path / "first")
    monkeypatch.setattr(engine._Loop, "_loss", real)  # a lower rate, say: a fresh run goes
    _, again = fit(replace(FAST, epochs=1), run_dir=tmp_path / "first")
    assert again["stopped"] == "completed"


# ---- training data ---------------------------------------------------------------------


def test_sliding_windows_make_every_event_a_target_once() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 40, size=30)
    seqs = timelines(rng.integers(1, 50, size=lengths.sum()), lengths, 50)
    data = TrainingSet.build(seqs, max_len=7, sizes=FeatureSizes.of(seqs), windows=True)
    targets = data.target_items[data.target_items > 0].numpy()
    first = np.zeros(len(seqs.items), dtype=bool)
    first[seqs.offsets[:-1][lengths > 0]] = True
    np.testing.assert_array_equal(np.sort(targets), np.sort(seqs.items[~first]))
    plain = TrainingSet.build(seqs, max_len=7, sizes=FeatureSizes.of(seqs))
    assert plain.n_targets == int(np.minimum(lengths - 1, 7).sum())
    assert len(sliding_windows(seqs, 7)) == len(seqs) + int(
        np.maximum(0, -(-(lengths - 1) // 7) - 1).sum()
    )


def test_epoch_batches_cover_every_row_once() -> None:
    data = TrainingSet.build(SPLIT.train, max_len=10, sizes=FeatureSizes.of(SPLIT.train))
    for buckets in (1, 4):
        batches = data.epoch_batches(16, np.random.default_rng(0), buckets)
        rows = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(rows), np.arange(len(data)))
        inputs, _, _ = data.batch(batches[0])
        assert inputs.shape[1] == int(data.lengths[batches[0]].max())


def test_bf16_autocast_trains() -> None:
    cfg = replace(FAST, epochs=2, bf16=True)
    _, summary = fit(cfg)
    assert summary["best_valid"]["HR@10"] > 0.3


# ---- configuration ---------------------------------------------------------------------


def test_train_table_of_the_run_config() -> None:
    cfg = resolve_run_config("sasrec", {"train": {"epochs": 3}}, ["train.lr=3e-4"])
    assert (cfg.train.epochs, cfg.train.lr) == (3, 3e-4)
    assert cfg.to_dict()["train"]["lr"] == 3e-4
    assert resolve_run_config("pop", {"train": {"epochs": 3}}).train.epochs == 3


def test_a_model_that_disagrees_with_the_config_or_the_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sasrec_file = {"run": {"model": "sasrec"}, "model": {"dim": 32}}
    with pytest.raises(ConfigError, match="model = 'sasrec' but the model given is 'hstu'"):
        resolve_run_config("hstu", sasrec_file)
    assert resolve_run_config("sasrec", sasrec_file).model_config.dim == 32
    # resuming the folder of another model names the model it holds
    ds = blm.preprocess(blm.simulate(40, seed=1))
    run = tmp_path / "run"
    blm.train(ds, "markov", out_dir=run, progress=False)
    with pytest.raises(ConfigError, match="the run to resume trained 'markov', not 'sasrec'"):
        blm.train(ds, "sasrec", out_dir=run, resume=True, progress=False)
    ds.save(tmp_path / "ds")
    capsys.readouterr()
    argv = ["train", str(tmp_path / "ds"), "--model", "sasrec", "--out", str(run), "--resume"]
    assert main(argv) != 0
    assert "the run to resume trained 'markov'" in capsys.readouterr().err


def test_the_train_command_resumes_a_run_by_its_stored_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--resume reads the run's own config before the shipped defaults: no --model is
    needed, and an override that suits the run (no budget for a run scheduled by epochs) is
    not checked against the defaults (sasrec's budget schedule)."""
    blm.preprocess(blm.simulate(40, seed=1)).save(tmp_path / "ds")
    run = tmp_path / "run"
    tiny = ["--model.dim=8", "--model.layers=1", "--model.max_len=8", "--train.threads=1"]
    first = ["train", str(tmp_path / "ds"), "--model", "sasrec", "--out", str(run), *tiny]
    assert main([*first, "--train.schedule=epochs", "--train.epochs=1"]) == 0
    # the shipped config reads followees' shares: the count says how many joined
    theirs = json.loads((run / "artifact.json").read_text())["run"]["split_info"]
    theirs = theirs["followee_events"]["train"]
    assert theirs > 0
    assert f"({theirs:,} of them followees' events in the timelines)" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "ds"), "--out", str(run), "--resume"]) == 0
    assert "with the sessions before" in capsys.readouterr().out
    fresh = [*first, "--train.schedule=epochs", "--train.epochs=1", "--resume"]
    assert main([*fresh[:5], str(tmp_path / "fresh"), *fresh[6:]]) == 0  # nothing to resume
    assert "sessions before" not in capsys.readouterr().out
    again = ["train", str(tmp_path / "ds"), "--out", str(run), "--resume"]
    assert main([*again, "--train.time_budget_s=0"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["schedule"] == "epochs"
    # the default folder, runs/MODEL, named by the model alone
    monkeypatch.chdir(tmp_path)
    default = ["train", "ds", "--model", "sasrec", *tiny, "--train.schedule=epochs"]
    assert main([*default, "--train.epochs=1"]) == 0
    assert main(["train", "ds", "--model", "sasrec", "--resume", "--train.time_budget_s=0"]) == 0
    capsys.readouterr()
    # a folder without a run still needs a model
    assert main(["train", str(tmp_path / "ds"), "--out", str(tmp_path / "new"), "--resume"]) != 0
    assert "no model given" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"train": {"lrr": 1.0}}, ConfigError, "train.lrr"),
        ({"train": {"loss": "bpr"}}, ConfigError, "not one of"),
        ({"train": {"epochs": 0}}, ValueError, "train.epochs"),
        ({"train": {"lr": -1.0}}, ValueError, "train.lr"),
        ({"train": {"lr": 1e-3, "min_lr": 1e-2}}, ValueError, "min_lr"),
        ({"train": {"schedule": "budget", "time_budget_s": 0}}, ValueError, "time_budget_s"),
        ({"train": {"weight_average": 1.0}}, ValueError, "weight_average"),
    ],
)
def test_bad_train_config_raises(
    data: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve_run_config("sasrec", data)
    with pytest.raises(error, match=message):
        from_dict(TrainConfig, data["train"], where="train")


# ---- the run: config files, train(), resume from the command line ------------------------

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*/*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_files_resolve(path: Path) -> None:
    cfg = resolve_run_config(data=load_toml(path))
    assert cfg.model in path.name


def test_cli_trains_resumes_and_the_artifact_scores(tmp_path: Path) -> None:
    ds = blm.preprocess(blm.simulate(80, seed=2))
    ds.save(tmp_path / "ds")
    config = Path(__file__).parents[1] / "configs" / "default" / "sasrec.toml"
    out = tmp_path / "run"
    argv = ["train", str(tmp_path / "ds"), "--config", str(config), "--out", str(out)]
    quick = ["--train.epochs=2", "--model.dim=16", "--train.threads=1"]
    assert main([*argv, *quick]) == 0
    assert {"artifact.json", "config.json", "metrics.jsonl", "summary.json", META_FILE} <= {
        p.name for p in out.iterdir()
    }
    first = Artifact.load(out)
    assert first.run["fit"]["epochs"] == 2
    assert first.run["config"]["train"]["epochs"] == 2
    # resuming a finished run with the same config trains nothing and gives the same model
    assert main([*argv, *quick, "--resume"]) == 0
    again = Artifact.load(out)
    assert again.run["fit"]["steps"] == first.run["fit"]["steps"]
    histories = first.histories(first.dataset.users["user_id"][:3].to_list())
    np.testing.assert_array_equal(again.model.score(histories), first.model.score(histories))
    assert evaluate_artifact(again, ks=(10,)).n_users > 0
    assert main([*argv, "--train.epochs=3", "--model.dim=16", "--resume"]) == 2  # another config


def test_the_train_command_says_why_a_run_ended_before_its_epochs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blm.preprocess(blm.simulate(40, seed=1)).save(tmp_path / "ds")
    tiny = ["--model.dim=8", "--model.layers=1", "--model.max_len=8", "--train.threads=1"]
    argv = ["train", str(tmp_path / "ds"), "--model", "sasrec", *tiny, "--train.epochs=3"]
    assert main([*argv, "--train.time_budget_s=0.001", "--out", str(tmp_path / "a")]) == 0
    assert "stopped by train.time_budget_s in epoch 1 of 3" in capsys.readouterr().out
    done = ["--train.time_budget_s=0", "--train.schedule=epochs", "--train.patience=0"]
    assert main([*argv, *done, "--out", str(tmp_path / "b")]) == 0
    assert "stopped" not in capsys.readouterr().out


def test_a_context_code_no_window_feeds_keeps_no_random_row() -> None:
    from behaviorlm.models.neural import seen_codes

    train = SPLIT.train
    devices = np.ones(len(train.items), dtype=np.int64)
    devices[train.offsets[1:][train.lengths > 0] - 1] = 2  # on each row's last event: a target
    split = replace(SPLIT, train=replace(train, devices=devices))
    actions = train.actions.copy()
    actions[train.offsets[1:][train.lengths > 0] - 1] = 3  # an action only ever a target
    split = replace(split, train=replace(split.train, actions=actions))
    model, _ = fit(replace(FAST, epochs=1), split=split)
    assert seen_codes(model.module.tokens.device).tolist() == [1]
    assert not model.module.tokens.device.weight[2].any()
    assert 3 in seen_codes(model.module.tokens.action)  # the head learns it: its row stays


def test_a_checkpoint_written_before_a_model_setting_existed_resumes(tmp_path: Path) -> None:
    """A model setting added since (mlp's ratings) ran at its default there."""
    from behaviorlm.models.mlp import MLP, MLPConfig

    config = MLPConfig(hidden=8, max_len=10)
    cfg = replace(FAST, epochs=2)
    fit_model(MLP(config), SPLIT, cfg, run_dir=tmp_path, progress=False)
    meta = json.loads((tmp_path / META_FILE).read_text())
    del meta["identity"]["model_config"]["ratings"]  # as the code before the setting wrote it
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    summary = fit_model(MLP(config), SPLIT, cfg, run_dir=tmp_path, resume=True, progress=False)
    assert (summary["epochs"], summary["stopped"]) == (2, "completed")
    other = MLP(replace(config, ratings=False))
    with pytest.raises(ConfigError, match=r"model\.ratings"):  # changed now: refused
        fit_model(other, SPLIT, cfg, run_dir=tmp_path, resume=True, progress=False)

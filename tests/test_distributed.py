"""Data-parallel training: two ``torchrun`` processes train the model one process trains."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import behaviorlm as blm
from behaviorlm.artifact import Artifact
from behaviorlm.cli import EXIT_INTERRUPTED, main
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.models.batch import FeatureSizes
from behaviorlm.train.batches import TrainingSet
from behaviorlm.train.checkpoint import META_FILE
from behaviorlm.train.distributed import World
from run_files import metrics_lines

MAX_LEN = 20
#: Dropout is off: ranks draw their own dropout masks, so only then can the runs agree exactly.
MODEL = ["--model", "sasrec", "--model.dim=16", "--model.layers=1", "--model.heads=2"]
TRAIN = ["--model.dropout=0.0", f"--model.max_len={MAX_LEN}", "--train.threads=1"]
TRAIN += ["--train.device=cpu"]  # also where a GPU is: one process and the ranks on one device
TRAIN += ["--train.lr=0.01", "--train.warmup_steps=2", "--train.epochs=3"]
# float32 and an epoch schedule: bfloat16 rounds a split batch differently from a whole one
TRAIN += ["--train.bf16=false", "--train.schedule=epochs", "--train.time_budget_s=0"]
#: A launch takes a few seconds; a broken rank would otherwise wait for gloo's 30-minute timeout.
LAUNCH_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """``behaviorlm`` under ``torchrun`` on this machine only (127.0.0.1, a free port)."""
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    src = str(Path(blm.__file__).parents[1])  # the package, installed or not
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    for _ in range(3):  # another program may take the free port before torchrun binds it
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
        command += ["--master_addr=127.0.0.1", f"--master_port={free_port()}"]
        done = subprocess.run(
            [*command, "-m", "behaviorlm.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=LAUNCH_TIMEOUT_S,
        )
        if "address already in use" not in done.stderr.lower():
            break
    return done


def assert_same_training(one: Path, two: Path) -> None:
    """Same steps, per-epoch losses and validation, and the artifacts score alike."""
    a, b = metrics_lines(one), metrics_lines(two)
    assert [x["step"] for x in a] == [x["step"] for x in b]
    for key in ("loss", "item_loss", "action_loss"):
        np.testing.assert_allclose([x[key] for x in b], [x[key] for x in a], rtol=1e-4)
    np.testing.assert_allclose(
        [x["valid"]["NDCG@10"] for x in b], [x["valid"]["NDCG@10"] for x in a], atol=1e-3
    )
    assert a[-1]["loss"] < a[0]["loss"]  # it did learn something
    first, second = Artifact.load(one), Artifact.load(two)
    users = first.dataset.users["user_id"][:20].to_list()
    np.testing.assert_allclose(
        second.model.score(second.histories(users)),
        first.model.score(first.histories(users)),
        rtol=1e-3,
        atol=1e-3,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A small simulated data set and a batch size that leaves a last batch of one row.

    Two ranks cannot split one row: one of them trains that step on a stand-in with weight 0.
    """
    folder = tmp_path_factory.mktemp("distributed") / "ds"
    for users in range(120, 200, 5):
        ds = blm.preprocess(blm.simulate(users, seed=3))
        train = make_split(ds, SplitConfig()).train
        rows = len(TrainingSet.build(train, MAX_LEN, FeatureSizes.of(train), windows=True))
        sizes = [b for b in range(16, 64) if rows % b == 1]
        if sizes:
            ds.save(folder)
            return folder, sizes[0]
    raise AssertionError("no simulated data set of 120-200 users gives a last batch of one row")


@pytest.mark.slow
def test_two_processes_train_the_model_of_one(
    dataset: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, batch_size = dataset
    args = ["train", str(folder), *MODEL, *TRAIN, f"--train.batch_size={batch_size}"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    done = torchrun([*args, "--out", str(tmp_path / "two")])
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_training(tmp_path / "one", tmp_path / "two")
    # only rank 0 prints and writes
    assert done.stdout.count("trained sasrec") == 1
    assert done.stderr.count("epoch 1:") == 1
    assert not list(tmp_path.glob("two/**/*.tmp"))


@pytest.mark.slow
def test_a_run_resumed_by_two_processes_continues_the_run_of_one(
    dataset: tuple[Path, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash_at_validation: Callable[[int], None],
) -> None:
    """Rank 0 reads the checkpoint of epoch 2 and gives its state to rank 1 for epoch 3."""
    folder, batch_size = dataset
    args = ["train", str(folder), *MODEL, *TRAIN, f"--train.batch_size={batch_size}"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    crash_at_validation(3)
    assert main([*args, "--out", str(tmp_path / "resumed")]) == EXIT_INTERRUPTED  # Ctrl-C
    monkeypatch.undo()
    assert json.loads((tmp_path / "resumed" / META_FILE).read_text())["epoch"] == 2
    done = torchrun([*args, "--out", str(tmp_path / "resumed"), "--resume"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert [x["epoch"] for x in metrics_lines(tmp_path / "resumed")] == [1, 2, 3]
    assert_same_training(tmp_path / "whole", tmp_path / "resumed")


def test_rank_weights_turn_averaged_shard_means_into_the_batch_mean() -> None:
    """What DDP averages (weighted shard means) equals one process's mean over the batch."""
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, size=50)  # targets per row (some rows have none)
    sums = rng.random(50) * counts  # summed loss of each row's targets
    for size in (2, 3, 4):
        for n in (1, 2, 7, 16):
            batch = rng.choice(50, size=n, replace=False)
            averaged = 0.0
            shards = []
            for rank in range(size):
                rows, weight, _ = World(rank=rank, size=size).shard(batch, counts, counts)
                has = counts[rows].sum()
                averaged += weight * (sums[rows].sum() / has if has else 0.0) / size
                shards.append(rows)
            if counts[batch].sum():
                np.testing.assert_allclose(averaged, sums[batch].sum() / counts[batch].sum())
            if n >= size:  # every row trained once
                np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(batch))


def test_shards_deal_the_batch_out_row_by_row() -> None:
    batch, ones = np.arange(10, 17), np.ones(20, dtype=np.int64)
    shards = [World(rank=r, size=3).shard(batch, ones, ones)[0] for r in range(3)]
    assert [s.tolist() for s in shards] == [[10, 13, 16], [11, 14], [12, 15]]
    # a rank without rows of its own trains on a row of the batch with weight 0
    assert World(rank=2, size=4).shard(np.array([5]), ones, ones)[1:] == (0.0, 0.0)


@pytest.mark.slow
def test_a_resume_refused_on_rank_0_stops_every_rank(
    dataset: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rank 0 alone reads the checkpoint: its refusal reaches rank 1, which would otherwise
    wait for rank 0's state until the launch times out."""
    folder, batch_size = dataset
    args = ["train", str(folder), *MODEL, *TRAIN, f"--train.batch_size={batch_size}"]
    assert main([*args, "--out", str(tmp_path / "run"), "--train.epochs=1"]) == 0
    capsys.readouterr()
    before = (tmp_path / "run" / META_FILE).read_text()
    done = torchrun([*args, "--train.lr=0.02", "--out", str(tmp_path / "run"), "--resume"])
    assert done.returncode != 0
    assert "another config" in done.stderr  # rank 0's own error
    assert "rank 0 could not start the run" in done.stderr  # rank 1's
    assert (tmp_path / "run" / META_FILE).read_text() == before
    # a damaged config.json: rank 0 reads it for every rank, and each says why it stops
    (tmp_path / "run" / "config.json").write_text('{"run": {"mo')
    done = torchrun([*args, "--out", str(tmp_path / "run"), "--resume"])
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if "is not a run's config" in line]
    assert said, done.stderr
    # rank 1 learns the reason from rank 0 (and says it, unless torchrun stops it first),
    # instead of waiting in a collective that rank 0 never joins
    assert "Connection reset" not in done.stderr, done.stderr

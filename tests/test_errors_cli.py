"""Damaged files, file-system errors and bad options: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import behaviorlm as blm
from behaviorlm.cli import main
from behaviorlm.models.pop import Pop, PopConfig
from behaviorlm.schema import Sequences


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("errors")
    ds = blm.preprocess(blm.simulate(60, seed=4))
    ds.save(root / "ds")
    blm.train(ds, "pop", out_dir=root / "art")
    return root


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("behaviorlm: error:")
    return err[0]


def test_output_path_is_a_file(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = trained / "afile"
    blocker.write_text("x")
    assert main(["train", str(trained / "ds"), "--model", "pop", "--out", str(blocker)]) == 2
    assert "afile" in one_error_line(capsys)


def test_damaged_artifact_and_dataset(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    art = tmp_path / "art"
    shutil.copytree(trained / "art", art)
    (art / "model" / "weights.safetensors").write_bytes(b"junk")
    assert main(["evaluate", str(art)]) == 2
    assert "cannot read the model" in one_error_line(capsys)
    (art / "artifact.json").write_text(json.dumps({"format_version": 1}))
    assert main(["evaluate", str(art)]) == 2
    assert "damaged" in one_error_line(capsys)
    ds = tmp_path / "ds"
    shutil.copytree(trained / "ds", ds)
    (ds / "events.parquet").write_bytes(b"junk")
    assert main(["train", str(ds), "--model", "pop"]) == 2
    assert "cannot read the data set" in one_error_line(capsys)


def test_bad_ks_and_debug_after_the_command(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(trained / "art"), "--ks", "5,"]) == 2
    assert "--ks" in one_error_line(capsys)
    # --debug adds the traceback; the status stays that of bad input
    assert main(["evaluate", str(trained / "nope"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "DataError" in err
    assert err.strip().splitlines()[-1].startswith("behaviorlm: error:")


def test_artifact_without_split_is_not_evaluated() -> None:
    ds = blm.preprocess(blm.simulate(60, seed=4))
    bare = blm.Artifact(model=Pop(PopConfig()).fit(ds.sequences()), dataset=ds)
    with pytest.raises(blm.DataError, match="split"):
        blm.evaluate_artifact(bare)


def test_nan_scores_raise_and_item_ranges_start_at_one() -> None:
    model = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2]], n_items=2))
    model.popularity[:] = np.nan
    with pytest.raises(ValueError, match="NaN scores"):
        blm.recommend(model, Sequences.from_lists([[1]], n_items=2), k=1)
    with pytest.raises(ValueError, match="start at 1"):
        model.score(Sequences.from_lists([[1]], n_items=2), slice(0, 2))


def test_prefixes_stay_inside_their_row() -> None:
    s = Sequences.from_lists([[1, 2, 3], [4, 5]], n_items=5)
    assert s.prefixes(np.array([0]), np.array([5])).items.tolist() == [1, 2, 3]


def test_simulate_names_its_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(tmp_path / "s"), "--users", "0"]) == 2
    assert one_error_line(capsys) == "behaviorlm: error: --users must be at least 1, got 0"
    assert main(["simulate", str(tmp_path / "s"), "--seed", "-1"]) == 2
    assert one_error_line(capsys) == "behaviorlm: error: --seed must be 0 or more, got -1"


def pop_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:
    """A 20-user simulation (raw tables), its data set and a pop run of it."""
    raw, data, run = tmp_path / "raw", tmp_path / "data", tmp_path / "run"
    assert main(["simulate", str(raw), "--users", "20"]) == 0
    assert main(["prepare", str(raw), str(data)]) == 0
    assert main(["train", str(data), "--model", "pop", "--out", str(run)]) == 0
    capsys.readouterr()
    return raw, data, run


def test_simulate_never_writes_over_a_data_set_or_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, data, run = pop_run(tmp_path, capsys)
    for folder, words in ((data, "a prepared data set"), (run, "a training run's folder")):
        before = sorted(p.name for p in folder.iterdir())
        assert main(["simulate", str(folder), "--users", "20"]) == 2
        assert words in one_error_line(capsys)
        assert sorted(p.name for p in folder.iterdir()) == before
    # a data set whose tables were replaced since: one line, not a traceback
    shutil.copy(raw / "events.parquet", data / "events.parquet")
    assert main(["train", str(data), "--model", "pop", "--out", str(tmp_path / "again")]) == 2
    assert "events.parquet lacks the column(s) " in one_error_line(capsys)


def test_a_damaged_run_config_is_named_on_resuming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, data, run = pop_run(tmp_path, capsys)
    for damaged in ('{"run": {"mo', "[1, 2]"):
        (run / "config.json").write_text(damaged)
        assert main(["train", str(data), "--model", "pop", "--out", str(run), "--resume"]) == 2
        assert f"{run / 'config.json'} is not a run's config" in one_error_line(capsys)


def test_running_out_of_memory_is_one_line_and_other_runtime_errors_are_bugs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from behaviorlm import cli

    def no_memory(args: object) -> None:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: 64000000000 bytes")

    monkeypatch.setattr(cli, "cmd_simulate", no_memory)
    assert cli.main(["simulate", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("behaviorlm: error: out of memory (DefaultCPUAllocator")
    assert "a smaller model.max_len" in err[0]

    def bug(args: object) -> None:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(cli, "cmd_simulate", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["simulate", str(tmp_path / "s")])


def test_a_misspelt_option_shows_its_commands_usage_and_the_nearest_option(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(["recommend", str(trained / "art"), "--user", "u1", "--josn"])
    err = capsys.readouterr().err
    assert err.startswith("usage: behaviorlm recommend ")  # not the top-level usage
    assert "unrecognised arguments: --josn (did you mean --json?)" in err
    with pytest.raises(SystemExit, match="2"):
        main(["train", str(trained / "ds"), "--model", "pop", "--resum"])
    err = capsys.readouterr().err
    assert err.startswith("usage: behaviorlm train ")
    assert "--resum (did you mean --resume?)" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    with pytest.raises(SystemExit, match="0"):
        main(["--version"])
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("behaviorlm ")
    module = subprocess.run(
        [sys.executable, "-m", "behaviorlm", "--version"], capture_output=True, text=True
    )
    assert (module.returncode, module.stdout.strip()) == (0, printed)


def test_an_output_that_is_no_regular_file_is_refused_before_any_work(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # as /dev/stdout is where the output goes to a pipe
    assert main(["evaluate", str(trained / "art"), "--json", str(fifo)]) == 2
    assert "is not a regular file" in one_error_line(capsys)

"""A fresh run into a used folder keeps the earlier model until it has saved its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import behaviorlm as blm
from behaviorlm.artifact import Artifact
from behaviorlm.cli import main
from behaviorlm.config import ConfigError
from behaviorlm.data.dataset import Dataset, check_prepare_paths
from behaviorlm.data.errors import DataError
from behaviorlm.serve.server import run_server
from behaviorlm.train import engine
from behaviorlm.train.folder import set_aside

DS = blm.preprocess(blm.simulate(60, seed=3))
QUICK = ["train.epochs=2", "model.dim=16", "train.threads=1", "train.schedule=epochs"]


@pytest.fixture
def pop_run(tmp_path: Path) -> Path:
    """A run folder that holds a finished model (pop)."""
    run = tmp_path / "run"
    blm.train(DS, "pop", out_dir=run, progress=False)
    return run


def cut_short(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Training fails at its first validation, after the folder was cleared for it."""

    def fail(*args: object, **kwargs: object) -> dict[str, float]:
        raise error

    monkeypatch.setattr(engine, "validate", fail)


def cut_after_first_epoch(monkeypatch: pytest.MonkeyPatch, run: Path) -> None:
    """A sasrec run into ``run`` interrupted at its second validation: its checkpoint holds
    the first epoch, to resume from."""
    with monkeypatch.context() as patch:
        calls: list[int] = []
        real = engine.validate

        def second_fails(*args: object, **kwargs: object) -> dict[str, float]:
            calls.append(1)
            if len(calls) > 1:
                raise KeyboardInterrupt
            return real(*args, **kwargs)  # type: ignore[arg-type]

        patch.setattr(engine, "validate", second_fails)
        with pytest.raises(KeyboardInterrupt):
            blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)


def test_a_failed_run_keeps_the_earlier_model_until_a_run_finishes(
    tmp_path: Path, pop_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = pop_run
    with monkeypatch.context() as patch:
        cut_short(patch, RuntimeError("out of memory"))
        with pytest.raises(RuntimeError):
            blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)
    # no model passes for the unfinished run's, and the earlier one loads from previous/
    with pytest.raises(DataError, match="has not finished") as refused:
        Artifact.load(run)
    assert str(run / "previous") in refused.value.line()
    with pytest.raises(DataError, match="has not finished"):  # the server says so too
        run_server(run, f"sqlite:///{tmp_path / 'events.db'}")
    assert not (tmp_path / "events.db").exists()
    with pytest.raises(DataError, match=r"training run's folder \(it holds previous/"):
        check_prepare_paths(tmp_path / "raw", run)  # nor a data set into its folder
    kept = Artifact.load(run / "previous")
    assert kept.model.name == "pop"
    assert json.loads((run / "previous" / "summary.json").read_text())["epochs"] == 0
    assert json.loads((run / "config.json").read_text())["run"]["model"] == "sasrec"
    # a second fresh run that fails too keeps the same earlier model
    with monkeypatch.context() as patch:
        cut_short(patch, RuntimeError("out of memory"))
        with pytest.raises(RuntimeError):
            blm.train(DS, "mlp", overrides=["train.epochs=1"], out_dir=run, progress=False)
    assert Artifact.load(run / "previous").model.name == "pop"
    # a run that finishes replaces it
    blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)
    assert Artifact.load(run).model.name == "sasrec"
    assert not (run / "previous").exists()


def test_a_run_whose_artifact_cannot_be_written_loses_no_model(
    pop_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = pop_run

    def disk_full(self: Dataset, path: str | Path, checked: bool = True) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Dataset, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        blm.train(DS, "markov", out_dir=run, progress=False)
    assert Artifact.load(run / "previous").model.name == "pop"
    assert not (run / "artifact.json").exists()


def test_a_resumed_run_that_finishes_replaces_the_model_set_aside(
    pop_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = pop_run
    cut_after_first_epoch(monkeypatch, run)
    assert (run / "checkpoint.safetensors").is_file()  # the first epoch, to resume from
    assert Artifact.load(run / "previous").model.name == "pop"
    blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False, resume=True)
    assert Artifact.load(run).run["fit"]["epochs"] == 2
    assert not (run / "previous").exists()


def test_a_fresh_run_does_not_delete_the_epochs_of_one_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    cut_after_first_epoch(monkeypatch, run)
    saved = (run / "checkpoint.safetensors").read_bytes()
    with pytest.raises(
        DataError, match=r"holds an unfinished run \(its checkpoint is of epoch 1\)"
    ):
        blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)
    DS.save(tmp_path / "ds")
    argv = ["train", str(tmp_path / "ds"), "--model", "markov", "--out", str(run)]
    assert main(argv) == 2  # the command that would start again says how to go on instead
    assert "pass --resume" in capsys.readouterr().err
    assert (run / "checkpoint.safetensors").read_bytes() == saved
    # a baseline resumes none: the run's own model is named instead
    with pytest.raises(ConfigError, match="the run to resume trained 'sasrec', not 'markov'"):
        blm.train(DS, "markov", out_dir=run, progress=False, resume=True)
    assert (run / "checkpoint.safetensors").read_bytes() == saved
    blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False, resume=True)
    assert Artifact.load(run).run["fit"]["epochs"] == 2
    blm.train(DS, "markov", out_dir=run, progress=False)  # a finished run: set aside, replaced


def test_the_cli_says_where_the_earlier_model_is_when_a_run_is_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    DS.save(tmp_path / "ds")
    run = tmp_path / "run"
    argv = ["train", str(tmp_path / "ds"), "--out", str(run)]
    assert main([*argv, "--model", "pop"]) == 0
    cut_short(monkeypatch, KeyboardInterrupt())
    quick = [f"--{o}" for o in QUICK]
    assert main([*argv, "--model", "sasrec", *quick]) == 130
    err = capsys.readouterr().err
    assert f"the earlier model of {run} is kept in {run / 'previous'}" in err
    assert "--resume continues" in err
    # a run whose config is refused leaves the folder as it was, and needs no word on it
    assert main([*argv, "--model", "sasrec", "--train.lr=-1"]) == 2
    assert "earlier model" not in capsys.readouterr().err
    assert Artifact.load(run / "previous").model.name == "pop"


def test_a_move_that_fails_puts_back_what_moved(
    pop_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = pop_run
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    real = Path.rename

    def held_open(self: Path, target: Path) -> Path:  # as a file held open elsewhere may
        if self.name == "dataset":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", held_open)
    with pytest.raises(PermissionError):
        set_aside(run)
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before
    monkeypatch.undo()
    assert Artifact.load(run).model.name == "pop"


def test_a_previous_folder_that_is_no_run_set_aside_is_not_removed(pop_run: Path) -> None:
    run = pop_run
    (run / "previous").mkdir()
    (run / "previous" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a run that behaviorlm set aside"):
        blm.train(DS, "markov", out_dir=run, progress=False)
    assert (run / "previous" / "notes.txt").read_text() == "mine"
    assert Artifact.load(run).model.name == "pop"  # refused before anything moved


def test_a_data_folder_is_no_run_folder(tmp_path: Path) -> None:
    DS.save(tmp_path / "ds")
    with pytest.raises(DataError, match=r"holds data \(dataset.json, events.parquet\)"):
        blm.train(DS, "pop", out_dir=tmp_path / "ds", progress=False)
    assert not (tmp_path / "ds" / "artifact.json").exists()
    blm.write_simulation(blm.simulate(20, seed=0), tmp_path / "raw", format="csv")
    with pytest.raises(DataError, match=r"holds data \(events.csv\)"):
        blm.train(DS, "pop", out_dir=tmp_path / "raw", progress=False)


def test_a_first_run_cut_short_is_named_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    cut_short(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)
    with pytest.raises(DataError, match="has not finished") as refused:
        Artifact.load(run)
    assert "--resume" in refused.value.line()


def test_a_damaged_artifact_is_to_be_trained_again(pop_run: Path) -> None:
    shutil.rmtree(pop_run / "dataset")
    with pytest.raises(DataError, match="cannot read the data set") as refused:
        Artifact.load(pop_run)
    assert refused.value.line().endswith("fix: train the model again")


def test_owner_of_names_the_files_of_runs_data_sets_and_models(tmp_path: Path) -> None:
    from behaviorlm.train.folder import owner_of

    cut = tmp_path / "cut"  # a run cut before it saved its model: its checkpoint is its own
    cut.mkdir()
    for name in ("config.json", "checkpoint.json", "checkpoint.safetensors", "metrics.jsonl"):
        (cut / name).write_text("{}")
    for name in ("checkpoint.json", "checkpoint.safetensors", "config.json"):
        assert owner_of(cut / name) == f"the run in {cut}"
    early = tmp_path / "early"  # a run cut before its first checkpoint
    early.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (early / name).write_text("{}")
    assert owner_of(early / "config.json") == f"the run in {early}"
    (early / "config.json").unlink()  # one's own metrics.jsonl marks no run of other files
    assert owner_of(early / "summary.json") is None
    mine = tmp_path / "mine"  # one's own files named like a run's, a data set's or a model's
    (mine / "model").mkdir(parents=True)
    for name in ("model/model.json", "config.json", "dataset.json", "artifact.json"):
        (mine / name).write_text("{}")
        assert owner_of(mine / name) is None
    raw = tmp_path / "shop"  # raw tables that prepare reads
    raw.mkdir()
    for name in ("events.parquet", "Items.csv.gz"):
        (raw / name).write_text("")
    # the tables, a second events table and a new side table that a folder read would take
    for name in ("events.parquet", "Items.csv.gz", "events.csv", "users.csv"):
        assert owner_of(raw / name) == f"the data in {raw}"
    assert owner_of(raw / "users.csv", raw_data=False) is None
    assert owner_of(raw / "recs.parquet") is None
    (tmp_path / "empty").mkdir()  # a folder without events: the first events table is fine
    assert owner_of(tmp_path / "empty" / "events.parquet") is None
    (mine / "items.csv").write_text("")  # a table named items without events beside it
    assert owner_of(mine / "items.csv") is None
    link = mine / "out.json"  # a link to a run's file names the run
    link.symlink_to(cut / "checkpoint.json")
    assert owner_of(link) == f"the run in {cut.resolve()}"


def test_a_save_that_was_cut_off_does_not_stop_the_next_run(tmp_path: Path) -> None:
    dataset = blm.preprocess(blm.simulate(30, seed=0))
    run = tmp_path / "run"
    (run / "dataset").mkdir(parents=True)  # an artifact's data set cut before dataset.json
    dataset.events.write_parquet(run / "dataset" / "events.parquet")
    blm.train(dataset, "pop", out_dir=run, progress=False)
    assert Artifact.load(run).dataset.n_events == dataset.n_events


def test_a_fresh_run_does_not_delete_a_run_cut_while_saving_its_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"

    def cut(self: Artifact, directory: object) -> Path:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Artifact, "save", cut)
        with pytest.raises(KeyboardInterrupt):
            blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)
    with pytest.raises(DataError, match=r"ended \(completed\) unsaved") as refused:
        blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False)
    assert "save its model without training more" in refused.value.line()
    blm.train(DS, "sasrec", overrides=QUICK, out_dir=run, progress=False, resume=True)
    assert Artifact.load(run).run["fit"]["epochs"] == 2

"""The shipped per-data-set config files are the default ones, and the default ones are what a
model gets without a config file.

The results table promises one default configuration per model: ``configs/<dataset>/<model>.toml``
may differ from ``configs/default/<model>.toml`` only in the sequence length (``model.max_len``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import behaviorlm as blm
from behaviorlm.cli import main
from behaviorlm.config import ConfigError, load_toml
from behaviorlm.models import MODELS
from behaviorlm.train.run import resolve_run_config, shipped_defaults

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT = CONFIGS / "default"
#: Keys a per-data-set config may change: (section, key).
ALLOWED = {("model", "max_len")}
FROZEN = sorted(p for p in CONFIGS.glob("*/*.toml") if p.parent != DEFAULT)


def _flat(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def test_there_are_frozen_configs() -> None:
    assert FROZEN, "no configs/<dataset>/<model>.toml"


@pytest.mark.parametrize("path", FROZEN, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_frozen_config_is_the_default_but_for_sequence_length(path: Path) -> None:
    default = DEFAULT / path.name
    assert default.is_file(), f"{path} has no default {default}"
    mine, base = _flat(load_toml(path)), _flat(load_toml(default))
    changed = {k for k in mine.keys() | base.keys() if mine.get(k) != base.get(k)}
    assert changed <= ALLOWED, f"{path} changes {sorted(changed - ALLOWED)}"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_model_without_a_config_file_gets_its_shipped_config(model: str) -> None:
    shipped = resources.files("behaviorlm") / "configs" / f"{model}.toml"
    assert shipped.is_file(), f"{model} has no shipped config"
    from_file = resolve_run_config(model, load_toml(DEFAULT / f"{model}.toml"))
    assert resolve_run_config(model) == from_file
    assert shipped_defaults(model) == {
        k: v for k, v in load_toml(DEFAULT / f"{model}.toml").items() if k != "run"
    }


def test_a_config_file_and_overrides_win_over_the_shipped_config() -> None:
    shipped = resolve_run_config("sasrec")
    assert shipped.split.followee_actions == ("share",)
    assert shipped.train.lr == load_toml(DEFAULT / "sasrec.toml")["train"]["lr"]
    mine = resolve_run_config(
        "sasrec",
        {"train": {"lr": 1e-4}, "model": {"features": {"social": False}}},
        ["split.followee_actions=[]"],
    )
    assert mine.train.lr == 1e-4
    assert mine.split.followee_actions == ()
    assert mine.model_config.features.social is False
    assert mine.model_config.dropout == shipped.model_config.dropout  # the rest as shipped
    assert mine.train.epochs == shipped.train.epochs
    # [run] model of a file picks the shipped config of that model
    assert resolve_run_config(None, {"run": {"model": "hstu"}}) == resolve_run_config("hstu")
    bare = resolve_run_config("sasrec", defaults=False)
    assert bare.split.followee_actions == ()
    assert bare.train.bf16 is False


def test_a_run_trained_before_the_shipped_defaults_resumes(tmp_path: Path) -> None:
    """A run folder's stored config, not today's shipped one, is where its resume starts."""
    dataset = blm.preprocess(blm.simulate(80, seed=2))
    tiny = ["model.dim=8", "model.layers=1", "model.max_len=10", "train.threads=1"]
    out = tmp_path / "old-run"
    # the defaults of the config classes stand in for a run from before
    blm.train(
        dataset,
        "sasrec",
        overrides=[*tiny, "train.epochs=1"],
        out_dir=out,
        progress=False,
        defaults=False,
    )
    again = [*tiny, "train.epochs=1", "train.patience=3"]  # patience may change on resume
    art = blm.train(dataset, "sasrec", overrides=again, out_dir=out, progress=False, resume=True)
    assert art.run["config"]["split"]["followee_actions"] == []  # as the run was trained
    assert art.run["config"]["train"]["patience"] == 3
    dataset.save(tmp_path / "ds")
    argv = ["train", str(tmp_path / "ds"), "--model", "sasrec", "--out", str(out)]
    assert main([*argv, *(f"--{o}" for o in again), "--resume"]) == 0
    # with the shipped config the checkpoint's config differs: a resume would be refused
    assert resolve_run_config("sasrec", None, again).split.followee_actions == ("share",)


def test_config_sections_must_be_tables() -> None:
    for bad in ({"run": "sasrec"}, {"train": 5}, {"run": {"model": ["sasrec"]}}):
        with pytest.raises(ConfigError):
            resolve_run_config(None, bad)
    with pytest.raises(ValueError, match=r'set train\.schedule = "epochs"'):
        resolve_run_config("sasrec", None, ["train.time_budget_s=0"])

"""Typed configs: loading, overrides, unknown keys and wrong types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from behaviorlm.config import ConfigError, apply_overrides, from_dict, load_toml, to_dict


@dataclass(frozen=True, kw_only=True)
class Inner:
    dim: int = 8


@dataclass(frozen=True, kw_only=True)
class Outer:
    lr: float = 1e-3
    name: str = "x"
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = ()
    window: int | None = None
    inner: Inner = Inner()


def test_from_dict_converts_and_checks_types() -> None:
    cfg = from_dict(Outer, {"lr": 1, "sizes": [1, 2], "inner": {"dim": 4}, "window": None})
    assert cfg == Outer(lr=1.0, sizes=(1, 2), inner=Inner(dim=4))
    assert isinstance(cfg.lr, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lrr": 1.0}, "unknown config key"),
        ({"lr": "fast"}, "expected a number"),
        ({"flag": 1}, "expected true or false"),
        ({"mode": "c"}, "not one of"),
        ({"sizes": 3}, "expected a list"),
        ({"inner": {"depth": 2}}, "inner.depth"),
        ({"window": "x"}, r"window: expected an integer or none, got 'x'"),
        ({"lrr": 1.0}, r"unknown config key\(s\) lrr \(did you mean lr\?\)"),
        ({"inner": {"dim-": 2}}, r"inner\.dim- \(did you mean dim\?\)"),
    ],
)
def test_from_dict_rejects_bad_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_overrides_parse_toml_values() -> None:
    out = apply_overrides({"a": {"b": 1}}, ["a.b=2.5", "a.c=true", "x.y=[1, 2]", "x.z=word"])
    assert out == {"a": {"b": 2.5, "c": True}, "x": {"y": [1, 2], "z": "word"}}
    with pytest.raises(ConfigError):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a table"):
        apply_overrides({"a": 1}, ["a.b=1"])
    for bad in ("lr=5", ".lr=5", "train.=5"):
        with pytest.raises(ConfigError, match=r"section\.key=value \(e\.g\."):
            apply_overrides({}, [bad])
    with pytest.raises(ConfigError, match=r"a list of section\.key=value strings"):
        apply_overrides({}, "train.lr=5")  # type: ignore[arg-type]
    # a section may be given as its config object
    assert apply_overrides({"inner": Inner(dim=2)}, ["inner.dim=3"]) == {"inner": {"dim": 3}}


def test_to_dict_round_trip(tmp_path: Path) -> None:
    cfg = Outer(sizes=(3,), inner=Inner(dim=2))
    assert from_dict(Outer, to_dict(cfg)) == cfg
    path = tmp_path / "c.toml"
    path.write_text("[train]\nlr = 0.1\n")
    assert load_toml(path) == {"train": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(path)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("time_budget_s", float("nan")), ("weight_decay", -0.1), ("grad_clip", float("nan"))],
)
def test_train_settings_below_zero_or_not_a_number_are_refused(setting: str, value: float) -> None:
    from behaviorlm.train import TrainConfig

    with pytest.raises(ValueError, match=f"train.{setting} must be >= 0"):
        TrainConfig(**{setting: value})  # type: ignore[arg-type]


def test_sampler_settings_without_the_sampled_loss_are_refused() -> None:
    from behaviorlm.train.run import resolve_run_config

    for override in ("train.num_negatives=512", "train.negatives='popularity'"):
        with pytest.raises(ConfigError, match="with the full softmax"):
            resolve_run_config("sasrec", overrides=[override])
        sampled = resolve_run_config("sasrec", overrides=[override, "train.loss='sampled'"])
        assert sampled.train.loss == "sampled"


def test_a_table_given_as_an_override_changes_only_its_keys() -> None:
    """``--model.features={social=false}`` over a config file that switched time off keeps
    time off, as a file changes only the keys it sets."""
    from behaviorlm.train.run import resolve_run_config

    data = {"run": {"model": "sasrec"}, "model": {"features": {"time": False}}}
    for overrides in (
        ["model.features={social=false}"],
        ["model.features.search=false", "model.features={social=false}"],
    ):
        features = resolve_run_config(None, data, overrides).model_config.features
        assert (features.time, features.social) == (False, False)
        assert features.search == ("search" not in overrides[0])
    # a value that is no table still replaces one
    with pytest.raises(ConfigError):
        resolve_run_config(None, data, ["model.features=1"])


def test_values_a_config_class_refuses_are_config_errors() -> None:
    """blm.ConfigError covers values out of range, as the README says, not only bad keys."""
    from behaviorlm.train.run import resolve_run_config

    for model, override in (("pop", "train.epochs=0"), ("itemknn", "model.neighbours=0")):
        with pytest.raises(ConfigError):
            resolve_run_config(model, overrides=[override])


def test_numpy_floats_that_are_no_finite_number_are_refused_too() -> None:
    import numpy as np

    from behaviorlm.models.pop import PopConfig

    with pytest.raises(ValueError, match="action_weights must be a finite number"):
        PopConfig(action_weights=(1.0, np.float32("nan")))  # type: ignore[arg-type]
    assert PopConfig(action_weights=(1.0, np.float32(2.0))).action_weights[1] == 2.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "setting"),
    [
        ("pop", "action_weights"),
        ("itemknn", "shrinkage"),
        ("markov", "smoothing"),
        ("markov", "backoff_weight"),
        ("mlp", "rating_scale"),
        ("hstu", "temperature"),
        ("sasrec", "dropout"),
    ],
)
def test_models_refuse_settings_that_are_no_finite_number(model: str, setting: str) -> None:
    """A comparison lets NaN through every range check: it trained, then scored NaN or
    tied every item."""
    from behaviorlm.models import MODELS
    from behaviorlm.train.run import resolve_run_config

    config_class = MODELS[model][1].config_class
    for bad in (float("nan"), float("inf")):
        value = (1.0, bad) if setting == "action_weights" else bad
        with pytest.raises(ValueError, match=f"{setting} must be a finite number"):
            config_class(**{setting: value})
        given = f"[1.0, {bad}]" if setting == "action_weights" else str(bad)
        with pytest.raises(ValueError, match=rf"model\.{setting}(\[1\])?: expected a finite"):
            resolve_run_config(model, overrides=[f"model.{setting}={given}"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=inf", "train.lr: expected a finite number"),
        ("train.time_budget_s=inf", "train.time_budget_s: expected a finite number"),
        ("train.weight_decay=inf", "train.weight_decay: expected a finite number"),
        ("train.grad_clip=inf", "train.grad_clip: expected a finite number"),
        ("train.seed=-1", r"train.seed must be in \[0, 2\*\*63\)"),
        ("train.seed=18446744073709551616", r"train.seed must be in \[0, 2\*\*63\)"),
    ],
)
def test_infinite_settings_and_seeds_out_of_range_are_refused_before_a_run(
    override: str, message: str
) -> None:
    """They would fail mid-run (NaN schedule, NaN scores, a seed torch cannot take), after
    the run folder had been reset."""
    from behaviorlm.train.run import resolve_run_config

    with pytest.raises(ValueError, match=message):
        resolve_run_config("sasrec", overrides=[override])


def test_train_settings_given_to_a_baseline_are_named_as_having_no_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    import behaviorlm as blm
    from behaviorlm import IgnoredSettingWarning  # as the README names it
    from behaviorlm.cli import main
    from behaviorlm.train import ignored_settings, resolve_run_config

    ds = blm.preprocess(blm.simulate(40, seed=0))
    with pytest.warns(IgnoredSettingWarning, match=r"train.lr = 0.5 has no effect on markov"):
        blm.train(ds, "markov", overrides=["train.lr=0.5"], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IgnoredSettingWarning)
        blm.train(ds, "markov", progress=False)  # the defaults: nothing to say
    sasrec = resolve_run_config("sasrec", overrides=["train.lr=0.5"])
    assert ignored_settings(sasrec, resume=True) == []  # the training loop reads them
    folder = tmp_path / "ds"
    ds.save(folder)
    argv = ["train", str(folder), "--model", "pop", "--out", str(tmp_path / "pop")]
    assert main([*argv, "--train.epochs=3", "--train.lr=0.5"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert notes == [
        "behaviorlm: note: train.epochs = 3, train.lr = 0.5 have no effect on pop: a baseline "
        "is fitted directly, without the training loop and its [train] settings"
    ]
    assert main([*argv, "--resume"]) == 0
    assert "resume has no effect on pop" in capsys.readouterr().err
    assert main(argv) == 0
    assert "note:" not in capsys.readouterr().err


def test_split_fractions_are_checked_and_refused_where_they_do_nothing() -> None:
    import behaviorlm as blm
    from behaviorlm.data.protocol import SplitConfig
    from behaviorlm.evaluate import evaluate_artifact
    from behaviorlm.train import resolve_run_config

    with pytest.raises(ConfigError, match=r"split.valid_fraction sizes a window of .*does nothing"):
        resolve_run_config("markov", overrides=["split.valid_fraction=5"])
    with pytest.raises(ConfigError, match="must be above 0 and sum to less than 1"):
        resolve_run_config(
            "markov",
            overrides=["split.protocol='temporal'", "split.test_fraction=-2"],
        )
    temporal = SplitConfig(protocol="temporal", valid_fraction=0.2, test_fraction=0.3)
    assert (temporal.valid_fraction, temporal.test_fraction) == (0.2, 0.3)
    # a run that recorded them (before they were refused) still resumes
    stored = {"split": {"protocol": "leave_one_out", "valid_fraction": 0.2}}
    assert resolve_run_config("markov", base=stored).split.valid_fraction == 0.2
    # a run recorded before the check still evaluates: the fractions never split it
    art = blm.train(blm.preprocess(blm.simulate(40, seed=0)), "pop", progress=False)
    before = evaluate_artifact(art, ks=(10,)).metrics
    art.run["config"]["split"]["valid_fraction"] = 5.0
    assert evaluate_artifact(art, ks=(10,)).metrics == before


def test_config_files_that_are_not_utf8_or_not_files_are_named(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[train]\nlr = 1e-3 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.toml is not UTF-8 text .*save it as UTF-8"):
        load_toml(latin)
    marked = tmp_path / "bom.toml"
    marked.write_bytes(b"\xef\xbb\xbf[train]\nlr = 1e-3\n")
    assert load_toml(marked) == {"train": {"lr": 0.001}}
    with pytest.raises(ConfigError, match="is a folder"):
        load_toml(tmp_path)


def test_a_value_a_model_config_refuses_is_named_with_its_section() -> None:
    from behaviorlm.train import resolve_run_config

    for model, override, expected in (
        ("mlp", "model.max_len=0", "model.max_len must be at least 1, got 0"),
        ("hstu", "model.dropout=1.5", "model.dropout must be in [0, 1), got 1.5"),
        ("itemknn", "model.neighbours=0", "model.neighbours must be at least 1, got 0"),
        ("sasrec", "train.lr=-1", "train.lr must be positive"),  # prefixed once
    ):
        with pytest.raises(ConfigError) as info:
            resolve_run_config(model, overrides=[override])
        assert str(info.value).startswith(expected), str(info.value)


def test_a_table_override_takes_loose_values_as_a_list_does() -> None:
    from behaviorlm.train import resolve_run_config

    run = resolve_run_config("sasrec", overrides=["model.features={social=False, time=false}"])
    assert (run.model_config.features.social, run.model_config.features.time) == (False, False)
    assert run.model_config.features.actions  # the keys not named keep their values
    with pytest.raises(ConfigError, match=r"expected a table, written \{key = value"):
        resolve_run_config("sasrec", overrides=["model.features={social: false}"])


def test_pop_action_weights_past_the_data_sets_actions_are_refused_with_their_order() -> None:
    import behaviorlm as blm

    ds = blm.preprocess(blm.simulate(40, seed=0))
    too_many = "model.action_weights=[" + ", ".join(["1"] * 12) + "]"
    with pytest.raises(ConfigError, match="12 weights for the data set's 9 actions") as info:
        blm.train(ds, "pop", overrides=[too_many], progress=False)
    assert "in this order: view, click, cart, purchase" in str(info.value)
    assert blm.train(ds, "pop", overrides=["model.action_weights=[1, 1, 1, 5]"], progress=False)


def test_an_optional_setting_is_set_back_to_none_by_name() -> None:
    # TOML has no null: "none" (or "null") unsets an optional number; a text field keeps it
    cfg = from_dict(Outer, apply_overrides({"o": {"window": 5}}, ["o.window=none"])["o"])
    assert cfg.window is None
    assert from_dict(Outer, {"window": "NULL"}).window is None
    assert from_dict(Outer, {"name": "none"}).name == "none"


def test_a_runs_config_json_reads_as_a_config_file(tmp_path: Path) -> None:
    import json

    (tmp_path / "config.json").write_text(json.dumps({"train": {"lr": 0.01, "seed": None}}))
    assert load_toml(tmp_path / "config.json") == {"train": {"lr": 0.01, "seed": None}}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="holds no JSON object"):
        load_toml(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_toml(tmp_path / "broken.json")


def test_one_name_given_for_a_list_of_names_is_a_list_of_one() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Names:
        actions: tuple[str, ...] = ()

    assert from_dict(Names, {"actions": "purchase"}).actions == ("purchase",)
    data = apply_overrides({}, ["x.actions=purchase"])["x"]
    assert from_dict(Names, data).actions == ("purchase",)
    data = apply_overrides({}, ["x.actions=purchase,cart"])["x"]
    assert from_dict(Names, data).actions == ("purchase", "cart")

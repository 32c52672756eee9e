"""One training run: config -> split -> fit -> artifact.

A run config is composed at the edge from three sources, later ones winning: the model's
shipped defaults (``behaviorlm/configs/<model>.toml``, the repository's ``configs/default``,
the settings of the published results), an experiment TOML file (tables ``[run]``,
``[split]``, ``[model]``, ``[train]``) and ``section.key=value`` overrides. What none of them
sets keeps its dataclass default. The resolved config is stored in the artifact.
"""

from __future__ import annotations

import json
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from behaviorlm.artifact import Artifact
from behaviorlm.config import (
    ConfigError,
    IgnoredSettingWarning,
    apply_overrides,
    did_you_mean,
    from_dict,
    merge,
    to_dict,
)
from behaviorlm.data.dataset import Dataset
from behaviorlm.data.errors import DataError
from behaviorlm.data.feed import has_feed
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.models import MODELS
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.train.config import TrainConfig
from behaviorlm.train.distributed import current_world
from behaviorlm.train.engine import fit_model
from behaviorlm.train.folder import CONFIG_FILE, check_run_folder, check_unfinished, release

SECTIONS = ("run", "split", "model", "train")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A resolved run: which model with which config, on which split, trained how.

    Examples
    --------
    >>> cfg = resolve_run_config("markov", overrides=["split.target_actions=['purchase']"])
    >>> cfg.model, cfg.split.target_actions
    ('markov', ('purchase',))
    >>> resolve_run_config("sasrec", overrides=["train.lr=3e-4"]).train.lr
    0.0003
    """

    model: str
    split: SplitConfig
    model_config: Any
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as the TOML-shaped data it came from."""
        return {
            "run": {"model": self.model},
            "split": to_dict(self.split),
            "model": to_dict(self.model_config),
            "train": to_dict(self.train),
        }


def shipped_defaults(model: str) -> dict[str, Any]:
    """The shipped default config of ``model`` (``behaviorlm/configs/<model>.toml``) as
    TOML-shaped data without its ``[run]`` table; ``{}`` for a model without one.

    Examples
    --------
    >>> shipped_defaults("sasrec")["split"]["followee_actions"]
    ['share']
    """
    path = resources.files("behaviorlm") / "configs" / f"{model}.toml"
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    data.pop("run", None)
    return data


def stored_config(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The resolved config a run folder's ``config.json`` holds, or None where there is none.

    Examples
    --------
    >>> import tempfile
    >>> stored_config(tempfile.mkdtemp()) is None
    True

    Raises ConfigError where the file is no JSON table (it was damaged).
    """
    path = Path(run_dir) / CONFIG_FILE if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise ConfigError(f"{path} is not a run's config ({error})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a run's config (it holds no table of settings)")
    return data


def named_model(
    model: str | None, data: Mapping[str, Any] | None, overrides: Sequence[str] = ()
) -> str | None:
    """The model a run is given: ``model``, else the ``[run] model`` of the config ``data``
    with ``overrides`` (None where neither names one, or the config's is no name).

    Examples
    --------
    >>> named_model(None, {"run": {"model": "hstu"}}), named_model("mlp", None, ["run.model=pop"])
    ('hstu', 'mlp')
    """
    if model is not None:
        return model
    named = _named_model(apply_overrides(dict(data or {}), overrides))
    return named if isinstance(named, str) else None


def _named_model(given: Mapping[str, Any]) -> object:
    """The ``[run] model`` of a config with its overrides applied (None where it names none)."""
    table = given.get("run")
    return table.get("model") if isinstance(table, Mapping) else None


def resolve_run_config(
    model: str | None = None,
    data: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    defaults: bool = True,
    base: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Compose a RunConfig from a model name, experiment data (a parsed TOML) and overrides,
    over the model's shipped defaults (:func:`shipped_defaults`; ``defaults=False``: over the
    config classes' own defaults only; ``base``: over that config instead, e.g. the
    :func:`stored_config` of a run to resume, trained with the defaults of its time).

    Raises ConfigError on unknown sections, unknown keys, wrong types or an unknown model,
    and where ``model``, the file's ``[run] model`` and the ``base`` run's model disagree.
    """
    given = apply_overrides(dict(data or {}), overrides)
    named = _named_model(given)
    for source in (given, base or {}):
        for section, table in source.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"[{section}] must be a table of settings, got {table!r}")
    run_table = {**(base or {}).get("run", {}), **given.get("run", {})}
    if model is not None and named is not None and named != model:
        raise ConfigError(
            f"the config sets [run] model = {named!r} but the model given is {model!r}; "
            "the settings of one model do not fit another: drop one of them"
        )
    stored = (base or {}).get("run", {}).get("model")
    if stored is not None and (model or named or stored) != stored:
        raise ConfigError(
            f"the run to resume trained {stored!r}, not {model or named!r}; resume it as "
            f"{stored!r}, or train {model or named!r} in another folder or without resuming"
        )
    name = model if model is not None else run_table.get("model")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"run.model must be a model name, got {name!r}")
    if base is not None:
        start: Mapping[str, Any] = base
    else:
        start = shipped_defaults(name) if defaults and name in MODELS else {}
    merged = merge(start, given)
    unknown = sorted(set(merged) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {', '.join(unknown)}"
            f"{did_you_mean(unknown[0], SECTIONS)}; known: {', '.join(SECTIONS)}"
        )
    run = [key for key in merged.get("run", {}) if key != "model"]  # the name is read above
    if run:
        raise ConfigError(
            f"unknown config key(s) {', '.join('run.' + k for k in run)}; known: run.model"
        )
    if name is None:
        raise ConfigError("no model given; pass --model NAME or set [run] model = NAME")
    if name not in MODELS:
        raise ConfigError(
            f"unknown model {name!r}{did_you_mean(name, list(MODELS))}; known: {', '.join(MODELS)}"
        )
    config_class = MODELS[name][0]
    resolved = RunConfig(
        model=name,
        split=from_dict(SplitConfig, merged.get("split", {}), where="split"),
        model_config=from_dict(config_class, merged.get("model", {}), where="model"),
        train=from_dict(TrainConfig, merged.get("train", {}), where="train"),
    )
    refuse_inert(resolved, given, start)
    return resolved


def refuse_inert(
    run: RunConfig, given: Mapping[str, Any], start: Mapping[str, Any] | None = None
) -> None:
    """ConfigError for a setting that ``given`` (the user's file and overrides) changes from
    ``start`` (the shipped defaults, or the stored config of a run to resume; then the config
    classes' defaults) and that ``run`` ignores without a word: window fractions under
    leave-one-out, ``train.patience_from`` with ``train.patience = 0``, hstu's
    ``temperature`` with the dot similarity and ``time_buckets`` with the time group off,
    mlp's ``rating_scale`` with ``ratings = false``. A
    stored config that holds such a setting (a run to resume, a saved model) still loads:
    only a change is refused. (A time group that :func:`fit_to_data` turns off later, for
    data without times, is not the user's doing: not refused.)

    Examples
    --------
    >>> refuse_inert(resolve_run_config("sasrec"), {"split": {"valid_fraction": 0.2}})
    Traceback (most recent call last):
    ...
    behaviorlm.config.ConfigError: split.valid_fraction sizes a window of ...
    """
    defaults: dict[str, object] = {
        "split": SplitConfig(),
        "train": TrainConfig(),
        "model": type(run.model_config)(),
    }

    def set_by_user(section: str, key: str) -> bool:
        table, before = given.get(section), (start or {}).get(section, {})
        if not isinstance(table, Mapping) or key not in table:
            return False
        default = getattr(defaults[section], key, None)
        return bool(table[key] != before.get(key, default))

    checks = [
        (
            f"split.{name}",
            run.split.protocol == "leave_one_out",
            "sizes a window of split.protocol = 'temporal'; with 'leave_one_out' it does "
            "nothing: set split.protocol = 'temporal'",
        )
        for name in ("valid_fraction", "test_fraction")
    ]
    checks.append(
        (
            "train.patience_from",
            run.train.patience == 0 and run.train.patience_from > 0,
            "delays early stopping, which train.patience = 0 turns off: set train.patience",
        )
    )
    checks.append(
        (
            "model.temperature",
            getattr(run.model_config, "similarity", None) == "dot",
            "divides the cosine similarity (model.similarity = 'cosine'); with 'dot' it does "
            "nothing: set model.similarity = 'cosine'",
        )
    )
    features = getattr(run.model_config, "features", None)
    checks.append(
        (
            "model.time_buckets",
            features is not None and not features.time,
            "sizes the time-gap buckets of the time group, which model.features.time = false "
            "turns off: turn it on",
        )
    )
    checks.append(
        (
            "model.rating_scale",
            getattr(run.model_config, "ratings", None) is False,
            "scales the ratings that model.ratings = false leaves unread: set model.ratings = true",
        )
    )
    for setting, inert, why in checks:
        section, key = setting.split(".")
        if inert and set_by_user(section, key):
            default = getattr(defaults[section], key)
            raise ConfigError(
                f"{setting} {why}, or leave it out (or set it back to its default, {default})"
            )


def ignored_settings(cfg: RunConfig, *, resume: bool = False) -> list[str]:
    """What of ``cfg`` (and ``resume``) has no effect on its model: a baseline is fitted
    directly, so ``[train]`` settings other than the defaults, and resuming, do nothing.

    Examples
    --------
    >>> markov = resolve_run_config("markov", overrides=["train.lr=0.1", "train.epochs=3"])
    >>> print(ignored_settings(markov)[0][:52])
    train.epochs = 3, train.lr = 0.1 have no effect on m
    >>> ignored_settings(resolve_run_config("sasrec", overrides=["train.lr=0.1"]))
    []
    """
    if issubclass(MODELS[cfg.model][1], NeuralRecommender):
        return []
    default = to_dict(TrainConfig())
    changed = [f"train.{k} = {v!r}" for k, v in to_dict(cfg.train).items() if v != default.get(k)]
    notes = (
        [
            f"{', '.join(changed)} {'has' if len(changed) == 1 else 'have'} no effect on "
            f"{cfg.model}: a baseline is fitted directly, without the training loop and its "
            "[train] settings"
        ]
        if changed
        else []
    )
    if resume:
        notes.append(f"resume has no effect on {cfg.model}: a baseline is fitted anew")
    return notes


def fit_to_data(cfg: RunConfig, dataset: Dataset) -> RunConfig:
    """``cfg`` with the feature groups the data set cannot feed switched off.

    A data set without real times (``meta["has_time"]`` false: its events are in the order
    of the input rows, their "times" row numbers) gets no time group: gaps between row
    numbers say nothing, and events stamped by a real clock later (the service's) would
    fall in gap buckets that training never saw; there ``pop``'s ``window_seconds``, which
    would count the last rows of the file, is refused (ConfigError). Other groups need no
    switch: absent data leaves their tables empty, and the model leaves them out.

    The followees' events (``split.followee_actions``) join the timelines only of a model
    that reads the social group (``features.social``): they are told apart from the user's
    own events by their source alone, so a model without it (a baseline, ``mlp``, or a
    sequence model with the group off) would take a followee's share for the user's own.
    They are also left out where no feed can be built (no follow graph, or no real times),
    so that the service adds no followee event the model never read. A followee action the
    data set does not know (neither built in nor among its events' actions: a misspelt
    ``"shares"``) raises DataError for every model, and ``pop``'s ``action_weights`` with
    more weights than the data set has actions raises ConfigError.

    Examples
    --------
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> ds = preprocess(simulate(n_users=30, seed=0))
    >>> cfg = resolve_run_config("sasrec")
    >>> fit_to_data(cfg, ds).model_config.features.time
    True
    >>> ds.meta["has_time"] = False
    >>> fit_to_data(cfg, ds).model_config.features.time
    False
    >>> cfg.split.followee_actions, fit_to_data(resolve_run_config("markov", overrides=[
    ...     "split.followee_actions=['share']"]), ds).split.followee_actions
    (('share',), ())
    """
    timed = dataset.meta.get("has_time", True)
    if not timed and getattr(cfg.model_config, "window_seconds", None) is not None:
        raise ConfigError(  # a window of row numbers would count the last rows of the file
            "model.window_seconds counts back from the latest timestamp, and this data set "
            "has no timestamps (its events are in file order): leave the window out"
        )
    actions = dataset.vocab["action"]
    weights = getattr(cfg.model_config, "action_weights", ())
    if len(weights) > len(actions):  # entries past the last action would weigh nothing
        raise ConfigError(
            f"model.action_weights has {len(weights)} weights for the data set's "
            f"{len(actions)} actions; give at most one per action, in this order: "
            f"{', '.join(actions)}"
        )
    unknown = [a for a in cfg.split.followee_actions if a not in actions]
    if unknown:  # a misspelt "shares": refused whether or not the model reads the feed
        raise DataError(
            f"split.followee_actions names {unknown[0]!r}, an action this data set does not know",
            how=f"its events' actions: {', '.join(dataset.event_actions())}",
        )
    features = getattr(cfg.model_config, "features", None)
    reads = features is not None and features.social
    if cfg.split.followee_actions and not (reads and has_feed(dataset)):
        cfg = replace(cfg, split=replace(cfg.split, followee_actions=()))
    if timed or features is None or not features.time:
        return cfg
    model_config = replace(cfg.model_config, features=replace(features, time=False))
    return replace(cfg, model_config=model_config)


def train(
    dataset: Dataset,
    model: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
    progress: bool = True,
    resume: bool = False,
    defaults: bool = True,
) -> Artifact:
    """Fit a model on the training part of ``dataset``; return (and optionally save) the artifact.

    Sequence models are trained by :func:`behaviorlm.train.engine.fit_model` with the
    ``[train]`` table; baselines are fitted directly. ``out_dir`` is also the run directory
    (``config.json``, ``metrics.jsonl``, ``summary.json``, the training checkpoint); a fresh
    run keeps the folder's earlier model in ``previous/`` until it has saved its own
    (:mod:`behaviorlm.train.folder`).

    Parameters
    ----------
    dataset : Dataset
        A prepared data set.
    model : str, optional
        A name in ``behaviorlm.models.MODELS``; where ``config`` names one in ``[run] model``
        too, the two must agree.
    config : mapping, optional
        Experiment data with tables ``run``, ``split``, ``model``, ``train`` (a parsed TOML file).
    overrides : sequence of str
        ``section.key=value`` strings applied on top of ``config``.
    out_dir : path, optional
        Where to write the artifact folder (and the run's logs and checkpoint).
    progress : bool
        Show training progress on standard error.
    resume : bool
        Continue from the checkpoint in ``out_dir`` (same config and data) if there is one.
    defaults : bool
        Start from the model's shipped config (``behaviorlm/configs/<model>.toml``, the
        settings of the published results); ``False``: from the config classes' defaults.

    Examples
    --------
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> art = train(preprocess(simulate(n_users=100, seed=0)), "pop", progress=False)
    >>> art.run["config"]["run"]["model"]
    'pop'
    """
    if out_dir is not None:  # before any work: no artifact among a data set's files
        check_run_folder(Path(out_dir))
    # a run resumed starts from its own stored config: it may predate the shipped defaults
    base = stored_config(out_dir) if resume else None
    # on resuming too: under torchrun only rank 0 reads the stored config, and every rank
    # must train the same one (a checkpoint from before a switch made here is then refused)
    cfg = fit_to_data(
        resolve_run_config(model, config, overrides, defaults=defaults, base=base), dataset
    )
    neural = issubclass(MODELS[cfg.model][1], NeuralRecommender)
    if out_dir is not None and not (resume and neural):  # before the split: nor a fresh run
        check_unfinished(Path(out_dir))  # over one that did not finish (a baseline resumes none)
    for note in ignored_settings(cfg, resume=resume):
        warnings.warn(note, IgnoredSettingWarning, stacklevel=2)
    split = make_split(dataset, cfg.split)
    fitted = MODELS[cfg.model][1](cfg.model_config)
    if isinstance(fitted, NeuralRecommender):  # where a click on a search result comes from
        fitted.use_sources(dataset.vocab.get("source", []))
    codes = [dataset.action_code(a) for a in cfg.split.target_actions]
    summary = fit_model(
        fitted,
        split,
        cfg.train,
        run_dir=out_dir,
        progress=progress,
        target_actions=codes,
        resume=resume,
        run_config=cfg.to_dict(),
    )
    artifact = Artifact(
        model=fitted,
        dataset=dataset,
        run={
            "config": cfg.to_dict(),
            "fit_seconds": summary["seconds"],
            "train_events": len(split.train.items),  # followees' events in the timelines too
            "split_info": split.info,
            "fit": summary,
        },
    )
    if out_dir is not None and current_world().is_main:  # one writer under torchrun
        artifact.save(out_dir)
        release(Path(out_dir))  # the earlier run set aside in the folder
    return artifact

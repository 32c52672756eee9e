"""One training run: config -> split -> fit -> artifact.

A run config is composed at the edge from three sources, later ones winning: the model's
defaults, an experiment TOML file (tables ``[run]``, ``[split]``, ``[model]``) and
``section.key=value`` overrides. The resolved config is stored in the artifact.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from behaviorlm.artifact import Artifact
from behaviorlm.config import ConfigError, apply_overrides, from_dict, to_dict
from behaviorlm.data.dataset import Dataset
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.models import MODELS

SECTIONS = ("run", "split", "model")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A resolved run: which model with which config, on which split.

    Examples
    --------
    >>> cfg = resolve_run_config("markov", overrides=["split.target_actions=['purchase']"])
    >>> cfg.model, cfg.split.target_actions
    ('markov', ('purchase',))
    """

    model: str
    split: SplitConfig
    model_config: Any

    def to_dict(self) -> dict[str, Any]:
        """The config as the TOML-shaped data it came from."""
        return {
            "run": {"model": self.model},
            "split": to_dict(self.split),
            "model": to_dict(self.model_config),
        }


def resolve_run_config(
    model: str | None = None,
    data: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> RunConfig:
    """Compose a RunConfig from a model name, experiment data (a parsed TOML) and overrides.

    Raises ConfigError on unknown sections, unknown keys, wrong types or an unknown model.
    """
    merged = apply_overrides(dict(data or {}), overrides)
    unknown = sorted(set(merged) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}"
        )
    run = dict(merged.get("run", {}))
    if model is not None:
        run["model"] = model
    name = run.pop("model", None)
    if run:
        raise ConfigError(
            f"unknown config key(s) {', '.join('run.' + k for k in run)}; known: run.model"
        )
    if name is None:
        raise ConfigError("no model given; pass --model NAME or set [run] model = NAME")
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    config_class = MODELS[name][0]
    return RunConfig(
        model=name,
        split=from_dict(SplitConfig, merged.get("split", {}), where="split"),
        model_config=from_dict(config_class, merged.get("model", {}), where="model"),
    )


def train(
    dataset: Dataset,
    model: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    out_dir: str | Path | None = None,
) -> Artifact:
    """Fit a model on the training part of ``dataset``; return (and optionally save) the artifact.

    Parameters
    ----------
    dataset : Dataset
        A prepared data set.
    model : str, optional
        A name in ``behaviorlm.models.MODELS``; overrides ``[run] model`` of ``config``.
    config : mapping, optional
        Experiment data with tables ``run``, ``split``, ``model`` (a parsed TOML file).
    overrides : sequence of str
        ``section.key=value`` strings applied on top of ``config``.
    out_dir : path, optional
        Where to write the artifact folder.

    Examples
    --------
    >>> from behaviorlm.data.synthetic import simulate
    >>> from behaviorlm.data.preprocess import preprocess
    >>> art = train(preprocess(simulate(n_users=100, seed=0)), "pop")
    >>> art.run["config"]["run"]["model"]
    'pop'
    """
    cfg = resolve_run_config(model, config, overrides)
    split = make_split(dataset, cfg.split)
    model_class = MODELS[cfg.model][1]
    start = time.perf_counter()
    fitted = model_class(cfg.model_config).fit(split.train)
    seconds = time.perf_counter() - start
    artifact = Artifact(
        model=fitted,
        dataset=dataset,
        run={
            "config": cfg.to_dict(),
            "fit_seconds": round(seconds, 3),
            "train_events": len(split.train.items),
            "split_info": split.info,
        },
    )
    if out_dir is not None:
        artifact.save(out_dir)
    return artifact

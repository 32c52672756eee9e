"""Training: resolve a run config, split the data, fit a model, write an artifact.

Sequence models are trained by the shared loop :func:`fit_model` with a :class:`TrainConfig`
(the ``[train]`` table of a run config); baselines are fitted directly.
"""

from behaviorlm.train.config import TrainConfig
from behaviorlm.train.engine import fit_model
from behaviorlm.train.run import (
    RunConfig,
    ignored_settings,
    named_model,
    resolve_run_config,
    train,
)

__all__ = [
    "RunConfig",
    "TrainConfig",
    "fit_model",
    "ignored_settings",
    "named_model",
    "resolve_run_config",
    "train",
]

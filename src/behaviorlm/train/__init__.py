"""Training: resolve a run config, split the data, fit a model, write an artifact."""

from behaviorlm.train.run import RunConfig, resolve_run_config, train

__all__ = ["RunConfig", "resolve_run_config", "train"]

"""behaviorlm: predict what users do next from behaviour logs, recommend, and explain why.

The pipeline as plain functions (imported lazily, so ``import behaviorlm`` stays fast)::

    import behaviorlm as blm
    raw = blm.simulate(1000, seed=0)          # or blm.read("ratings.csv", mapping=...)
    ds = blm.preprocess(raw)                  # or blm.prepare("in/", "out/")
    art = blm.train(ds, "markov", out_dir="runs/markov")
    print(blm.evaluate_artifact(art).metrics["NDCG"][10])
    top = blm.recommend(art.model, art.histories(["u1"]), k=10)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API: dict[str, str] = {
    "simulate": "behaviorlm.data.synthetic",
    "write_simulation": "behaviorlm.data.synthetic",
    "SimConfig": "behaviorlm.data.synthetic",
    "read": "behaviorlm.data.io",
    "preprocess": "behaviorlm.data.preprocess",
    "prepare": "behaviorlm.data.preprocess",
    "PrepareConfig": "behaviorlm.data.preprocess",
    "Dataset": "behaviorlm.data.dataset",
    "DataError": "behaviorlm.data.errors",
    "leave_one_out": "behaviorlm.data.split",
    "temporal_split": "behaviorlm.data.split",
    "SplitConfig": "behaviorlm.data.protocol",
    "MODELS": "behaviorlm.models",
    "Recommender": "behaviorlm.models",
    "recommend": "behaviorlm.recommend",
    "Artifact": "behaviorlm.artifact",
    "train": "behaviorlm.train",
    "evaluate": "behaviorlm.evaluate",
    "evaluate_artifact": "behaviorlm.evaluate",
    "Sequences": "behaviorlm.schema",
}

__all__ = [
    "MODELS",
    "Artifact",
    "DataError",
    "Dataset",
    "PrepareConfig",
    "Recommender",
    "Sequences",
    "SimConfig",
    "SplitConfig",
    "__version__",
    "evaluate",
    "evaluate_artifact",
    "leave_one_out",
    "prepare",
    "preprocess",
    "read",
    "recommend",
    "simulate",
    "temporal_split",
    "train",
    "write_simulation",
]

if TYPE_CHECKING:
    from behaviorlm.artifact import Artifact
    from behaviorlm.data.dataset import Dataset
    from behaviorlm.data.errors import DataError
    from behaviorlm.data.io import read
    from behaviorlm.data.preprocess import PrepareConfig, prepare, preprocess
    from behaviorlm.data.protocol import SplitConfig
    from behaviorlm.data.split import leave_one_out, temporal_split
    from behaviorlm.data.synthetic import SimConfig, simulate, write_simulation
    from behaviorlm.evaluate import evaluate, evaluate_artifact
    from behaviorlm.models import MODELS, Recommender
    from behaviorlm.recommend import recommend
    from behaviorlm.schema import Sequences
    from behaviorlm.train import train


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'behaviorlm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)

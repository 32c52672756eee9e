"""behaviorlm: predict what users do next from behaviour logs, recommend, and explain why.

The pipeline as plain functions::

    import behaviorlm as blm
    raw = blm.simulate(1000, seed=0)          # or blm.read("ratings.csv", mapping=...)
    ds = blm.preprocess(raw)                  # or blm.prepare("in/", "out/")
    art = blm.train(ds, "markov", out_dir="runs/markov")
    print(blm.evaluate_artifact(art).metrics["NDCG"][10])
    blm.write_report([blm.evaluate_artifact(art)], "report.html")  # HTML with charts
    top = blm.recommend(art.model, art.histories(["u1"]), k=10)
    net = blm.train(ds, "sasrec", out_dir="runs/sasrec")
    why = blm.explain_user(net, "u1", method="occlusion")   # why the top item (neural models)
    what = blm.influence_user(net, "u1", "i3", "share")     # what a share would change

The names are imported eagerly on purpose: ``train``, ``evaluate``, ``recommend`` and
``explain`` are also submodules, and a lazily resolved function would be shadowed by its
submodule once anything imported it. The function wins the attribute, so reach a module of
those packages by ``from``: ``from behaviorlm.explain import shapley`` (or ``from
behaviorlm.explain.reach import social_reach``); ``import behaviorlm.explain.shapley as
shapley`` looks the module up as an attribute of the function and fails.
"""

from __future__ import annotations

from behaviorlm.allocator import retain_freed_memory
from behaviorlm.artifact import Artifact
from behaviorlm.config import ConfigError, IgnoredSettingWarning
from behaviorlm.data.dataset import Dataset
from behaviorlm.data.errors import DataError
from behaviorlm.data.io import read
from behaviorlm.data.preprocess import PrepareConfig, prepare, preprocess
from behaviorlm.data.protocol import SplitConfig, make_split
from behaviorlm.data.split import leave_one_out, temporal_split
from behaviorlm.data.synthetic import SimConfig, simulate, write_simulation
from behaviorlm.evaluate import EvalResult, evaluate, evaluate_artifact, paired_difference
from behaviorlm.explain import (
    Event,
    Explanation,
    Influence,
    Target,
    estimate_exposure,
    explain,
    explain_user,
    influence,
    influence_user,
    rank_by_reach,
    rank_influencers,
    social_reach,
)
from behaviorlm.models import MODELS, Recommender
from behaviorlm.recommend import recommend
from behaviorlm.report import training_log, write_report
from behaviorlm.schema import Sequences
from behaviorlm.train import train

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "Artifact",
    "ConfigError",
    "DataError",
    "Dataset",
    "EvalResult",
    "Event",
    "Explanation",
    "IgnoredSettingWarning",
    "Influence",
    "PrepareConfig",
    "Recommender",
    "Sequences",
    "SimConfig",
    "SplitConfig",
    "Target",
    "__version__",
    "estimate_exposure",
    "evaluate",
    "evaluate_artifact",
    "explain",
    "explain_user",
    "influence",
    "influence_user",
    "leave_one_out",
    "make_split",
    "paired_difference",
    "prepare",
    "preprocess",
    "rank_by_reach",
    "rank_influencers",
    "read",
    "recommend",
    "retain_freed_memory",
    "simulate",
    "social_reach",
    "temporal_split",
    "train",
    "training_log",
    "write_report",
    "write_simulation",
]

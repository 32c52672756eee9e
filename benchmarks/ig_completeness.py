"""How complete are integrated gradients? Their attributions against score minus baseline.

For each artifact (a trained sequence model), ``--users`` users drawn with ``--seed`` get their
top recommendation explained by integrated gradients, twice:

* one pass with ``--steps`` points and no doubling (``max_steps=steps``): the quadrature's
  own error. Per user the relative gap ``|sum of attributions - (score - baseline)| /
  |score - baseline|``, of the logit and of the probability; the line gives their median
  and largest value and how many users are within 1 %;
* the default call (points doubled until both gaps are within 1 %): the points used (mean
  and largest) and the median time per explanation.

Prints one JSON line per artifact. With an older checkout on ``PYTHONPATH``, whose
``integrated_gradients`` neither doubles nor reports its gap, both measurements are its one
pass (the gaps are computed here from the attributions, as for the current code). Example::

    behaviorlm simulate shop --users 800 --seed 1 && behaviorlm prepare shop data/shop
    behaviorlm train data/shop --model hstu --out runs/shop-hstu --train.time_budget_s=30
    python benchmarks/ig_completeness.py runs/shop-hstu --users 100
    PYTHONPATH=other/src python benchmarks/ig_completeness.py runs/shop-hstu --label other
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from typing import Any

import numpy as np
import torch

import behaviorlm as blm
from behaviorlm.explain import Target
from behaviorlm.explain.gradients import integrated_gradients
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import Sequences
from machine import machine_facts

#: Whether this checkout's ``integrated_gradients`` doubles its points (``max_steps``).
DOUBLES = "max_steps" in inspect.signature(integrated_gradients).parameters


def gaps(model: NeuralRecommender, history: Sequences, item: int, **kw: Any) -> tuple[Any, ...]:
    """Relative completeness gaps (logit, probability), points used and seconds of one call."""
    start = time.perf_counter()
    ig = integrated_gradients(model, history, Target.item(item), **kw)
    seconds = time.perf_counter() - start
    out = []
    for unit, k in (("logit", 0), ("probability", 1)):
        total = sum(float(a.astype(np.float64).sum()) for a in getattr(ig, unit).values())
        delta = ig.score[k] - ig.baseline[k]
        out.append(abs(total - delta) / abs(delta) if delta else 0.0)
    return out[0], out[1], getattr(ig, "steps", kw.get("steps", 32)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("artifacts", nargs="+", help="folders written by `behaviorlm train`")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.artifacts:
        art = blm.Artifact.load(path)
        model = art.model
        assert isinstance(model, NeuralRecommender), f"{path}: not a sequence model"
        timelines = art.timelines()
        rng = np.random.default_rng(args.seed)
        active = np.flatnonzero(timelines.lengths > 0)  # every user, where there are fewer
        users = rng.choice(active, min(args.users, len(active)), replace=False)
        one_pass, default = [], []
        for u in users:
            history = timelines.select(np.array([u]))
            item = int(blm.recommend(model, history, k=1).items[0, 0])
            only = {"max_steps": args.steps} if DOUBLES else {}
            one_pass.append(gaps(model, history, item, steps=args.steps, **only))
            default.append(gaps(model, history, item, steps=args.steps))
        first, final = np.array(one_pass), np.array(default)
        line = {
            "benchmark": "ig_completeness",
            "label": args.label,
            "artifact": path,
            "model": model.name,
            "users": len(users),
            "steps": args.steps,
            "doubles": DOUBLES,
            "one_pass": {
                unit: {
                    "median_gap": round(float(np.median(first[:, k])), 5),
                    "max_gap": round(float(first[:, k].max()), 5),
                    "within_1pct": int((first[:, k] <= 0.01).sum()),
                }
                for k, unit in enumerate(("logit", "probability"))
            },
            "default": {
                "max_gap_logit": round(float(final[:, 0].max()), 5),
                "max_gap_probability": round(float(final[:, 1].max()), 5),
                "within_1pct": int(((final[:, 0] <= 0.01) & (final[:, 1] <= 0.01)).sum()),
                "mean_steps": round(float(final[:, 2].mean()), 1),
                "max_steps": int(final[:, 2].max()),
                "median_ms": round(1000 * float(np.median(final[:, 3])), 1),
            },
            "threads": args.threads,
            **machine_facts(),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

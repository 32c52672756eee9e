"""Training speed and accuracy under a wall-clock budget, one fresh process per run.

For each budget (seconds of training; 0 = until early stopping) trains the model with its
default config, then evaluates the kept (best-validation) weights on the test split with full
ranking. Prints one JSON line per run: epochs, seconds per epoch, training events/s, test
NDCG@10 / HR@10 and peak RSS. With ``--target-ndcg`` it also says whether the run reached it.
``--include-seen`` uses RecBole's sequential protocol (history items not masked at ranking,
in validation and early stopping as on the test; ``train.valid_exclude_seen=true`` masks them
in validation only).
Example (the RecBole comparison on MovieLens-100K)::

    python benchmarks/train_speed.py DATA/ml-100k --include-seen --budgets 30,60,0 \\
        --target-ndcg 0.0581
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import behaviorlm as blm
from behaviorlm.config import load_toml
from behaviorlm.models import MODELS
from behaviorlm.models.neural import NeuralRecommender
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"


def one_run(args: argparse.Namespace, budget: float) -> dict[str, object]:
    """Train once with ``budget`` seconds (0 = no budget) and evaluate on test."""
    start = time.perf_counter()
    dataset = blm.preprocess(blm.read(args.data))
    prepare_s = time.perf_counter() - start
    config = load_toml(CONFIGS / f"{args.model}.toml")
    # RecBole's protocol ranks seen items in validation too, so early stopping follows it
    protocol = ["train.valid_exclude_seen=false"] if args.include_seen else []
    # no budget: the cosine decay follows the epochs (a budget schedule needs a budget)
    schedule = [] if budget > 0 else ["train.schedule=epochs"]
    overrides = [f"train.time_budget_s={budget}", *schedule, *protocol, *args.overrides]
    t0 = time.perf_counter()
    artifact = blm.train(dataset, args.model, config=config, overrides=overrides)
    wall = time.perf_counter() - t0
    fit = artifact.run["fit"]
    result = blm.evaluate_artifact(artifact, ks=(10,), exclude_seen=not args.include_seen)
    ndcg = result.metrics["NDCG"][10]
    epochs = max(1, int(fit["epochs"]))
    return {
        "benchmark": "train_speed",
        "data": Path(args.data).name,
        "model": args.model,
        "budget_s": budget,
        "overrides": list(args.overrides),
        "exclude_seen": not args.include_seen,
        "valid_exclude_seen": artifact.run["config"]["train"]["valid_exclude_seen"],
        "prepare_s": round(prepare_s, 2),
        "train_wall_s": round(wall, 1),
        "training_rows": fit["training_rows"],
        "batch_size": fit["batch_size"],
        "epochs": fit["epochs"],
        "best_epoch": fit["best_epoch"],
        "s_per_epoch": round(float(fit["train_seconds"]) / epochs, 2),
        "train_events_per_s": fit["events_per_s"],
        "stopped": fit["stopped"],
        "device": fit["device"],  # where it trained (older lines: see overrides, gpu)
        "test_NDCG@10": round(ndcg, 5),
        "test_HR@10": round(result.metrics["HR"][10], 5),
        "reached_target": None if args.target_ndcg is None else ndcg >= args.target_ndcg,
        "peak_rss_mib": peak_rss_mib(),
        **machine_facts(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", help="file or folder that `behaviorlm prepare` reads")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--budgets", default="60,0", help="seconds per run, 0 = no budget")
    parser.add_argument("--include-seen", action="store_true")
    parser.add_argument("--target-ndcg", type=float)
    parser.add_argument("--label", default="", help="a name for this run, echoed in every line")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_intermixed_args()
    neural = [m for m, (_, cls) in MODELS.items() if issubclass(cls, NeuralRecommender)]
    if args.model not in neural:  # the baselines have no epochs to time
        parser.error(f"--model {args.model}: it times the trained models, {', '.join(neural)}")
    if args.one is not None:
        print(json.dumps({**one_run(args, args.one), "label": args.label}), flush=True)
        return
    for budget in (float(b) for b in args.budgets.split(",")):
        argv = [args.data, "--model", args.model, "--one", str(budget), "--label", args.label]
        argv += ["--include-seen"] if args.include_seen else []
        argv += ["--target-ndcg", str(args.target_ndcg)] if args.target_ndcg is not None else []
        subprocess.run([sys.executable, __file__, *argv, *args.overrides], check=True)


if __name__ == "__main__":
    main()

"""Baselines on a data set: prepare, train each model with its default config, evaluate on test.

Prints one JSON line per model (metrics, fit and evaluation seconds, peak memory) and, with
``--markdown``, a results table. Example::

    python benchmarks/baselines.py DATA_PATH --name beauty
    python benchmarks/baselines.py --simulate 5000 --name simulator
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from behaviorlm.config import load_toml
from behaviorlm.data.io import read
from behaviorlm.data.preprocess import preprocess
from behaviorlm.data.synthetic import simulate
from behaviorlm.evaluate import evaluate_artifact, markdown_table
from behaviorlm.train import train
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", nargs="?", help="file or folder that `behaviorlm prepare` reads")
    parser.add_argument(
        "--simulate", type=int, help="use the simulator with this many users instead"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="data set name in the output")
    parser.add_argument("--models", default="pop,itemknn,markov")
    parser.add_argument("--config-dir", default=str(CONFIGS))
    parser.add_argument("--include-seen", action="store_true", help="do not mask seen items")
    parser.add_argument("--markdown", action="store_true", help="print a results table at the end")
    args = parser.parse_args()
    if (args.data is None) == (args.simulate is None):
        parser.error("give a data path or --simulate N")

    start = time.perf_counter()
    raw = simulate(args.simulate, seed=args.seed) if args.simulate else read(args.data)
    dataset = preprocess(raw)
    name = args.name or dataset.meta.get("name", "data")
    prepare_s = time.perf_counter() - start
    facts = machine_facts()
    results = []
    for model in args.models.split(","):
        config_path = Path(args.config_dir) / f"{model}.toml"
        config = load_toml(config_path) if config_path.is_file() else None
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            artifact = train(dataset, model, config=config, out_dir=tmp)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = replace(
            evaluate_artifact(artifact, exclude_seen=not args.include_seen), model=model
        )
        eval_s = time.perf_counter() - t1
        results.append(result)
        line = {
            "benchmark": "baselines",
            "dataset": name,
            "model": model,
            "users": dataset.n_users,
            "items": dataset.n_items,
            "events": dataset.n_events,
            "exclude_seen": not args.include_seen,
            "prepare_s": round(prepare_s, 2),
            "fit_s": round(fit_s, 2),
            "eval_s": round(eval_s, 2),
            "peak_rss_mib": peak_rss_mib(),
            "metrics": {
                m: {str(k): round(v, 5) for k, v in by_k.items()}
                for m, by_k in result.metrics.items()
            },
            **facts,
        }
        print(json.dumps(line), flush=True)
    if args.markdown:
        print(markdown_table(results, ks=(10, 20)), file=sys.stderr)


if __name__ == "__main__":
    main()

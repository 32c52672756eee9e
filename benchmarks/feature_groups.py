"""Do the feature groups matter? Train one model with groups added one at a time.

On the simulator (whose planted causes use actions, time, search, social, location and device),
trains the model with item ids only, then adds actions, time gaps, search queries, the social
source, and location and device together; prints one JSON line per variant with test NDCG@10
and HR@10 (full ranking, seen items masked and not masked). Example::

    python benchmarks/feature_groups.py --users 5000 --model sasrec
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import behaviorlm as blm
from behaviorlm.config import load_toml
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"
#: Cumulative variants: (label, feature groups switched on).
VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ids only", ()),
    ("+ actions", ("actions",)),
    ("+ time", ("actions", "time")),
    ("+ search", ("actions", "time", "search")),
    ("+ social", ("actions", "time", "search", "social")),
    ("+ location, device", ("actions", "time", "search", "social", "location", "device")),
)
GROUPS = ("actions", "time", "search", "social", "location", "device")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value overrides")
    args = parser.parse_intermixed_args()

    dataset = blm.preprocess(blm.simulate(args.users, seed=args.seed))
    config = load_toml(CONFIGS / f"{args.model}.toml")
    facts = machine_facts()
    for label, on in VARIANTS:
        flags = [f"model.features.{g}={'true' if g in on else 'false'}" for g in GROUPS]
        start = time.perf_counter()
        artifact = blm.train(
            dataset, args.model, config=config, overrides=[*flags, *args.overrides]
        )
        seconds = time.perf_counter() - start
        masked = blm.evaluate_artifact(artifact, ks=(10,))
        unmasked = blm.evaluate_artifact(artifact, ks=(10,), exclude_seen=False)
        line = {
            "benchmark": "feature_groups",
            "model": args.model,
            "variant": label,
            "groups": list(on),
            "users": dataset.n_users,
            "items": dataset.n_items,
            "events": dataset.n_events,
            "train_s": round(seconds, 1),
            "NDCG@10": round(masked.metrics["NDCG"][10], 5),
            "HR@10": round(masked.metrics["HR"][10], 5),
            "NDCG@10_unmasked": round(unmasked.metrics["NDCG"][10], 5),
            "HR@10_unmasked": round(unmasked.metrics["HR"][10], 5),
            "peak_rss_mib": peak_rss_mib(),
            **facts,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

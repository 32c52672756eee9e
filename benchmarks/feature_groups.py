"""Do the feature groups matter? Train one model with groups added one at a time.

On the simulator (whose planted causes use actions, time, search, social, location and device),
trains the model with item ids only, then adds actions, time gaps, search activity (queries
and the source of clicks on search results), social activity (first the social source of the
user's own events, then the shares of the users they follow, ``split.followee_actions``), and
location and device together; prints one JSON line per
variant with test NDCG@10 and HR@10 (full ranking, seen items masked and not masked), after
a ``data`` line on what the followees' shares tell about the test targets
(``--data-only``: that line only). Example::

    python benchmarks/feature_groups.py --users 5000 --model sasrec
    python benchmarks/feature_groups.py --users 2000 --only 4,5 train.time_budget_s=120
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import behaviorlm as blm
from behaviorlm.config import load_toml
from behaviorlm.data.feed import split_with_feed
from behaviorlm.data.split import leave_one_out
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"
#: Cumulative variants: (label, feature groups switched on, followees' shares in the timeline).
VARIANTS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("ids only", (), False),
    ("+ actions", ("actions",), False),
    ("+ time", ("actions", "time"), False),
    ("+ search", ("actions", "time", "search"), False),
    ("+ social source", ("actions", "time", "search", "social"), False),
    ("+ followees' shares", ("actions", "time", "search", "social"), True),
    ("+ location, device", ("actions", "time", "search", "social", "location", "device"), True),
)
GROUPS = ("actions", "time", "search", "social", "location", "device")


def feed_facts(dataset: blm.Dataset) -> dict[str, object]:
    """What the followees' shares tell about the test targets of the leave-one-out split.

    The share of test targets whose item a followee shared before the target (it is in the
    test history as a followee event), the share of those that the user's own events never
    held, and how many followee events of the training rows have the time of one of the
    user's own events (such ties are ordered own events first).
    """
    split = split_with_feed(dataset, leave_one_out(dataset), ["share"])
    h = split.test.histories
    theirs = h.is_followee_event()
    width = dataset.n_items + 1
    key = h.row_of_event * width + h.items
    target = np.arange(len(split.test)) * width + split.test.targets
    shared = np.isin(target, key[theirs])
    own = np.isin(target, key[~theirs])
    train = split.train
    tf = train.is_followee_event()
    moment = train.row_of_event.astype(np.int64) * (1 << 40) + train.timestamps
    ties = int(np.isin(moment[tf], moment[~tf]).sum())
    return {
        "test_targets": len(split.test),
        "targets_shared_by_a_followee_before": round(float(shared.mean()), 4),
        "targets_shared_before_and_new_to_the_user": round(float((shared & ~own).mean()), 4),
        "train_followee_events": int(tf.sum()),
        "train_followee_events_at_an_own_event_time": ties,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--only", default="", help="comma-separated variant numbers (0 = ids only)")
    parser.add_argument("--data-only", action="store_true", help="print the data line only")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value overrides")
    args = parser.parse_intermixed_args()

    chosen = [int(i) for i in args.only.split(",")] if args.only else range(len(VARIANTS))
    if any(not 0 <= i < len(VARIANTS) for i in chosen):
        parser.error(f"--only takes variant numbers 0 to {len(VARIANTS) - 1}")
    dataset = blm.preprocess(blm.simulate(args.users, seed=args.seed))
    config = load_toml(CONFIGS / f"{args.model}.toml")
    facts = machine_facts()
    line = {"benchmark": "feature_groups", "part": "data", "users": dataset.n_users}
    print(json.dumps({**line, **feed_facts(dataset)}), flush=True)
    if args.data_only:
        return
    for label, on, followees in (VARIANTS[i] for i in chosen):
        flags = [f"model.features.{g}={'true' if g in on else 'false'}" for g in GROUPS]
        flags.append(f"split.followee_actions={json.dumps(['share'] if followees else [])}")
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
            "followee_actions": artifact.run["config"]["split"]["followee_actions"],
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

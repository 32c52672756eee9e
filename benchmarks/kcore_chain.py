"""Time of preprocessing a log whose minimum counts peel a long chain one link a round.

The log holds ``--events`` random events of users and items well above the minimum of 2, and
a chain of ``--chain`` users: user ``j`` has one event on item ``j`` and one on item ``j + 1``
of the chain, so the chain's first and last items have one event each. With minimum counts
of 2 the filter drops item 0, then user 0, then item 1, and so on, from both ends at once:
about one round per link. Times ``preprocess`` with minimum counts of 2 (no file is read;
the k-core is the step that grows with the chain). Prints one JSON line per run. Example::

    python benchmarks/kcore_chain.py --events 1_000_000 --chain 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import polars as pl

from machine import machine_facts, peak_rss_mib


def chain_log(events: int, chain: int, seed: int) -> pl.DataFrame:
    """The events of the random core followed by the chain (ids as text, times in order)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(1, events // 40), max(1, events // 80)
    links = np.arange(chain)
    users = np.concatenate([rng.integers(0, n_users, events), np.repeat(n_users + links, 2)])
    items = np.concatenate(
        [rng.integers(0, n_items, events), n_items + np.stack([links, links + 1], axis=1).ravel()]
    )
    return pl.DataFrame(
        {
            "user_id": pl.Series(users).cast(pl.String),
            "item_id": pl.Series(items).cast(pl.String),
            "timestamp": np.arange(len(users), dtype=np.int64),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="random events")
    parser.add_argument("--chain", type=int, default=2000, help="users in the chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs")
    parser.add_argument("--label", default="", help="a label for the JSON lines")
    args = parser.parse_args()
    from behaviorlm.data.preprocess import PrepareConfig, preprocess
    from behaviorlm.data.raw import RawData

    raw = RawData(events=chain_log(args.events, args.chain, args.seed))
    config = PrepareConfig(min_user_events=2, min_item_events=2)
    for run in range(1, args.repeat + 1):
        start = time.perf_counter()
        dataset = preprocess(raw, config)
        seconds = time.perf_counter() - start
        step = next(s for s in dataset.meta["quality"] if s["step"] == "min counts")
        line = {
            "bench": "kcore_chain",
            "label": args.label,
            "run": run,
            "events": raw.events.height,
            "chain": args.chain,
            "rounds": dataset.meta["min_counts"]["iterations"],
            "dropped": step["rows_in"] - step["rows_out"],
            "preprocess_s": round(seconds, 3),
            "peak_rss_mib": peak_rss_mib(),
            **machine_facts(),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

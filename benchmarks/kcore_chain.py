"""Time of the k-core filter on a log whose minimum counts peel a long chain one link a round.

The log holds ``--events`` random events of users and items well above the minimum of 2, and
a chain of ``--chain`` users: user ``j`` has one event on item ``j`` and one on item ``j + 1``
of the chain, so the chain's first and last items have one event each. With minimum counts
of 2 the filter drops item 0, then user 0, then item 1, and so on, from both ends at once:
about one round per link. Prints one JSON line per run. Example::

    python benchmarks/kcore_chain.py --events 1_000_000 --chain 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from machine import machine_facts, peak_rss_mib


def chain_log(events: int, chain: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """User and item codes of the random core followed by the chain."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(1, events // 40), max(1, events // 80)
    users = rng.integers(0, n_users, events)
    items = rng.integers(0, n_items, events)
    links = np.arange(chain)
    chain_users = np.repeat(n_users + links, 2)
    chain_items = n_items + np.stack([links, links + 1], axis=1).ravel()
    return np.concatenate([users, chain_users]), np.concatenate([items, chain_items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="random events")
    parser.add_argument("--chain", type=int, default=2000, help="users in the chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs")
    args = parser.parse_args()
    from behaviorlm.data.kcore import k_core

    users, items = chain_log(args.events, args.chain, args.seed)
    for run in range(1, args.repeat + 1):
        start = time.perf_counter()
        core = k_core(users, items, 2, 2)
        seconds = time.perf_counter() - start
        line = {
            "bench": "kcore_chain",
            "run": run,
            "events": len(users),
            "chain": args.chain,
            "rounds": core.rounds,
            "dropped": int(len(users) - np.count_nonzero(core.keep)),
            "seconds": round(seconds, 3),
            "peak_rss_mib": peak_rss_mib(),
            **machine_facts(),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

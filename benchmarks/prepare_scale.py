"""Throughput and peak memory of read + preprocess on simulator logs of a given size.

Builds a simulator folder once (cached in ``--workdir``), then times ``data.io.read`` followed
by ``data.preprocess.preprocess`` end to end in a fresh Python process per run, so the peak
resident memory is that of reading and preprocessing alone. Prints one JSON line per run.
Example::

    python benchmarks/prepare_scale.py --events 10_000_000 --format parquet
    python benchmarks/prepare_scale.py --events 1_000_000 --format csv --repeat 3
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import machine_facts

PILOT_USERS = 2000


def build(events: int, fmt: str, seed: int, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """The simulator folder with about ``events`` events (reused when already built)."""
    from behaviorlm.data.synthetic import simulate, write_simulation

    folder = workdir / f"simulator-{events}-{fmt}-seed{seed}"
    info_path = folder / "build.json"
    if info_path.is_file():
        return folder, json.loads(info_path.read_text())
    per_user = simulate(PILOT_USERS, seed=seed).events.height / PILOT_USERS
    n_users = max(1, math.ceil(events / per_user))
    start = time.perf_counter()
    raw = simulate(n_users, seed=seed)
    if abs(raw.events.height - events) > 0.02 * events:  # activity drifts a little with size
        n_users = max(1, round(n_users * events / max(raw.events.height, 1)))
        raw = simulate(n_users, seed=seed)
    simulate_s = time.perf_counter() - start
    write_simulation(raw, folder, format=fmt)  # type: ignore[arg-type]
    info = {
        "n_users_simulated": n_users,
        "events": raw.events.height,
        "simulate_s": round(simulate_s, 2),
        "bytes": sum(p.stat().st_size for p in folder.iterdir()),
    }
    info_path.write_text(json.dumps(info) + "\n")
    return folder, info


def child(folder: str, min_count: int) -> None:
    """One timed run: read + preprocess; prints a JSON line with times and peak memory."""
    from behaviorlm.data.io import read
    from behaviorlm.data.preprocess import PrepareConfig, preprocess
    from machine import peak_rss_mib

    config = PrepareConfig(min_user_events=min_count, min_item_events=min_count)
    start = time.perf_counter()
    raw = read(folder)
    read_s = time.perf_counter() - start
    dataset = preprocess(raw, config)
    total_s = time.perf_counter() - start
    line = {
        "events_in": raw.events.height,
        "read_s": round(read_s, 3),
        "preprocess_s": round(total_s - read_s, 3),
        "seconds": round(total_s, 3),
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_events": dataset.n_events,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(json.dumps(line), flush=True)


def run_json(arguments: list[str], what: str) -> dict[str, Any]:
    """Run this script with ``arguments`` in a fresh process; its last output line as JSON."""
    done = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{what} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="events to simulate")
    parser.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "behaviorlm-prepare-scale"),
        help="where the simulator folder is built and kept for later runs",
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs, one process each")
    parser.add_argument(
        "--min-count", type=int, default=1, help="min_user_events = min_item_events (k-core)"
    )
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.min_count)
        return
    workdir = Path(args.workdir)
    if args.build_only:
        folder, built = build(args.events, args.format, args.seed, workdir)
        print(json.dumps({"folder": str(folder), **built}), flush=True)
        return

    # Building runs in its own process too: a child forked from a large parent would count
    # the parent's pages in its peak memory.
    workdir.mkdir(parents=True, exist_ok=True)
    options = ["--events", str(args.events), "--format", args.format, "--seed", str(args.seed)]
    built = run_json([*options, "--workdir", str(workdir), "--build-only"], "build")
    facts = machine_facts()
    for run in range(args.repeat):
        result = run_json(["--child", built["folder"], "--min-count", str(args.min_count)], "run")
        line = {
            "benchmark": "prepare_scale",
            "format": args.format,
            "run": run,
            "events": result["events_in"],
            "seconds": result["seconds"],
            "events_per_s": round(result["events_in"] / result["seconds"]),
            **{k: v for k, v in result.items() if k not in ("events_in", "seconds")},
            "min_count": args.min_count,
            "simulated_users": built["n_users_simulated"],
            "input_bytes": built["bytes"],
            **facts,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

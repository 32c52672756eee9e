"""Batch recommendations for every user: ``behaviorlm recommend ARTIFACT --all-users --out``.

Runs the command in this process on a trained artifact and prints one JSON line: users,
recommendations written, wall seconds, users per second and peak resident memory. The lists
are ranked a step of users at a time (``behaviorlm.cli.USERS_PER_STEP``) and each step is
written as it is ranked, so peak memory should follow the model and one step, not the number
of users. ``--users-per-step`` changes the step for a comparison. Example::

    python benchmarks/recommend_all.py runs/beauty-sasrec --k 10
    python benchmarks/recommend_all.py runs/sim100k-markov --out recs.csv
    PYTHONPATH=other/src python benchmarks/recommend_all.py runs/x --label other  # another checkout
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from behaviorlm import cli
from behaviorlm.artifact import Artifact
from behaviorlm.data.write import table_format
from machine import machine_facts, peak_rss_mib


def written_rows(path: Path) -> int:
    """Rows of a recommendation file that ``behaviorlm recommend --out`` wrote, any format."""
    scans = {
        "parquet": lambda: pl.scan_parquet(path),
        "csv": lambda: pl.scan_csv(path),
        "tsv": lambda: pl.scan_csv(path, separator="\t"),
        "jsonl": lambda: pl.scan_ndjson(path),
    }
    rows: int = scans[table_format(path)]().select(pl.len()).collect().item()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", help="a folder written by `behaviorlm train`")
    parser.add_argument("--k", type=int, default=10, help="items per user")
    parser.add_argument("--out", help="the file to write (default: a temporary .parquet)")
    parser.add_argument("--users-per-step", type=int, help="users ranked per step")
    parser.add_argument("--label", default="", help="a label for the JSON line")
    args = parser.parse_args()
    if args.out:
        try:  # before the run: a name the writer takes
            table_format(args.out)
        except ValueError as exc:
            parser.error(str(exc))
    if args.users_per_step:
        cli.USERS_PER_STEP = args.users_per_step
    meta = Artifact.load(args.artifact).dataset.meta
    before = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "recs.parquet")
        argv = ["recommend", args.artifact, "--all-users", "-k", str(args.k), "--out", str(out)]
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the command's own lines: stdout is JSON
            status = cli.main(argv)
        if status != 0:
            raise SystemExit(f"behaviorlm {' '.join(argv)} failed")
        seconds = time.perf_counter() - start
        rows = written_rows(out)
        size = out.stat().st_size
    users = int(meta["n_users"])
    print(
        json.dumps(
            {
                "benchmark": "recommend_all",
                "label": args.label,
                "dataset": meta.get("name"),
                "users": users,
                "items": int(meta["n_items"]),
                "k": args.k,
                "users_per_step": cli.USERS_PER_STEP,
                "rows": rows,
                "file_mib": round(size / 2**20, 1),
                "seconds": round(seconds, 2),
                "users_per_s": round(users / seconds),
                "peak_rss_mib_after_load": before,
                "peak_rss_mib": peak_rss_mib(),
                **machine_facts(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

"""Does the service itself (no HTTP) hold on to memory as events and requests go through it?

Loads an artifact into :class:`behaviorlm.serve.Service` with an event store in a temporary
folder, then runs ``--steps`` steps. Each step ingests ``--posts`` one-event posts in one
transaction (``ingest_batch``) and ranks ``--requests`` recommendation requests in one batch
(``recommend_batch``) for users whose timeline was just extended. The first tenth of the
steps is a warm-up. Prints one JSON line: resident memory (VmRSS, MiB) after the warm-up and
at the end, and the largest growths by source line between two ``tracemalloc`` snapshots
(tracemalloc's own bookkeeping, which grows with the steps, is in both VmRSS readings;
``--no-tracemalloc`` measures VmRSS alone, without the growths).
Compare with ``serve_load.py``, which measures the whole server process. ``--varied`` draws
each batch's size, as a server's batches vary with the load; ``--onednn`` keeps torch's oneDNN
kernels on, which the server turns off (they compile and keep a kernel per input shape).
Example::

    python benchmarks/serve_memory.py runs/beauty-sasrec --steps 3300
    python benchmarks/serve_memory.py runs/beauty-sasrec --steps 2000 --requests 32 --varied
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

from behaviorlm.serve import RecommendRequest, Service, open_store, without_onednn
from machine import machine_facts
from serve_load import rss_mib


def short(where: str) -> str:
    """A source location without the machine's folders: from the package or script name on.

    Examples
    --------
    >>> short("/x/site-packages/torch/nn/functional.py:12"), short("/a/b/benchmarks/s.py:3")
    ('torch/nn/functional.py:12', 'benchmarks/s.py:3')
    """
    for marker in ("site-packages/", "src/", "benchmarks/"):
        if marker in where:
            keep = where.split(marker, 1)[1]
            return keep if marker != "benchmarks/" else marker + keep
    return Path(where).name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--steps", type=int, default=3300)
    parser.add_argument("--posts", type=int, default=2, help="event posts per step")
    parser.add_argument("--requests", type=int, default=8, help="recommendations per step")
    parser.add_argument(
        "--varied",
        action="store_true",
        help="each step ranks 1 to --requests requests (drawn at random), as a server's "
        "batches vary with the load, instead of always --requests",
    )
    parser.add_argument(
        "--onednn",
        action="store_true",
        help="keep torch's oneDNN kernels on (the server turns them off while it runs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-tracemalloc",
        action="store_true",
        help="measure VmRSS alone: tracemalloc's own bookkeeping grows with the steps and is "
        "part of both VmRSS readings otherwise (no largest_growth then)",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="serve-memory-") as folder,
        contextlib.ExitStack() as kernels,
    ):
        service = Service(args.artifact, open_store(f"sqlite:///{Path(folder) / 'ev.db'}"))
        gc.collect()
        gc.freeze()  # as the server does after start-up
        users = service.timelines.user_ids
        items = list(service.timelines.items)
        rng = random.Random(args.seed)
        fresh: list[str] = []
        ranked = 0  # recommendations so far

        def step(i: int) -> None:
            nonlocal ranked
            posts = []
            for j in range(args.posts):
                user = rng.choice(users)
                event = {"user_id": user, "item_id": rng.choice(items), "event_id": f"{i}-{j}"}
                posts.append([event])
                fresh.append(user)
            service.ingest_batch(posts)
            recent = fresh[-1000:]
            count = rng.randint(1, args.requests) if args.varied else args.requests
            ranked += count
            service.recommend_batch(
                [RecommendRequest(user_id=rng.choice(recent)) for _ in range(count)]
            )

        if not args.onednn:
            kernels.enter_context(without_onednn())
        warmup = args.steps // 10
        for i in range(warmup):
            step(i)
        ranked_in_warmup = ranked
        traced = not args.no_tracemalloc
        if traced:
            tracemalloc.start()
        before = tracemalloc.take_snapshot() if traced else None
        start_rss = rss_mib(os.getpid())
        start = time.perf_counter()
        for i in range(warmup, args.steps):
            step(i)
        end_rss = rss_mib(os.getpid())  # before the second snapshot, which takes memory too
        growth = []
        if before is not None:
            after = tracemalloc.take_snapshot()
            growth = [
                {"where": short(str(stat.traceback)), "kib": round(stat.size_diff / 1024, 1)}
                for stat in after.compare_to(before, "lineno")[:5]
            ]
        measured = args.steps - warmup
        print(
            json.dumps(
                {
                    "benchmark": "serve_memory",
                    "artifact": str(args.artifact),
                    "steps": measured,
                    "events_ingested": measured * args.posts,
                    "recommendations": ranked - ranked_in_warmup,
                    "varied": args.varied,
                    "onednn": args.onednn,
                    "seconds": round(time.perf_counter() - start, 1),
                    "rss_mib_after_warmup": start_rss,
                    "rss_mib_end": end_rss,
                    "tracemalloc": traced,  # its bookkeeping is in both readings
                    "largest_growth": growth,
                    **machine_facts(),
                }
            ),
            flush=True,
        )
        service.close()


if __name__ == "__main__":
    main()

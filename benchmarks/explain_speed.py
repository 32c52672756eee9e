"""How fast are explanations? One 200-event timeline and one share reaching 1,000 followers.

Builds a sequence model of the default size (``configs/default/<model>.toml``) for a
catalogue of ``--items`` items, with *untrained* (freshly initialised) weights: the cost of an
explanation does not depend on the weights, except where ``sasrec``'s first-layer running
sums are not trusted for a timeline (attention far below a query's largest weight) and
its occlusion takes the slower path of groups. Each ``--max-len`` is measured: 200 reads (and
explains) every event of the timeline; 50, the default config's window, reads the last 50.
Timelines are random events over every feature group (actions, time gaps, searches with query
words, social sources, locations, devices).

Times the whole API call, default target (the top recommendation) included:

* ``explain(..., method="occlusion")``: all leave-one-out deletions in one batched pass
  (goal 50 ms);
* ``explain(..., method="ig", steps=32)``: integrated gradients (goal 200 ms);
* ``explain(..., method="shapley", samples=64)``: Shapley values (no goal; ``--shapley-repeat``
  calls, it takes about ``samples`` times the rows of occlusion);
* ``social_reach``: the influence of one share on 1,000 followers' timelines (goal 1 s).

Prints one JSON line per measurement with the median and p90 over ``--repeat`` runs (after
``--warmup`` runs), and per call the CPU time (user and kernel) and the minor page faults.
The process keeps freed memory for reuse, as the ``behaviorlm`` command does (the server
only with ``--retain-freed-memory``; :func:`behaviorlm.allocator.retain_freed_memory`);
``--default-malloc`` measures with the C library's defaults instead (each line's ``malloc``
says which; lines without it were measured with the defaults). Example::

    python benchmarks/explain_speed.py --repeat 50
    python benchmarks/explain_speed.py --model hstu --threads 1
    python benchmarks/explain_speed.py --cases occlusion --max-len 200 --default-malloc
    PYTHONPATH=other/src python benchmarks/explain_speed.py --label other  # another checkout
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from behaviorlm.allocator import retain_freed_memory
from behaviorlm.config import load_toml
from behaviorlm.data.dataset import QUERY_WORDS
from behaviorlm.explain import explain, social_reach
from behaviorlm.explain.shapley import SAMPLES
from behaviorlm.models import MODELS
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import ACTIONS, SOURCES, Sequences
from behaviorlm.train.run import resolve_run_config
from machine import machine_facts, malloc_label, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"
#: The measurements, in the order they run.
CASES = ("occlusion", "integrated_gradients", "shapley", "social_reach")
#: Per-event arrays of :class:`Sequences` besides ``offsets`` (``users`` is per row).
FIELDS = (
    "users",
    "items",
    "actions",
    "timestamps",
    "event_ids",
    "values",
    "devices",
    "locations",
    "sources",
)


def timelines(
    rows: int, events: int, n_items: int, rng: np.random.Generator, words: int = 1000
) -> Sequences:
    """``rows`` random timelines of ``events`` events each; one event in ten is a search."""
    n = rows * events
    search = rng.random(n) < 0.1
    items = np.where(search, 0, rng.integers(1, n_items + 1, n))
    actions = np.where(
        search, ACTIONS.index("search") + 1, rng.integers(1, ACTIONS.index("share") + 2, n)
    )
    gaps = rng.exponential(3600.0, (rows, events)).astype(np.int64) + 1
    query = np.where(search[:, None], rng.integers(1, words + 1, (n, QUERY_WORDS)), 0)
    return Sequences(
        offsets=np.arange(rows + 1, dtype=np.int64) * events,
        users=np.arange(1, rows + 1, dtype=np.int64),
        items=items.astype(np.int64),
        actions=actions.astype(np.int64),
        timestamps=(1_700_000_000 + np.cumsum(gaps, axis=1)).ravel(),
        event_ids=np.arange(n, dtype=np.int64),
        values=np.full(n, np.nan, dtype=np.float32),
        devices=rng.integers(1, 4, n).astype(np.int64),
        locations=rng.integers(1, 21, n).astype(np.int64),
        sources=rng.integers(1, len(SOURCES) + 1, n).astype(np.int64),
        n_items=n_items,
        extra={"query_words": query.astype(np.int64)},
    )


def measure(
    call: Callable[[], object], warmup: int, repeat: int
) -> tuple[list[float], dict[str, float]]:
    """Wall times of ``repeat`` calls in milliseconds, after ``warmup`` untimed calls, and
    per call over the timed calls: the process's CPU milliseconds (user, kernel) and minor
    page faults (fresh pages the kernel had to map)."""
    for _ in range(warmup):
        call()
    out = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    after = resource.getrusage(resource.RUSAGE_SELF)
    per_call = {
        "user_cpu_ms": (after.ru_utime - before.ru_utime) * 1000 / repeat,
        "kernel_cpu_ms": (after.ru_stime - before.ru_stime) * 1000 / repeat,
        "minor_page_faults": (after.ru_minflt - before.ru_minflt) / repeat,
    }
    return out, {k: round(v, 1) for k, v in per_call.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sasrec", help="sasrec, hstu or mlp")
    parser.add_argument("--items", type=int, default=12_101, help="catalogue size (Beauty's)")
    parser.add_argument("--events", type=int, default=200, help="events of the timeline")
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--follower-events", type=int, default=50, help="events per follower")
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients steps")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="shapley: orders sampled")
    parser.add_argument("--shapley-repeat", type=int, default=5, help="timed shapley calls")
    parser.add_argument("--max-len", default="200,50", help="model windows to measure")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"cases to measure, comma-separated (default all: {','.join(CASES)})",
    )
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave the C library's malloc as it is (default: retain_freed_memory(), as the "
        "behaviorlm command does)",
    )
    parser.add_argument("--label", default="", help="a name for this run, echoed in every line")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value model overrides")
    args = parser.parse_intermixed_args()
    # as the `behaviorlm` command runs (behaviorlm.allocator)
    malloc = malloc_label(not args.default_malloc and retain_freed_memory())
    chosen = args.cases.split(",")
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    history = timelines(1, args.events, args.items, rng)
    followers = timelines(args.followers, args.follower_events, args.items, rng)
    config = load_toml(CONFIGS / f"{args.model}.toml")
    both = Sequences(
        **{
            **{k: np.concatenate([getattr(history, k), getattr(followers, k)]) for k in FIELDS},
            "offsets": np.concatenate([history.offsets, followers.offsets[1:] + args.events]),
            "n_items": args.items,
            "extra": {
                "query_words": np.concatenate(
                    [history.extra["query_words"], followers.extra["query_words"]]
                )
            },
        }
    )
    item = int(rng.integers(1, args.items + 1))
    social = SOURCES.index("social") + 1
    view = ACTIONS.index("view") + 1
    facts = machine_facts()
    for max_len in (int(x) for x in args.max_len.split(",")):
        run = resolve_run_config(args.model, config, [f"model.max_len={max_len}", *args.overrides])
        net = MODELS[run.model][1](run.model_config)
        assert isinstance(net, NeuralRecommender)
        net.setup(both, seed=args.seed)
        net.module.eval()
        cases: list[tuple[str, Callable[[], object], float | None, dict[str, Any]]] = [
            (
                "occlusion",
                partial(explain, net, history, None, "occlusion"),
                50.0,
                {"events": args.events},
            ),
            (
                "integrated_gradients",
                partial(explain, net, history, None, "ig", steps=args.steps),
                200.0,
                {"events": args.events, "steps": args.steps},
            ),
            (
                "shapley",
                partial(explain, net, history, None, "shapley", samples=args.samples),
                None,  # no goal: about `samples` times the rows of occlusion
                {"events": args.events, "samples": args.samples},
            ),
            (
                "social_reach",
                partial(social_reach, net, followers, item, action=view, source=social),
                1000.0,
                {"followers": args.followers, "follower_events": args.follower_events},
            ),
        ]
        for name, call, goal, extra in (case for case in cases if case[0] in chosen):
            slow = name == "shapley"  # seconds a call: fewer calls
            repeat = min(args.repeat, args.shapley_repeat) if slow else args.repeat
            ms, per_call = measure(call, min(args.warmup, 1) if slow else args.warmup, repeat)
            median = float(np.median(ms))
            line = {
                "benchmark": "explain_speed",
                "case": name,
                "model": run.model,
                "weights": "untrained (freshly initialised; see the module docstring)",
                "dim": getattr(run.model_config, "dim", None),
                "layers": getattr(run.model_config, "layers", None),
                "max_len": max_len,
                "events_read": min(max_len, args.events),
                "items": args.items,
                **extra,
                "repeat": repeat,
                "median_ms": round(median, 1),
                "p90_ms": round(float(np.percentile(ms, 90)), 1),
                "min_ms": round(float(np.min(ms)), 1),
                "per_call": per_call,
                "malloc": malloc,
                "goal_ms": goal,
                "meets_goal": None if goal is None else median <= goal,
                "threads": torch.get_num_threads(),
                "peak_rss_mib": peak_rss_mib(),
                **({"label": args.label} if args.label else {}),
                **facts,
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

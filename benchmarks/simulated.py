"""A service over a briefly trained model of simulated users, for the service benchmarks.

The cost of a request does not depend on how well the model is trained, so one epoch of the
shipped ``sasrec`` config (which reads the shares of the users one follows) is enough.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import behaviorlm as blm
from behaviorlm.config import load_toml
from behaviorlm.serve import EventRecord, EventStore, Service, open_store
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"


def trained_service(dataset: blm.Dataset, folder: str | Path, threads: int) -> Service:
    """Train ``sasrec`` one epoch on ``dataset`` into ``folder`` and open a
    :class:`~behaviorlm.serve.Service` on it over a new event store in the same folder."""
    config = load_toml(CONFIGS / "sasrec.toml")
    overrides = ["train.epochs=1", "train.schedule=epochs", f"train.threads={threads}"]
    blm.train(dataset, "sasrec", config=config, overrides=overrides, out_dir=folder, progress=False)
    return Service(folder, open_store(f"sqlite:///{Path(folder) / 'events.db'}"))


def service_parser(description: str | None, users: int, repeat: int) -> argparse.ArgumentParser:
    """A service benchmark's parser (its docstring as the help text, as written) with the
    options they all take: ``--users`` (simulated users), ``--repeat`` (timed calls per
    level), ``--threads``, ``--seed`` and ``--label``; read it with :func:`parsed`."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=users, help="simulated users")
    parser.add_argument("--repeat", type=int, default=repeat, help="timed calls per level")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="", help="a name for this run, echoed in every line")
    return parser


def parsed(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The command line's options; torch set to their ``--threads``."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def levels(text: str) -> list[float]:
    """The sorted levels of a comma-separated option (``"0,1000"``)."""
    return sorted(float(x) for x in text.split(","))


def random_events(
    user_id: str, items: list[str], rng: np.random.Generator, at: int, n: int, action: str
) -> list[EventRecord]:
    """``n`` events of ``user_id`` on items drawn from ``items``, one a second from ``at`` on."""
    picks = rng.integers(0, len(items), n)
    return [
        EventRecord(user_id=user_id, item_id=items[int(i)], timestamp=at + k, action=action)
        for k, i in enumerate(picks)
    ]


#: Makes ``n`` events of a benchmark, the first one its ``first``-th (times count on from it).
Events = Callable[[int, int], list[EventRecord]]
T = TypeVar("T")


def fill_store(store: EventStore, events: Events, first: int, last: int, batch: int = 1000) -> int:
    """Store ``events(k, n)`` for ``k`` from ``first`` to ``last``, ``batch`` at a time;
    returns ``last`` (the events' count then)."""
    for k in range(first, last, batch):
        store.append(events(k, min(batch, last - k)))
    return max(first, last)


def timed(
    call: Callable[[], T],
    repeat: int,
    store: EventStore | None = None,
    events: Events | None = None,
    stored: int = 0,
) -> tuple[list[float], T | None, int]:
    """Milliseconds of ``repeat`` calls of ``call()``, sorted, the last answer, and the count
    of events stored. With ``store`` and ``events``, each call follows one more stored event
    (``events(stored, 1)``): the read-your-writes case, where the answer must reflect it."""
    times, answer = [], None
    for _ in range(repeat):
        if store is not None and events is not None:
            store.append(events(stored, 1))
            stored += 1
        t0 = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times), answer, stored


def most_followed(dataset: blm.Dataset) -> tuple[int, int]:
    """The internal id of the user with the most followers, and how many they have."""
    counts = dataset.follows.group_by("followee").len().sort("len", descending=True)
    return int(counts["followee"][0]), int(counts["len"][0])


def timing_fields(times: list[float]) -> dict[str, float]:
    """Median and p90 (linear interpolation, as numpy's default) of millisecond ``times``,
    for a JSON line.

    Examples
    --------
    >>> timing_fields([1.82, 1.92])
    {'median_ms': 1.87, 'p90_ms': 1.91}
    """
    return {
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(float(np.percentile(times, 90)), 2),
    }


def run_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The threads, peak memory, label and machine facts of a run, for a JSON line."""
    return {
        "threads": args.threads,
        "peak_rss_mib": peak_rss_mib(),
        "label": args.label,
        **machine_facts(),
    }

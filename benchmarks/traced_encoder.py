"""Eager against traced ``encode_last`` on the small batches a service ranks.

Builds a sequence model of the default size (``configs/default/<model>.toml``, untrained: the
cost does not depend on the weights) for a catalogue of ``--items`` items, and times
``module.encode_last`` on batches of ``--rows`` random timelines (lengths drawn up to the
model's window, so batches have padding), eager and through
:class:`behaviorlm.models.traced.TracedEncoder`, alternately, in two settings:

* ``alone``: nothing else runs in the process;
* ``busy_thread``: a second Python thread runs a pure-Python loop all the while, as a server's
  event loop does under load. Each eager operation gives up the interpreter lock and has to
  take it back from that thread; a trace takes it back once per pass.

One torch thread and oneDNN off, as ``behaviorlm serve`` runs. Prints one JSON line per model,
setting and pass: median wall time and CPU time of the calling thread per call, in ms.
Example::

    python benchmarks/traced_encoder.py
    python benchmarks/traced_encoder.py --model hstu --rows 1,3,8
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from behaviorlm.config import load_toml
from behaviorlm.models import MODELS
from behaviorlm.models.batch import SequenceBatch
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.models.traced import TracedEncoder
from behaviorlm.train.run import resolve_run_config
from explain_speed import CONFIGS, timelines
from machine import machine_facts


@contextmanager
def busy_thread() -> Iterator[None]:
    """A Python thread that computes until the block ends."""
    stop = threading.Event()

    def spin() -> None:
        total = 0
        while not stop.is_set():
            for i in range(1000):
                total += i

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def rotating(
    encode: Callable[[SequenceBatch], torch.Tensor], batches: list[SequenceBatch]
) -> Callable[[], object]:
    """A call that encodes the next of ``batches`` each time, round and round."""
    turn = itertools.cycle(batches)
    return lambda: encode(next(turn))


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and thread-CPU milliseconds of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.thread_time()
        call()
        wall.append((time.perf_counter() - w) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sasrec", help="sasrec or hstu")
    parser.add_argument("--items", type=int, default=12_101, help="catalogue size (Beauty's)")
    parser.add_argument("--rows", default="1,3,8", help="timelines per batch, comma-separated")
    parser.add_argument("--batches", type=int, default=50, help="different batches of each size")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per setting alone")
    parser.add_argument("--busy-repeat", type=int, default=20, help="timed calls beside a thread")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="", help="a name for this run, echoed in every line")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch._C._set_mkldnn_enabled(False)  # as behaviorlm serve runs

    rng = np.random.default_rng(args.seed)
    run = resolve_run_config(args.model, load_toml(CONFIGS / f"{args.model}.toml"), [])
    max_len = int(run.model_config.max_len)
    pool = timelines(200, max_len, args.items, rng)
    net = MODELS[run.model][1](run.model_config)
    assert isinstance(net, NeuralRecommender)
    net.setup(pool, seed=args.seed)
    module = net.module.eval()
    encoder = TracedEncoder(module)
    facts = machine_facts()
    for rows in (int(x) for x in args.rows.split(",")):
        batches: list[SequenceBatch] = []
        for _ in range(args.batches):
            users = rng.choice(len(pool), rows, replace=False)
            ends = pool.offsets[users] + rng.integers(1, max_len + 1, rows)  # lengths 1..max_len
            batches.append(net.batch(pool.prefixes(users, ends)))
        passes = {
            "eager": rotating(module.encode_last, batches),
            "traced": rotating(encoder, batches),
        }
        with torch.inference_mode():
            for call in passes.values():  # the traces are made here, outside the timing
                timed(call, 5)
            for setting in ("alone", "busy_thread"):
                repeat = args.repeat if setting == "alone" else args.busy_repeat
                results: dict[str, list[tuple[float, float]]] = {name: [] for name in passes}
                for _ in range(3):  # alternately, so drift of the machine hits both
                    for name, call in passes.items():
                        if setting == "alone":
                            results[name].append(timed(call, repeat))
                        else:
                            with busy_thread():
                                results[name].append(timed(call, repeat))
                for name, runs in results.items():
                    line = {
                        "benchmark": "traced_encoder",
                        "model": run.model,
                        "max_len": max_len,
                        "items": args.items,
                        "rows": rows,
                        "setting": setting,
                        "pass": name,
                        "calls": 3 * repeat,
                        "wall_ms": round(float(np.median([r[0] for r in runs])), 3),
                        "cpu_ms": round(float(np.median([r[1] for r in runs])), 3),
                        "threads": torch.get_num_threads(),
                        **({"label": args.label} if args.label else {}),
                        **facts,
                    }
                    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

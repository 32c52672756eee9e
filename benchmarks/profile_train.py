"""Where a training step's time goes: torch's profiler over a short training run.

Trains the model with its default config (``configs/default``) for ``--seconds`` (2 by
default) or ``--epochs`` epochs, whichever ends first, under ``torch.profiler``, and prints JSON
lines. Keep the runs short: summing up the profile takes far longer than the steps did (on a
GPU, over 40 seconds for 176 steps of 25 ms).

* ``part: "run"``: the device, the steps, seconds per step and training events/s of the
  profiled run (the profiler slows it: compare runs of this script with each other, and
  ``train_speed.py`` for speeds);
* ``part: "region"``: each part of the loop that the engine names
  (``behaviorlm.train.engine.REGIONS``: building and moving the batch, the forward pass with
  the loss, the backward pass, clipping with the optimizer step, validation), with its calls
  and wall time on the host;
* ``part: "totals"``: the ``aten`` operators per step (nested ones too) and, on a GPU, the
  kernels per step;
* ``part: "op"``: on the CPU the ``--top`` operators with the most time of their own; on a
  GPU the ``--top`` kernels and copies with the most GPU time; with their calls;
* ``part: "syncs"`` (on a GPU): the lines of Python (``folder/file:line``) that made the host
  wait for the GPU in one more run under ``torch.cuda.set_sync_debug_mode``, with their
  counts per step; a wait in the backward pass shows as torch's ``autograd/graph.py``.

The regions do not add up to a step: clearing the gradients, reading the loss back for the
progress bar and, under ``torchrun``, the ranks' exchanges lie between them.

The figures "per step" of ``totals``, ``op`` and ``syncs`` divide the whole run's counts and
times, the validation after the training steps included, by the training steps.

Example::

    python benchmarks/profile_train.py DATA/s3rec/Beauty.txt --model sasrec train.device=cuda
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

import behaviorlm as blm
from behaviorlm.config import load_toml
from behaviorlm.train.engine import REGIONS
from machine import machine_facts, peak_rss_mib

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "default"


def train(args: argparse.Namespace, dataset: blm.Dataset, extra: list[str]) -> dict[str, Any]:
    """Fit summary of one training run of ``args.epochs`` epochs or ``args.seconds``."""
    config = load_toml(CONFIGS / f"{args.model}.toml")
    overrides = [
        f"train.epochs={args.epochs}",
        f"train.time_budget_s={args.seconds}",
        "train.schedule=epochs",
        *args.overrides,
        *extra,
    ]
    artifact = blm.train(dataset, args.model, config=config, overrides=overrides)
    fit: dict[str, Any] = artifact.run["fit"]
    return fit


def annotation(e: Any) -> bool:
    """Whether a profile row is a named range (``record_function``), not an operator."""
    return e.key in REGIONS.values() or bool(getattr(e, "is_user_annotation", False))


def on_gpu(e: Any) -> bool:
    """Whether a profile row is work on the GPU (a kernel, a copy or a fill)."""
    return e.device_type != DeviceType.CPU and not annotation(e)


def sync_sites(args: argparse.Namespace, dataset: blm.Dataset) -> tuple[Counter[str], int]:
    """Where (``folder/file:line``) one more run made the host wait for the GPU, and its
    steps."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = train(args, dataset, [])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    sites = Counter(
        f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}"
        for w in caught
        if "synchroniz" in str(w.message).lower()
    )
    return sites, int(fit["steps"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", help="file or folder that `behaviorlm prepare` reads")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="training time per run (0 = the epochs)"
    )
    parser.add_argument("--top", type=int, default=15, help="operators to list")
    parser.add_argument("--label", default="", help="a name for this run, echoed in every line")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_intermixed_args()
    dataset = blm.preprocess(blm.read(args.data))
    gpu = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        fit = train(args, dataset, [])
    wall = time.perf_counter() - start
    on_device = fit["device"] != "cpu"
    common = {
        "benchmark": "profile_train",
        "data": Path(args.data).name,
        "model": args.model,
        "overrides": list(args.overrides),
        "label": args.label,
        "device": fit["device"],
    }
    steps = int(fit["steps"])
    print(
        json.dumps(
            {
                **common,
                "part": "run",
                "epochs": fit["epochs"],
                "steps": steps,
                "batch_size": fit["batch_size"],
                "s_per_step": round(float(fit["train_seconds"]) / max(steps, 1), 5),
                "train_events_per_s": fit["events_per_s"],
                "profiled_wall_s": round(wall, 1),
                "peak_rss_mib": peak_rss_mib(),
                **machine_facts(),
            }
        ),
        flush=True,
    )
    events = prof.key_averages()
    for e in events:
        if e.key in REGIONS.values() and e.device_type == DeviceType.CPU:  # not the GPU's copy
            line = {"part": "region", "name": e.key, "calls": e.count}
            line["host_ms"] = round(e.cpu_time_total / 1000, 1)
            line["host_ms_per_step"] = round(e.cpu_time_total / 1000 / max(steps, 1), 3)
            print(json.dumps({**common, **line}), flush=True)
    aten = sum(e.count for e in events if e.key.startswith("aten::"))
    line = {"part": "totals", "aten_ops_per_step": round(aten / max(steps, 1), 1)}
    if on_device:
        kernels = sum(e.count for e in events if on_gpu(e) and not e.key.startswith("Mem"))
        line["device_kernels_per_step"] = round(kernels / max(steps, 1), 1)
    print(json.dumps({**common, **line}), flush=True)
    # on a GPU the kernels and copies themselves (an operator's row would count them again)
    if on_device:
        ops = [e for e in events if on_gpu(e)]
    else:
        ops = [e for e in events if e.device_type == DeviceType.CPU and not annotation(e)]
    own = "self_device_time_total" if on_device else "self_cpu_time_total"
    ops.sort(key=lambda e: getattr(e, own), reverse=True)
    for rank, e in enumerate(ops[: args.top], 1):
        line = {"part": "op", "rank": rank, "name": e.key, "calls": e.count}
        line["self_ms"] = round(getattr(e, own) / 1000, 1)
        line["self_ms_per_step"] = round(getattr(e, own) / 1000 / max(steps, 1), 3)
        print(json.dumps({**common, **line, "on": "device" if on_device else "host"}), flush=True)
    if on_device:
        sites, sync_steps = sync_sites(args, dataset)
        per_step = {where: round(n / max(sync_steps, 1), 2) for where, n in sites.most_common()}
        line = {"part": "syncs", "steps": sync_steps, "per_step": per_step}
        print(json.dumps({**common, **line}), flush=True)


if __name__ == "__main__":
    main()

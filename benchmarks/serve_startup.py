"""Resident memory of ``behaviorlm serve`` once it is ready, before any request.

Starts the server on a free loopback port with a temporary event store, waits for
``/readyz``, lets it settle for ``--settle`` seconds and prints one JSON line: the server's
VmRSS in MiB (``rss_mib``), how long start-up took, and the machine facts. ``--repeat N``
starts it N times (one line each). The code measured is whatever ``behaviorlm`` the server's
interpreter imports, so an earlier version is measured with ``PYTHONPATH=OLD/src``.
Examples::

    python benchmarks/serve_startup.py runs/beauty-sasrec
    PYTHONPATH=previous/src python benchmarks/serve_startup.py runs/beauty-sasrec --label before
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from behaviorlm.serve.process import start_server
from machine import machine_facts, rss_mib


def measure(artifact: str, settle_s: float) -> dict[str, float | None]:
    """One start of the server: seconds until ready and its RSS after ``settle_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = f"sqlite:///{Path(tmp) / 'events.db'}"
        with start_server(artifact, store, Path(tmp) / "server.log") as server:
            ready_s = time.perf_counter() - start
            time.sleep(settle_s)
            return {"ready_s": round(ready_s, 2), "rss_mib": rss_mib(server.proc.pid)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after ready (2)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    facts = machine_facts()
    for _ in range(args.repeat):
        line = {"benchmark": "serve_startup", "label": args.label, "artifact": args.artifact}
        print(json.dumps({**line, **measure(args.artifact, args.settle), **facts}), flush=True)


if __name__ == "__main__":
    main()

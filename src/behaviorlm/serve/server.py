"""Running the app under uvicorn (what ``behaviorlm serve`` calls)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import torch
import uvicorn

from behaviorlm.allocator import retain_freed_memory
from behaviorlm.artifact import require_artifact
from behaviorlm.serve.app import create_app
from behaviorlm.serve.settings import Limits
from behaviorlm.serve.store import open_store


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_key: str | None) -> str:
    """What the server says about its binding at start-up; ValueError when a server without an
    API key is asked to listen beyond this machine."""
    if api_key:
        return f"API key required for POST /v1/events and /v1/influence; listening on {host}"
    if not is_loopback(host):
        raise ValueError(
            f"--host {host} would accept events from other machines without an API key; "
            "set one with --api-key-env NAME or listen on 127.0.0.1"
        )
    return (
        "no API key configured: POST /v1/events and /v1/influence are open, "
        f"so listening on {host} only"
    )


def run_server(
    artifact_path: str | Path,
    store_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    limits: Limits | None = None,
    access_log: bool = False,
    threads: int = 1,
    traced: bool = True,
    retain_memory: bool = False,
) -> None:
    """Serve until interrupted (SIGINT / SIGTERM stop it gracefully).

    ``access_log`` logs one line per request (uvicorn's access log); off by default, since
    ``/metrics`` counts requests by route and status and the log line costs CPU on every
    request. ``threads`` is torch's intra-op threads: 1 by default, because requests are
    batched across clients instead, and on 2 cores a second torch thread took CPU from the
    event loop (closed-loop throughput 636 requests/s with 2 threads, 734 with 1).
    ``traced`` runs a neural model through TorchScript traces (``create_app``).
    ``retain_memory`` keeps freed memory in the process for reuse
    (:func:`behaviorlm.allocator.retain_freed_memory`): off by default, since recommendation
    requests gained nothing from it in load runs; explanations of long windows took less
    CPU with it through the Python API (benchmarks/RESULTS.md), not measured in the server.

    Examples
    --------
    >>> run_server("runs/sasrec", "sqlite:///events.db", port=8000)  # doctest: +SKIP
    behaviorlm serve: no API key configured: POST /v1/events and /v1/influence are open, ...
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    if retain_memory:
        retain_freed_memory()
    require_artifact(artifact_path)  # before the store is opened
    message = check_binding(host, api_key)
    open_store(store_url).close()  # a bad store is one line here, not a traceback at start-up
    app = create_app(artifact_path, store_url, api_key=api_key, limits=limits, traced=traced)
    print(f"behaviorlm serve: {message}", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )

"""The real-time service: durable event ingestion and fresh recommendations over HTTP.

- :mod:`~behaviorlm.serve.store`: the event store (SQLite in WAL mode, ``synchronous=FULL``,
  idempotent on client event ids) and :func:`export_events` for the next training run.
- :mod:`~behaviorlm.serve.timelines`: live timelines (training history + accepted events),
  external -> internal ids through the artifact's Dataset.
- :mod:`~behaviorlm.serve.service`: ingestion, recommendations and similar items without HTTP.
- :mod:`~behaviorlm.serve.batching`: concurrent recommendation requests ranked in one batched
  pass of the model (dynamic batching, no added wait).
- :mod:`~behaviorlm.serve.app`: ``create_app(artifact_path, store_url, api_key, limits)``,
  the FastAPI app; routes in :mod:`behaviorlm.serve.routes`. The app runs with torch's oneDNN
  kernels off (:func:`without_onednn`: their per-shape kernel cache grew a server's memory);
  a long-running process that uses :class:`Service` without the app should do the same.
- :mod:`~behaviorlm.serve.server`: ``run_server`` under uvicorn (``behaviorlm serve``).
- :mod:`~behaviorlm.serve.process`: ``behaviorlm serve`` as a child process (``start_server``, a
  context manager), for integration and load tests.
"""

from __future__ import annotations

from behaviorlm.serve.app import create_app, without_onednn
from behaviorlm.serve.batching import Batcher
from behaviorlm.serve.process import ServerProcess, start_server
from behaviorlm.serve.server import run_server
from behaviorlm.serve.service import RecommendRequest, Service
from behaviorlm.serve.settings import Limits
from behaviorlm.serve.store import EventRecord, EventStore, SQLiteStore, export_events, open_store

__all__ = [
    "Batcher",
    "EventRecord",
    "EventStore",
    "Limits",
    "RecommendRequest",
    "SQLiteStore",
    "ServerProcess",
    "Service",
    "create_app",
    "export_events",
    "open_store",
    "run_server",
    "start_server",
    "without_onednn",
]

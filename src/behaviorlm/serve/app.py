"""The FastAPI application: ``create_app(artifact_path, store_url, ...)``.

The artifact is loaded (and the event store opened) in the lifespan handler, so importing
or building the app is cheap and a server process is ready once ``/readyz`` answers 200.
Errors are JSON ``{"detail": ...}`` with a 4xx status for anything wrong with the request;
a fault of the server answers 500 with a fixed message, never a traceback.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from behaviorlm.artifact import package_version
from behaviorlm.serve.batching import Batcher, Lane, OverloadedError
from behaviorlm.serve.deps import IngestBatcher, RecommendBatcher
from behaviorlm.serve.metrics import Metrics
from behaviorlm.serve.middleware import ApiKeyGate, BodyLimit, JsonBodies, RequestMetrics
from behaviorlm.serve.routes import events, explain, health, items, recommendations
from behaviorlm.serve.schemas import V1_ERRORS
from behaviorlm.serve.service import RequestError, Service
from behaviorlm.serve.settings import Limits
from behaviorlm.serve.store import open_store, sqlite_path

log = logging.getLogger("behaviorlm.serve")
#: Most validation errors a 422 lists (then a count of the rest).
MAX_ERRORS = 20


#: Apps (lifespans) running now, which hold oneDNN off, and the setting to restore after them.
_onednn_lock = threading.Lock()
_onednn_users = 0
_onednn_before = True


@contextmanager
def without_onednn() -> Iterator[None]:
    """torch's own CPU kernels instead of oneDNN's while the service runs.

    oneDNN compiles a kernel for every input shape it meets (in these models: the GELU of
    each batch's rows x events) and keeps up to 1,024 of them. Requests come in every batch
    size and timeline length, so a server's memory grew for as long as new shapes came
    (``benchmarks/serve_memory.py --varied --onednn``: +59 MiB over 29,427 recommendations;
    none without oneDNN, ``benchmarks/RESULTS.md``). torch's own kernels keep no such cache.

    The switch is process-wide (torch reads it on every operation, in every thread). Entries
    nest and overlap: the first turns oneDNN off, and the last exit restores the setting found
    by the first, so several apps in one process (tests) leave it as it was. Only the on/off
    switch is touched, none of oneDNN's other flags.

    Examples
    --------
    >>> with without_onednn():
    ...     torch.backends.mkldnn.enabled
    False
    """
    global _onednn_users, _onednn_before
    with _onednn_lock:
        if _onednn_users == 0:
            # the switch behind torch.backends.mkldnn.enabled, alone (its `flags` context
            # also resets the deterministic, TF32 and precision flags)
            _onednn_before = torch._C._get_mkldnn_enabled()
            torch._C._set_mkldnn_enabled(False)
        _onednn_users += 1
    try:
        yield
    finally:
        with _onednn_lock:
            _onednn_users -= 1
            if _onednn_users == 0:
                torch._C._set_mkldnn_enabled(_onednn_before)


def create_app(
    artifact_path: str | Path,
    store_url: str = "sqlite:///events.db",
    *,
    api_key: str | None = None,
    limits: Limits | None = None,
    traced: bool = True,
) -> FastAPI:
    """The HTTP service for one artifact and one event store.

    Parameters
    ----------
    artifact_path : path
        Folder written by ``behaviorlm train``; loaded when the app starts.
    store_url : str
        The event store, ``sqlite:///path/to/events.db`` (created if missing).
    api_key : str, optional
        Required in the ``X-API-Key`` header of ``POST /v1/events`` and
        ``POST /v1/influence`` when given; without surrounding whitespace (a key read from a
        file often ends in a newline, which no HTTP header value can carry).
    limits : Limits, optional
        Request size limits.
    traced : bool
        Run a neural model through TorchScript traces (the same scores, less CPU per
        request; :class:`behaviorlm.serve.service.Service`); False keeps the eager pass.

    Raises
    ------
    ValueError
        For a store URL that is not ``sqlite:///PATH``.

    Examples
    --------
    >>> app = create_app("runs/markov", "sqlite:///events.db")
    >>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1"))[:2]
    ['/v1/events', '/v1/influence']
    """
    sqlite_path(store_url)  # a bad URL fails here, before a server starts
    limits = limits or Limits()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with without_onednn():  # until the batchers' last batch has run and the store closed
            async with serving(app):
                yield

    @asynccontextmanager
    async def serving(app: FastAPI) -> AsyncIterator[None]:
        def load() -> Service:
            return Service(artifact_path, open_store(store_url), metrics, traced=traced)

        service = await run_in_threadpool(load)
        # Start-up leaves every long-lived object of the artifact (id maps, vocabularies,
        # tables); a full garbage collection walked them all while every request waited
        # (max latency at 400 requests/s: 185 ms, 71 ms frozen). Frozen, the collector
        # skips them.
        gc.collect()
        gc.freeze()
        batcher: RecommendBatcher = Batcher(
            service.recommend_batch,
            max_batch=limits.model_batch,
            max_pending=limits.max_pending,
            observe=metrics.batch_size.observe,
        )
        ingester: IngestBatcher = Batcher(
            service.ingest_batch, max_batch=limits.model_batch, max_pending=limits.max_pending
        )
        lane = Lane(max_pending=limits.max_pending)  # explanations and influence
        batcher.start()
        ingester.start()
        lane.start()
        app.state.service, app.state.batcher, app.state.ingester = service, batcher, ingester
        app.state.lane = lane
        log.info(
            "serving %s (version %s, %s)",
            service.model_name,
            service.model_version,
            "TorchScript traces" if service.traced else "eager",
        )
        try:
            yield
        finally:
            app.state.service = app.state.batcher = app.state.ingester = app.state.lane = None
            await batcher.stop()
            await ingester.stop()
            await lane.stop()
            service.close()
            gc.unfreeze()

    app = FastAPI(
        title="behaviorlm",
        version=package_version(),
        summary="Durable event ingestion and fresh recommendations from a behaviour model.",
        lifespan=lifespan,
    )
    app.state.service = app.state.batcher = app.state.ingester = app.state.lane = None
    app.state.metrics = metrics
    key = api_key.strip() if api_key else ""
    if api_key and not key:
        raise ValueError("the API key is only whitespace")
    app.state.api_key = key.encode("utf-8") if key else None
    app.state.limits = limits
    app.include_router(health.router())
    for module_router in (
        events.router(limits),
        recommendations.router(limits),
        items.router(limits),
        explain.router(limits),
    ):  # each route's own description of an answer wins
        app.include_router(module_router, responses=V1_ERRORS)
    _add_error_handlers(app)
    app.add_middleware(JsonBodies)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(ApiKeyGate)  # the key before the body's size, type and schema
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts every answer
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(OverloadedError)
    async def overloaded(request: Request, exc: OverloadedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        for e in errors:  # a body list over its limit (schemas.bounded): too large, 413
            if e.get("type") == "too_long" and tuple(e.get("loc", ())) == ("body", "events"):
                what = "batch" if request.url.path.endswith("/events") else "timeline"
                ctx = e.get("ctx", {})
                return JSONResponse(
                    {
                        "detail": f"{what} of {ctx.get('actual_length', 0):,} events: "
                        f"the limit is {ctx.get('max_length', 0):,}"
                    },
                    status_code=413,
                )
        # the messages without the input values (which may be large or sensitive), and no
        # more than MAX_ERRORS of them (a large body of bad events has one each)
        detail: list[dict[str, Any]] = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in errors[:MAX_ERRORS]
        ]
        if len(errors) > MAX_ERRORS:
            detail.append(
                {
                    "loc": ["body"],
                    "msg": f"{len(errors) - MAX_ERRORS:,} more errors not listed",
                    "type": "more_errors",
                }
            )
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

"""Liveness, readiness and metrics."""

# no `from __future__ import annotations`: FastAPI reads these annotations at run time, and
# they refer to the enclosing function's `limits`
import sqlite3

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from behaviorlm.serve.metrics import CONTENT_TYPE, Metrics
from behaviorlm.serve.schemas import Status
from behaviorlm.serve.service import Service


def router() -> APIRouter:
    """The health routes (not versioned: load balancers and Prometheus call them)."""
    api = APIRouter(tags=["health"])

    @api.get("/healthz", response_model=Status)
    def healthz() -> Status:
        """The process is alive (says nothing about the model or the store)."""
        return Status(status="ok")

    @api.get("/readyz", response_model=Status, responses={503: {"model": Status}})
    def readyz(request: Request) -> Status | JSONResponse:
        """Ready when the model is loaded and the event store answers."""
        service: Service | None = getattr(request.app.state, "service", None)
        if service is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        try:
            return Status(**service.status())
        except sqlite3.Error as exc:
            return JSONResponse({"status": f"event store unavailable: {exc}"}, status_code=503)

    @api.get("/metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus text format: requests, latencies, ingested events, model version."""
        registry: Metrics = request.app.state.metrics
        return Response(registry.render(), media_type=CONTENT_TYPE)

    # HEAD too, which some load balancers' probes send (headers only; not in the schema)
    for path, endpoint in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)):
        api.add_api_route(
            path, endpoint, methods=["HEAD"], include_in_schema=False, response_model=None
        )
    return api

"""Event ingestion."""

# no `from __future__ import annotations`: FastAPI reads these annotations at run time, and
# they refer to the enclosing function's `limits`
from fastapi import APIRouter, Depends

from behaviorlm.serve.deps import IngesterDep, require_api_key
from behaviorlm.serve.schemas import EventBatch, EventsResponse, Problem
from behaviorlm.serve.service import RequestError
from behaviorlm.serve.settings import Limits


def router(limits: Limits) -> APIRouter:
    """``POST /v1/events``."""
    api = APIRouter(prefix="/v1", tags=["events"])

    @api.post(
        "/events",
        response_model=EventsResponse,
        dependencies=[Depends(require_api_key)],
        responses={
            401: {"model": Problem, "description": "missing or wrong API key"},
            413: {"model": Problem, "description": "body or batch over the limit"},
            503: {"model": Problem, "description": "the event store cannot take events now"},
        },
    )
    async def post_events(batch: EventBatch, ingester: IngesterDep) -> EventsResponse:
        """Ingest a batch of events (external ids, the event schema).

        Each event is validated on its own; the response gives per event ``accepted``,
        ``duplicate`` (its ``event_id`` is already stored) or ``rejected`` with the reason.
        Accepted events are on disk before the response is sent; posts that arrive
        together share one transaction (group commit). An event on an item the model does
        not know is accepted, stored and counted, and ignored by the model until a retrain
        (its result carries a note).
        """
        if len(batch.events) > limits.max_batch:
            raise RequestError(
                413, f"batch of {len(batch.events):,} events: the limit is {limits.max_batch:,}"
            )
        return await ingester.submit(batch.events)

    return api

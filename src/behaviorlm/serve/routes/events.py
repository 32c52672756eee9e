"""Event ingestion."""

# no `from __future__ import annotations`: FastAPI reads these annotations at run time, and
# they refer to the enclosing function's `limits`
from fastapi import APIRouter, Depends
from pydantic import Field

from behaviorlm.serve.deps import IngesterDep, reads_body_as, require_api_key
from behaviorlm.serve.schemas import BODY_ERRORS, EventBatch, EventsResponse, Problem, bounded
from behaviorlm.serve.settings import Limits


def router(limits: Limits) -> APIRouter:
    """``POST /v1/events``."""
    api = APIRouter(prefix="/v1", tags=["events"])
    batch_body = bounded(EventBatch, events=Field(max_length=limits.max_batch))  # beyond: 413

    @api.post(
        "/events",
        response_model=EventsResponse,
        dependencies=[Depends(require_api_key)],
        responses={
            **BODY_ERRORS,
            401: {"model": Problem, "description": "missing or wrong API key"},
            503: {
                "model": Problem,
                "description": "the event store cannot take events now, or too many posts "
                "are waiting (with Retry-After)",
            },
        },
    )
    @reads_body_as(batch=batch_body)
    async def post_events(batch: EventBatch, ingester: IngesterDep) -> EventsResponse:
        """Ingest a batch of events (external ids, the event schema).

        Each event is validated on its own; the response gives per event ``accepted``,
        ``duplicate`` (its ``event_id`` is already stored) or ``rejected`` with the reason.
        Accepted events are on disk before the response is sent; posts that arrive
        together share one transaction (group commit). An event on an item the model does
        not know is accepted, stored and counted, and ignored by the model until a retrain
        (its result carries a note).
        """
        return await ingester.submit(batch.events)

    return api

"""Recommendations for a user's live timeline or for a timeline in the request."""

# no `from __future__ import annotations`: FastAPI reads these annotations at run time, and
# they refer to the enclosing function's `limits`
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from behaviorlm.serve.deps import BatcherDep, reads_body_as
from behaviorlm.serve.schemas import (
    BODY_ERRORS,
    MAX_ID,
    Problem,
    Recommendations,
    TimelineRequest,
    bounded,
)
from behaviorlm.serve.service import RecommendRequest
from behaviorlm.serve.settings import Limits


def router(limits: Limits) -> APIRouter:
    """``GET /v1/users/{user_id}/recommendations`` and ``POST /v1/recommendations``."""
    api = APIRouter(prefix="/v1", tags=["recommendations"])
    errors: dict[int | str, dict[str, Any]] = {422: {"model": Problem}}
    # too many events: 413 (app.py)
    timeline = bounded(
        TimelineRequest, events=Field(max_length=limits.max_timeline), k=Field(le=limits.max_k)
    )

    @api.get(
        "/users/{user_id:path}/recommendations", response_model=Recommendations, responses=errors
    )
    async def user_recommendations(
        batcher: BatcherDep,
        user_id: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
        k: Annotated[int, Query(ge=1, le=limits.max_k)] = 10,
        exclude_seen: bool = True,
        action: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_ID,
                description="with exclude_seen, exclude only items the user did this action on "
                "(action=purchase: never recommend a bought item again, viewed ones may come)",
            ),
        ] = None,
    ) -> Recommendations:
        """Top-K from the user's timeline as it is now: the training history plus every
        accepted event (an event posted before this request is always included).

        A user unknown to the training data is scored on their posted events, or gets the
        most popular items when there are none.
        """
        request = RecommendRequest(user_id=user_id, k=k, exclude_seen=exclude_seen, action=action)
        return await batcher.submit(request)

    @api.post(
        "/recommendations",
        response_model=Recommendations,
        responses={**errors, **BODY_ERRORS},
    )
    @reads_body_as(request=timeline)
    async def timeline_recommendations(
        request: TimelineRequest, batcher: BatcherDep
    ) -> Recommendations:
        """Top-K for a timeline given in the request (anonymous or new users); nothing is
        stored. Events on unknown items are ignored and counted."""
        return await batcher.submit(
            RecommendRequest(
                events=tuple(request.events),
                k=request.k,
                exclude_seen=request.exclude_seen,
                action=request.action,
            )
        )

    return api

"""Explanations of a user's recommendations and the influence of a hypothetical event."""

# no `from __future__ import annotations`: FastAPI reads these annotations at run time, and
# they refer to the enclosing function's `limits`
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from behaviorlm.explain.shapley import SAMPLES
from behaviorlm.serve.deps import LaneDep, ServiceDep, reads_body_as, require_api_key
from behaviorlm.serve.schemas import (
    BODY_ERRORS,
    MAX_ID,
    ExplanationResponse,
    InfluenceRequest,
    InfluenceResponse,
    Problem,
    bounded,
)
from behaviorlm.serve.settings import Limits


def router(limits: Limits) -> APIRouter:
    """``GET /v1/users/{user_id}/explanation`` and ``POST /v1/influence``."""
    api = APIRouter(prefix="/v1", tags=["explanations"])
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": Problem, "description": "unknown item, or no event to explain"},
        422: {"model": Problem, "description": "bad request, or a model without explanations"},
    }

    @api.get(
        "/users/{user_id:path}/explanation", response_model=ExplanationResponse, responses=errors
    )
    async def explanation(
        service: ServiceDep,
        lane: LaneDep,
        user_id: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
        item: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_ID,
                description="the item whose score to explain; default: the top recommendation",
            ),
        ] = None,
        next_action: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_ID,
                description="explain the score of this next action instead of an item",
            ),
        ] = None,
        method: Annotated[
            Literal["occlusion", "ig", "integrated_gradients", "shapley", "attention"],
            Query(
                description="exact leave-one-out, integrated gradients, Shapley values, or "
                "attention weights"
            ),
        ] = "occlusion",
        steps: Annotated[
            int | None,
            Query(ge=1, le=limits.max_steps, description="integrated gradients steps (32)"),
        ] = None,
        samples: Annotated[
            int | None,
            Query(
                ge=1,
                le=limits.max_samples,
                description=f"Shapley: orders of the events sampled ({SAMPLES})",
            ),
        ] = None,
        without_target_events: Annotated[
            bool,
            Query(
                description="with item: set aside the user's own events on that item first, "
                "to explain why the user comes to it at all"
            ),
        ] = False,
    ) -> ExplanationResponse:
        """Why the model scores an item (or a next action) as it does for this user now.

        The timeline explained is the one recommendations read: the training history plus
        every accepted event (an event posted before this request is always included, and
        marked ``live``). ``occlusion`` gives each event's exact leave-one-out influence on
        the target's logit and probability; ``ig`` integrated gradients with a per-group
        split; ``shapley`` Shapley values of the events (permutation sampling, ``samples``
        orders; evidence several events share is split among them); ``attention`` the last
        layer's attention weights (a diagnostic, not an influence). Feature groups are also
        ablated one at a time. With ``without_target_events`` the user's own events on the
        target item are set aside first (listed in ``set_aside``). Needs a neural model.
        ``steps`` (ig) and ``samples`` (shapley) are refused with another method, as the
        command line refuses them.
        """
        return await lane.run(
            partial(
                service.explain_user,
                user_id,
                item,
                next_action=next_action,
                method=method,
                max_steps=limits.max_steps,
                steps=steps,
                samples=samples,
                max_events=limits.max_timeline,
                max_shapley_rows=limits.max_shapley_rows,
                without_target_events=without_target_events,
            )
        )

    @api.post(
        "/influence",
        response_model=InfluenceResponse,
        dependencies=[Depends(require_api_key)],
        responses={
            **errors,
            **BODY_ERRORS,
            401: {"model": Problem, "description": "missing or wrong API key"},
        },
    )
    @reads_body_as(
        request=bounded(
            InfluenceRequest, items=Field(max_length=limits.max_k), k=Field(le=limits.max_k)
        )
    )
    async def influence(
        request: InfluenceRequest, service: ServiceDep, lane: LaneDep
    ) -> InfluenceResponse:
        """What a hypothetical event would change (nothing is stored).

        The event is appended to the user's timeline as it is now; the response gives the
        KL divergence of the next-item distribution, the top-K lists before and after, and
        the probability change of the event's item and of any named ``items``. For a share
        or like (or ``reach: true``) it also gives each follower's uplift of the item (if
        they see it), the user's exposure rate (the chance that a follower sees it, learned
        from the training log) and the predicted reach, exposure times each uplift, held to
        [-1, 1], summed.
        Needs a neural model.
        """
        return await lane.run(partial(service.influence, request))

    return api

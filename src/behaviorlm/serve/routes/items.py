"""Item-to-item similarity."""

# no `from __future__ import annotations`: FastAPI reads these annotations at run time, and
# they refer to the enclosing function's `limits`
from typing import Annotated

from fastapi import APIRouter, Path, Query

from behaviorlm.serve.deps import ServiceDep
from behaviorlm.serve.schemas import MAX_ID, Problem, SimilarItems
from behaviorlm.serve.settings import Limits


def router(limits: Limits) -> APIRouter:
    """``GET /v1/items/{item_id}/similar``."""
    api = APIRouter(prefix="/v1", tags=["items"])

    @api.get(
        "/items/{item_id:path}/similar",
        response_model=SimilarItems,
        responses={404: {"model": Problem, "description": "unknown item"}},
    )
    def similar(
        service: ServiceDep,
        item_id: Annotated[str, Path(min_length=1, max_length=MAX_ID)],
        k: Annotated[int, Query(ge=1, le=limits.max_k)] = 10,
    ) -> SimilarItems:
        """The K items most similar to an item: cosine of the item embeddings for neural
        models, cosine of the items' user sets in the training data for the others."""
        return service.similar_items(item_id, k)

    return api

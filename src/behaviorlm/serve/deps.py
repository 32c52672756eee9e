"""Dependencies shared by the routes: the loaded service and the API key check."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

from behaviorlm.serve.batching import Batcher, Lane
from behaviorlm.serve.schemas import EventsResponse, Recommendations
from behaviorlm.serve.service import RecommendRequest, Service

#: Recommendation requests in, answers out (see :mod:`behaviorlm.serve.batching`).
RecommendBatcher = Batcher[RecommendRequest, Recommendations]
#: Event posts (each a list of raw events) in, per-post responses out: one transaction each.
IngestBatcher = Batcher[Sequence[Any], EventsResponse]

F = TypeVar("F", bound=Callable[..., Any])


def reads_body_as(**models: type[BaseModel]) -> Callable[[F], F]:
    """Let FastAPI read the named parameters as ``models`` (subclasses of their annotated
    types, made with the app's limits by :func:`behaviorlm.serve.schemas.bounded`): type
    checkers keep the annotation, FastAPI validates and documents the subclass.

    Examples
    --------
    >>> from behaviorlm.serve.schemas import TimelineRequest, bounded
    >>> from pydantic import Field
    >>> @reads_body_as(request=bounded(TimelineRequest, k=Field(le=5)))
    ... def route(request: TimelineRequest) -> int:
    ...     return request.k
    >>> route.__annotations__["request"].model_fields["k"].metadata[-1].le
    5
    """

    def wrap(func: F) -> F:
        func.__annotations__.update(models)
        return func

    return wrap


#: Header that carries the API key.
API_KEY_HEADER = "X-API-Key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="required by write endpoints when the server has an API key",
)


#: The answer to a request that lacks the configured key.
KEY_DETAIL = f"missing or wrong API key: send it in the {API_KEY_HEADER} header"


def key_matches(expected: bytes | None, sent: bytes | None) -> bool:
    """Whether ``sent``, the key header's bytes, is the configured key ``expected`` (compared
    in constant time); every request passes when the server has no key.

    Examples
    --------
    >>> key_matches(b"s3cret", b"s3cret"), key_matches(b"s3cret", None), key_matches(None, None)
    (True, False, True)
    """
    if expected is None:
        return True
    return sent is not None and hmac.compare_digest(sent, expected)


def _loaded(request: Request, name: str) -> Any:
    """``app.state.<name>``, set by the lifespan handler once the model is loaded; 503 before
    (and after shutdown)."""
    value = getattr(request.app.state, name, None)
    if value is None:
        raise HTTPException(503, "the model is not loaded yet; retry shortly")
    return value


async def get_service(request: Request) -> Service:
    """The service loaded by the lifespan handler; 503 while it is not loaded."""
    service: Service = _loaded(request, "service")
    return service


async def require_api_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    """401 unless the request carries the configured key (constant-time comparison);
    nothing is checked when the server has no key (it then listens on localhost only)."""
    # the server reads header bytes as latin-1: encoding back gives the bytes the client sent
    # (a key in UTF-8 matches the configured key's UTF-8 bytes)
    sent = None if key is None else key.encode("latin-1", "replace")
    if not key_matches(request.app.state.api_key, sent):
        raise HTTPException(401, KEY_DETAIL, headers={"WWW-Authenticate": "ApiKey"})


async def get_batcher(request: Request) -> RecommendBatcher:
    """The batcher of recommendation requests (started with the service); 503 before."""
    batcher: RecommendBatcher = _loaded(request, "batcher")
    return batcher


async def get_ingester(request: Request) -> IngestBatcher:
    """The batcher of event posts (group commit; started with the service); 503 before."""
    ingester: IngestBatcher = _loaded(request, "ingester")
    return ingester


#: A route parameter that receives the loaded service.
ServiceDep = Annotated[Service, Depends(get_service)]


async def get_lane(request: Request) -> Lane:
    """The lane of explanations and influence (started with the service); 503 before."""
    lane: Lane = _loaded(request, "lane")
    return lane


#: A route parameter that receives the recommendation batcher.
BatcherDep = Annotated[RecommendBatcher, Depends(get_batcher)]
#: A route parameter that receives the event-post batcher.
IngesterDep = Annotated[IngestBatcher, Depends(get_ingester)]
#: A route parameter that receives the lane of explanations and influence.
LaneDep = Annotated[Lane, Depends(get_lane)]

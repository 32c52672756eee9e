"""ASGI middleware: request metrics, the API key of the write routes, the request body
limit and JSON bodies only.

All are plain ASGI (no per-request task or body copy beyond the limit): the body limit
rejects a declared ``Content-Length`` over the limit before reading anything, and counts
the bytes of a streamed body, answering 413 as soon as they pass the limit.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from behaviorlm.serve.deps import API_KEY_HEADER, KEY_DETAIL, key_matches, require_api_key
from behaviorlm.serve.metrics import Metrics


class RequestMetrics:
    """Counts every HTTP request and times it, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless the app starts a response

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # the template as OpenAPI shows it: `{user_id}`, not `{user_id:path}`
            route = getattr(scope.get("route"), "path_format", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=route).observe(
                time.perf_counter() - start
            )


class BodyLimit:
    """Answers 413 to a request whose body is larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._reject(scope, receive, send, 400, "Content-Length is not a number")
                return
            if int(declared) > self.max_bytes:
                await self._reject(scope, receive, send, 413, self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for a disconnect

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body too large: the limit is {self.max_bytes:,} bytes"

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        _route(scope)  # counted under the route it was sent to
        await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON (``application/json`` or ``application/*+json``,
    any parameters).

    Examples
    --------
    >>> is_json("application/json; charset=utf-8"), is_json("application/problem+json")
    (True, True)
    >>> is_json("text/plain"), is_json("application/x-www-form-urlencoded")
    (False, False)
    """
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


class JsonBodies:
    """Answers 415 to a POST whose Content-Type is missing or not JSON: every request body of
    the API is JSON, and FastAPI would otherwise answer such a body with a validation error
    about dictionaries. Only a POST that a route takes is checked: one to an unknown path
    gets the router's 404, one to a path without POST its 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and _route(scope):
            declared = dict(scope.get("headers") or []).get(b"content-type")
            content_type = "" if declared is None else declared.decode("latin-1")
            if not is_json(content_type):
                got = f"got {content_type[:100]!r}" if declared is not None else "got none"
                detail = (
                    f"the request body must be JSON: send Content-Type: application/json ({got})"
                )
                response = JSONResponse({"detail": detail}, status_code=415)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ApiKeyGate:
    """Answers 401 to a request for a route that needs the API key (a route with the
    ``require_api_key`` dependency) when it lacks the key, before its body is read, limited
    or parsed: a client without the key learns nothing about the request schema. The
    dependency stays on the routes (the API's documentation names the key there)."""

    _HEADER = API_KEY_HEADER.lower().encode()

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route(scope) and _needs_key(scope["route"]):
            expected = getattr(scope["app"].state, "api_key", None)
            if not key_matches(expected, dict(scope.get("headers") or []).get(self._HEADER)):
                headers = {"WWW-Authenticate": "ApiKey"}
                response = JSONResponse({"detail": KEY_DETAIL}, status_code=401, headers=headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _needs_key(route: Any) -> bool:
    """Whether ``route`` has the ``require_api_key`` dependency."""
    return any(d.dependency is require_api_key for d in getattr(route, "dependencies", ()))


def _route(scope: Scope) -> bool:
    """Whether a route of the application (``scope["app"]``, set before the middleware runs)
    takes this request's path and method; if so it is put in ``scope["route"]``, as routing
    would, so that :class:`RequestMetrics` counts an answer given before routing under it."""
    router = getattr(scope.get("app"), "router", None)
    route = _matching(getattr(router, "routes", ()), scope)
    if route is None:
        return False
    scope["route"] = route
    return True


def _matching(routes: Any, scope: Scope) -> Any:
    """The route of ``routes`` that takes the request, looking into included routers (which
    match as a whole) for the route itself; None where none does."""
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            inner = getattr(route, "original_router", None)  # FastAPI's included router
            found = _matching(getattr(inner, "routes", ()), {**scope, **child})
            return found if found is not None else route
    return None

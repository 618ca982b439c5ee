"""HTTP plumbing shared by every app: request ids, timeouts, body-size limit, request metrics."""

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from starlette.routing import Match

from services.errors import PayloadTooLarge, problem
from services.logging import REQUEST_ID

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestId:
    """Every request gets an id: the caller's `X-Request-ID` if it is a sane token, else a new
    one. It is answered in the same header, stamped on log lines and kept in the audit trail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        # 32 random hex digits, as uuid4().hex gave, at a fifth of its cost.
        rid = given if _REQUEST_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = rid
        token = REQUEST_ID.set(rid)

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            REQUEST_ID.reset(token)


class RequestTimeout:
    """An answer not started within `seconds` becomes a 503 problem with Retry-After.

    The work already handed to a thread still finishes (and commits, if it gets that far);
    the client retries with the same event id, which answers the stored result."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = expired = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        # asyncio.timeout's own steps, without its context manager (6 µs a request;
        # docs/benchmarks.md, ninth pass). Not wait_for: that runs the request in a task of
        # its own, one more task per request for the event loop to schedule.
        timer = asyncio.get_running_loop().call_later(self.seconds, expire)
        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            # Ours only if nobody else asked to cancel the request (a server shutting down).
            if not expired or task.uncancel() > cancelling:
                raise
            if started:
                raise TimeoutError from None
            response = problem(
                503, "Request timed out", f"No answer within {self.seconds:g} s; retry with "
                "the same event id or Idempotency-Key.", code="timeout",
                instance=scope.get("path"), headers={"Retry-After": "1"})
            await response(scope, receive, send)
        else:
            if expired:  # finished as the timer fired: its cancellation is not for anyone
                task.uncancel()
        finally:
            timer.cancel()


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413 before the route reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, PayloadTooLarge.title, f"The request body exceeds {self.limit} bytes.",
            code=PayloadTooLarge.code, instance=scope.get("path"),
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class RequestMetrics:
    """Latency per route template (never per raw path, so label cardinality stays bounded)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.histogram = Histogram(
            "motcua_http_request_duration_seconds",
            "HTTP request latency by route template and status class.",
            ["method", "route", "status"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # Bounded as the labels are: route templates, methods, status classes.
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            key = (scope["method"], _route_template(scope), status // 100)
            if (child := self._children.get(key)) is None:
                # labels() takes a lock and checks its arguments every time: once per key here.
                child = self._children[key] = self.histogram.labels(key[0], key[1],
                                                                    f"{key[2]}xx")
            child.observe(time.perf_counter() - start)


def _route_template(scope: Scope) -> str:
    # The router records the route it matched; newer FastAPI wraps included routers in an
    # object without a path, so matching the top-level routes again finds no template.
    matched = scope.get("route")
    if getattr(matched, "path", None):
        return str(matched.path)  # type: ignore[union-attr]
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"

"""The HTTP plumbing every service's app sits behind (request ids, the time limit, the body
limit, the latency histogram), stacked as services.app stacks it, through a real ASGI client."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from services.errors import PROBLEM_JSON
from services.http import BodyLimit, RequestId, RequestMetrics, RequestTimeout
from services.logging import REQUEST_ID

LIMIT = 100


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body and answers its length and the request id it was given."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = f'{{"size": {size}, "rid": "{REQUEST_ID.get()}"}}'.encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def call(app: Any, method: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, "/v1/cases", **kwargs)

    return asyncio.run(go())


def edge(app: Any, registry: CollectorRegistry | None = None, seconds: float = 5.0) -> Any:
    """Outermost first, as services.app adds them."""
    metered = RequestMetrics(app, registry=registry or CollectorRegistry())
    return RequestId(RequestTimeout(BodyLimit(metered, limit=LIMIT), seconds=seconds))


def test_request_id_is_the_callers_sane_one_or_a_new_one() -> None:
    app = edge(echo)
    kept = call(app, "POST", content=b"x", headers={"X-Request-ID": "counter-7:abc"})
    assert kept.headers["x-request-id"] == "counter-7:abc" == kept.json()["rid"]
    made = call(app, "POST", content=b"x", headers={"X-Request-ID": "bad id"})
    assert made.headers["x-request-id"] != "bad id" and len(made.headers["x-request-id"]) == 32
    assert made.json()["rid"] == made.headers["x-request-id"]
    assert REQUEST_ID.get() == "-"  # reset after the request


def test_bodies_over_the_limit_are_413_declared_or_streamed() -> None:
    app = edge(echo)
    assert call(app, "POST", content=b"x" * LIMIT).json()["size"] == LIMIT
    declared = call(app, "POST", content=b"x" * (LIMIT + 1))
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the edge counts
        for _ in range(3):
            yield b"x" * 40

    streamed = call(app, "POST", content=chunks())
    for r in (declared, streamed):
        assert r.status_code == 413, r.text
        assert r.headers["content-type"] == PROBLEM_JSON
        assert r.json()["code"] == "payload_too_large"
        assert "x-request-id" in r.headers


def test_latency_is_recorded_by_method_route_and_status_class() -> None:
    registry = CollectorRegistry()
    app = edge(echo, registry)
    for _ in range(3):
        assert call(app, "POST", content=b"{}").status_code == 201
    text = generate_latest(registry).decode()
    assert ('motcua_http_request_duration_seconds_count{method="POST",route="unmatched",'
            'status="2xx"} 3.0') in text


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/v1/cases", "headers": []}


async def _nothing() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_a_request_cancelled_by_the_server_is_not_answered_as_timed_out() -> None:
    # A server shutting down cancels its requests: that must stay a cancellation, within the
    # time limit or not, never a 503 sent on the way out.
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    async def go(seconds: float) -> str:
        task = asyncio.create_task(RequestTimeout(slow, seconds=seconds)(_scope(), _nothing,
                                                                         send))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert asyncio.run(go(5.0)) == "cancelled"
    assert sent == []


def test_an_answer_started_but_not_finished_in_time_is_cut_not_answered_twice() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def stalls(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await asyncio.sleep(5)

    async def go() -> str:
        try:
            await RequestTimeout(stalls, seconds=0.05)(_scope(), _nothing, send)
        except TimeoutError:
            return "timed out"
        return "finished"

    assert asyncio.run(go()) == "timed out"
    assert [m["type"] for m in sent] == ["http.response.start"]
    # The timer is gone with the request: a request finished in time is not cancelled later.
    assert asyncio.run(_finishes_in_time()) == 201


async def _finishes_in_time() -> int:
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await RequestTimeout(echo, seconds=0.05)(_scope(), _nothing, send)
    await asyncio.sleep(0.1)  # past the limit: nothing may cancel this task now
    return statuses[0]

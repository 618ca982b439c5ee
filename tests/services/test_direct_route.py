"""DirectRoute (services.direct_route): a usual request is served without FastAPI's dependency
solving, and every request, usual or not, is answered exactly as FastAPI answers it."""

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from services.direct_route import DirectRoute, plan
from services.errors import Forbidden, install_error_handlers
from services.http import BodyLimit


class Body(BaseModel):
    name: str = Field(min_length=1)
    count: int = 0


Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=8)]


def _app(route_class: type[APIRoute], calls: list[str]) -> FastAPI:
    async def who(request: Request) -> str:
        calls.append("who")
        token = request.headers.get("authorization")
        if token != "Bearer good":
            raise Forbidden("no")
        return "counter-1"

    async def router_check(*, request: Request) -> None:
        calls.append("router_check")
        assert request.method == "POST" or request.url.path == "/v1/plain"

    router = APIRouter(route_class=route_class, dependencies=[Depends(router_check)])

    @router.post("/things/{code}", status_code=201)
    async def make(code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")], body: Body,
                   caller: Annotated[str, Depends(who)], request: Request,
                   key: Key = None) -> Response:
        calls.append("make")
        return Response(f"{code} {body.name} {body.count} {caller} {key} {request.method}",
                        status_code=201)

    @router.get("/plain")
    async def plain(q: int = 0) -> dict[str, int]:
        return {"q": q}

    app = FastAPI()
    app.state.who = who
    install_error_handlers(app)
    app.include_router(router, prefix="/v1")
    return app


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The requests (method and path) whose dependencies FastAPI solved."""
    count: list[str] = []
    original = fastapi_routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:
        request = kwargs["request"]
        count.append(f"{request.method} {request.url.path}")
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counted)
    yield count


GOOD = {"authorization": "Bearer good", "content-type": "application/json"}
REQUESTS: list[tuple[str, dict[str, str], bytes]] = [
    ("/v1/things/AB", GOOD, b'{"name": "x\xc3\xa1", "count": 3}'),
    ("/v1/things/AB", {**GOOD, "idempotency-key": "k1"}, b'{"name": "x"}'),
    ("/v1/things/AB", {**GOOD, "content-type": "application/json; charset=utf-8"},
     b'{"name": "x"}'),
    # Each of these is FastAPI's to answer.
    ("/v1/things/AB", {**GOOD, "idempotency-key": "much-too-long"}, b'{"name": "x"}'),
    ("/v1/things/ab", GOOD, b'{"name": "x"}'),
    ("/v1/things/AB", GOOD, b'{"name": ""}'),
    ("/v1/things/AB", GOOD, b'{"name": "x", "count": "many"}'),
    ("/v1/things/AB", GOOD, b'{"name": "x",'),
    ("/v1/things/AB", GOOD, b'{"name": "x", "count": NaN}'),
    ("/v1/things/AB", GOOD, b""),
    ("/v1/things/AB", GOOD, b"[1, 2]"),
    ("/v1/things/AB", {"authorization": "Bearer good"}, b'{"name": "x"}'),
    ("/v1/things/AB", {**GOOD, "content-type": "text/plain"}, b'{"name": "x"}'),
    ("/v1/things/AB", {**GOOD, "content-type": "application/problem+json"}, b'{"name": "x"}'),
    ("/v1/things/AB", {**GOOD, "authorization": "Bearer bad"}, b'{"name": "x"}'),
    ("/v1/things/AB", {**GOOD, "authorization": "Bearer bad"}, b'{"name": ""}'),
]


@pytest.mark.parametrize(("path", "headers", "body"), REQUESTS)
def test_every_request_is_answered_as_fastapi_answers_it(
        path: str, headers: dict[str, str], body: bytes) -> None:
    answers = []
    for route_class in (APIRoute, DirectRoute):
        calls: list[str] = []
        with TestClient(_app(route_class, calls)) as client:
            r = client.post(path, headers=headers, content=body)
        answers.append((r.status_code, r.headers.get("content-type"), r.content, calls))
    assert answers[1] == answers[0]


@pytest.mark.parametrize("chunks", [2, 5])
def test_a_streamed_body_is_read_and_refused_as_fastapi_does(chunks: int) -> None:
    # No Content-Length: the edge's limit (120 bytes here) counts the chunks as they come.
    def body() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(chunks):
            yield b"x" * 30
        yield b'"}'

    answers = []
    for route_class in (APIRoute, DirectRoute):
        calls: list[str] = []
        app = _app(route_class, calls)
        app.add_middleware(BodyLimit, limit=120)
        with TestClient(app) as client:
            r = client.post("/v1/things/AB", headers=GOOD, content=body())
        answers.append((r.status_code, r.content, calls))
    assert answers[1] == answers[0]
    assert answers[0][0] == (201 if chunks == 2 else 400)


def test_the_usual_request_skips_dependency_solving(solved: list[str]) -> None:
    calls: list[str] = []
    with TestClient(_app(DirectRoute, calls)) as client:
        r = client.post("/v1/things/AB", headers={**GOOD, "idempotency-key": "k1"},
                        content=b'{"name": "Hu\xe1\xbb\xb3nh"}')
        assert (r.status_code, r.text) == (201, "AB Huỳnh 0 counter-1 k1 POST")
        assert calls == ["router_check", "who", "make"]
        assert solved == []
        # A request FastAPI must answer runs each dependency once, there.
        calls.clear()
        r = client.post("/v1/things/AB", headers=GOOD, content=b'{"name": ""}')
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "name"
        assert calls == ["router_check", "who"] and solved == ["POST /v1/things/AB"]
        # A route outside the plan's reach is FastAPI's.
        assert client.get("/v1/plain?q=3").json() == {"q": 3}
        assert solved == ["POST /v1/things/AB", "GET /v1/plain"]


def _stand_in(calls: list[str]) -> Any:
    async def stand_in() -> str:
        calls.append("stand_in")
        return "tester"

    return stand_in


def test_overridden_dependencies_are_fastapis_to_run(solved: list[str]) -> None:
    answers = []
    for route_class in (APIRoute, DirectRoute):
        calls: list[str] = []
        app = _app(route_class, calls)
        app.dependency_overrides[app.state.who] = _stand_in(calls)
        with TestClient(app) as client:
            r = client.post("/v1/things/AB", headers=GOOD, content=b'{"name": "x"}')
        answers.append((r.status_code, r.text, calls))
    assert answers[1] == answers[0] == (201, "AB x 0 tester None POST",
                                        ["router_check", "stand_in", "make"])
    assert solved == ["POST /v1/things/AB"] * 2


def test_the_openapi_document_is_fastapis() -> None:
    documents = [_app(route_class, []).openapi() for route_class in (APIRoute, DirectRoute)]
    assert documents[1] == documents[0]


def test_routes_outside_the_plan_get_none() -> None:
    app = FastAPI()

    async def nested(who: Annotated[str, Depends(lambda: "x")]) -> str:
        return who

    @app.post("/a")
    async def returns_a_model(body: Body) -> Body:
        return body

    @app.post("/b")
    async def with_query(body: Body, q: int = 0) -> Response:
        return Response()

    @app.post("/c")
    async def with_nested(body: Body, who: Annotated[str, Depends(nested)]) -> Response:
        return Response()

    @app.post("/d")
    async def with_header_list(body: Body, x_thing: Annotated[list[str], Header()]) -> Response:
        return Response()

    @app.post("/e")
    async def fine(body: Body, request: Request) -> Response:
        return Response()

    plans = {r.path: plan(r) for r in app.routes if isinstance(r, APIRoute)}
    assert plans["/a"] is None and plans["/b"] is None and plans["/c"] is None
    assert plans["/d"] is None
    assert plans["/e"] is not None and plans["/e"].request_name == "request"


def test_intakes_write_routes_skip_dependency_solving(solved: list[str],
                                                     embedded_stack: Any) -> None:
    stack = embedded_stack
    r = stack.client.post("/v1/cases", json={"agency_code": "000.00.20.H56",
                                              "procedure_code": "2.000488",
                                              "channel": "counter"})
    assert r.status_code == 201, r.text
    code = r.json()["case_code"]
    r = stack.client.post(f"/v1/cases/{code}/events",
                          json={"type": "transferred", "from_office": "000.00.20.H56",
                                "to_office": "000.00.03.H56", "method": "electronic"})
    assert r.status_code == 201, r.text
    r = stack.client.post("/v1/events:batch", json={"events": [
        {"case_code": code, "type": "transferred", "from_office": "000.00.03.H56",
         "to_office": "000.00.20.H56", "method": "paper"}]})
    assert r.status_code == 200, r.text
    assert not [s for s in solved if s.startswith("POST")], solved
    # Unauthenticated: the same 401 problem as through FastAPI's solving.
    r = stack.client.post("/v1/cases", auth=None, json={"agency_code": "000.00.20.H56",
                                                         "procedure_code": "2.000488",
                                                         "channel": "counter"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 401

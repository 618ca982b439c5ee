"""Who may call what: one FastAPI dependency per decision, on every route.

Every route declares a decision, either `public` or `allow(kinds…)` (possibly with a scope
check). `unguarded_routes` lists the routes that declare none; the app factory refuses to start
with any, so a new endpoint cannot ship open by omission.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.errors import Forbidden
from services.logging import CLIENT_ID
from services.security.guard import Security
from services.security.scopes import kpi_scope_allowed
from services.security.tokens import Kind, Principal

POLICY = "__motcua_policy__"
# The scheme the OpenAPI document declares on every guarded operation (and the docs' Authorize
# button), by `document_bearer`; the header is read and checked by `allow` itself, so a missing
# one is our 401 problem.
BEARER_SCHEME: dict[str, Any] = {"type": "http", "scheme": "bearer",
                                 "description": "An access token from POST /v1/auth/token."}


def security_of(request: Request) -> Security:
    found: Security = request.app.state.security
    return found


def _mark(fn: Callable[..., Any], decision: object) -> Callable[..., Any]:
    setattr(fn, POLICY, decision)
    return fn


def allow(*kinds: Kind) -> Callable[..., Awaitable[Principal]]:
    """Any valid, unrevoked token of one of `kinds`; 401 without one, 403 for another kind."""

    async def authorised(request: Request) -> Principal:
        security = security_of(request)
        principal = security.authenticate(request.headers.get("authorization"))
        CLIENT_ID.set(principal.client_id)
        request.state.principal = principal
        if principal.kind not in kinds:
            security.refuse(403, "kind")
            raise Forbidden(f"This client ({principal.describe()}) may not call this endpoint; "
                            f"it is for {' or '.join(kinds)} clients.", allowed_kinds=list(kinds))
        return principal

    return _mark(authorised, tuple(kinds))


async def _public() -> None:
    return None


public = _mark(_public, "public")


async def _kpi_reader(request: Request, principal: Annotated[Principal, Depends(
        allow("portal", "admin"))]) -> Principal:
    scope = request.query_params.get("scope", "all")
    if not kpi_scope_allowed(principal, scope):
        security_of(request).refuse(403, "scope")
        yours = f"province:{principal.province}" if principal.province else "all"
        raise Forbidden(f"This client ({principal.describe()}) may not read scope {scope!r}; "
                        f"its scope is {yours} and what lies in it.", scope=scope)
    return principal


# Shared instances: FastAPI runs a dependency object once per request however often it is used.
COUNTER = allow("counter")
ADMIN = allow("admin")
CASE_READER = allow("counter", "admin")
ANY_CLIENT = allow("counter", "portal", "admin")
KPI_READER = _mark(_kpi_reader, ("portal", "admin", "kpi-scope"))

CounterDep = Annotated[Principal, Depends(COUNTER)]
AdminDep = Annotated[Principal, Depends(ADMIN)]
CaseReaderDep = Annotated[Principal, Depends(CASE_READER)]
AnyClientDep = Annotated[Principal, Depends(ANY_CLIENT)]
KpiReaderDep = Annotated[Principal, Depends(KPI_READER)]


@dataclass(frozen=True)
class Endpoint:
    methods: frozenset[str]
    path: str
    dependant: Dependant | None


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every API route the app serves, with its dependencies as the router applies them.

    FastAPI keeps an included router's routes behind an object of its own, whose "effective"
    routes carry the router-level dependencies too; routes added on the app itself are plain."""
    found = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        candidates = list(contexts()) if contexts is not None else [route]
        for c in candidates:
            original = getattr(c, "original_route", c)
            if isinstance(original, APIRoute):
                found.append(Endpoint(frozenset(getattr(c, "methods", None) or ()),
                                      str(getattr(c, "path", original.path)),
                                      getattr(c, "dependant", None) or original.dependant))
    return found


def decision(endpoint: Endpoint) -> object | None:
    """The decision a route declares (the first found in its dependency tree), or None."""

    def walk(dependant: Dependant) -> object | None:
        for sub in dependant.dependencies:
            found = getattr(sub.call, POLICY, None)
            if found is not None:
                return found
            if (deeper := walk(sub)) is not None:
                return deeper
        return None

    return walk(endpoint.dependant) if endpoint.dependant is not None else None


def unguarded_routes(app: FastAPI) -> list[str]:
    return [f"{sorted(e.methods)} {e.path}" for e in endpoints(app) if decision(e) is None]


def document_bearer(app: FastAPI) -> None:
    """The bearer scheme in the OpenAPI document, on every operation a decision guards, as
    FastAPI would write it for a security dependency. Not one: FastAPI solves a route's
    dependencies in Python on every request, and the scheme's, which only parsed the header
    `allow` reads anyway, cost 14 µs of a request's 160 in intake (docs/benchmarks.md)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        guarded = [(method.lower(), e.path) for e in endpoints(app)
                   if decision(e) not in (None, "public") for method in e.methods]
        operations = schema.get("paths", {})
        for method, path in guarded:
            operation = operations.get(path, {}).get(method)
            if operation is not None:
                operation["security"] = [{"bearer": []}]
        if guarded:
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["bearer"] = dict(BEARER_SCHEME)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

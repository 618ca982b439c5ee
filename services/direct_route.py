"""A route that serves the usual request without FastAPI's per-request dependency solving.

FastAPI works out a route's arguments on every request by walking its dependency tree in
Python: intake's write routes spent 35-60 µs of a request's 320 there (docs/benchmarks.md,
tenth pass), more than the bare framework's whole request. `DirectRoute` plans, once, how to
fill a simple route's arguments: a JSON body that is one model, headers named by an explicit
alias, path parameters, and dependencies that take nothing but the request. A request it can
fill exactly is served with the same validators FastAPI would run; any other (no JSON content
type, a streamed body, a body orjson cannot parse, a value that fails validation, a header
missing that has no default) goes to FastAPI's own handler, which answers it as it always
has. A route using anything outside that plan is FastAPI's alone. The OpenAPI document is
FastAPI's either way.
"""

import contextvars
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import routing
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_JSON = "application/json"


@dataclass(frozen=True)
class _Param:
    name: str  # the endpoint's keyword
    key: str  # the header's or path parameter's name in the request
    field: Any  # FastAPI's ModelField: its validate() is what FastAPI runs
    required: bool = True


@dataclass(frozen=True)
class _Dependency:
    name: str | None  # None: a router's dependency, run for its checks only
    call: Callable[..., Awaitable[Any]]
    request_name: str | None  # its parameter taking the request, if any


@dataclass(frozen=True)
class Plan:
    """How to fill one route's arguments from a request, or find that FastAPI must."""

    call: Callable[..., Awaitable[Response]]
    request_name: str | None
    body: _Param | None
    headers: tuple[_Param, ...]
    path: tuple[_Param, ...]
    dependencies: tuple[_Dependency, ...]

    async def arguments(self, request: Request) -> dict[str, Any] | None:
        """The endpoint's arguments but the dependencies', or None for FastAPI to answer."""
        values: dict[str, Any] = {}
        headers = request.headers
        for p in self.headers:
            raw = headers.get(p.key)
            if raw is None:
                if p.required:
                    return None
                values[p.name] = p.field.get_default()
                continue
            value, errors = p.field.validate(raw, {}, loc=("header", p.key))
            if errors:
                return None
            values[p.name] = value
        for p in self.path:
            value, errors = p.field.validate(request.path_params.get(p.key), {},
                                             loc=("path", p.key))
            if errors:
                return None
            values[p.name] = value
        if self.body is not None:
            kind = headers.get("content-type", "")
            if kind != _JSON and not kind.startswith(_JSON + ";"):
                return None
            if "content-length" not in headers:
                return None  # streamed: read, limited and refused as FastAPI does
            try:
                raw_body = await request.body()
            except Exception:
                return None  # gone or refused mid-body: FastAPI's reading answers it again
            try:
                # orjson accepts a subset of what the json module does, and parses it alike.
                parsed = orjson.loads(raw_body)
            except orjson.JSONDecodeError:
                return None
            value, errors = self.body.field.validate(parsed, {}, loc=("body",))
            if errors:
                return None
            values[self.body.name] = value
        if self.request_name is not None:
            values[self.request_name] = request
        return values


# What a route or a dependency may take that no plan fills: FastAPI's alone.
_UNPLANNED = ("query_params", "cookie_params", "websocket_param_name",
              "http_connection_param_name", "response_param_name",
              "background_tasks_param_name", "security_scopes_param_name")


def _outside_plan(dependant: Any) -> bool:
    return any(getattr(dependant, name) for name in _UNPLANNED)


def plan(route: APIRoute) -> Plan | None:
    """The route's plan, or None if FastAPI must fill its arguments every time."""
    dependant = route.dependant
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        return None
    returns = inspect.signature(call, eval_str=True).return_annotation
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        return None  # FastAPI would validate and serialise what it returns
    if _outside_plan(dependant):
        return None
    body = None
    if dependant.body_params:
        field = route.body_field
        annotation = getattr(getattr(field, "field_info", None), "annotation", None)
        if (len(dependant.body_params) != 1 or route._embed_body_fields
                or not (inspect.isclass(annotation) and issubclass(annotation, BaseModel))):
            return None
        body = _Param(dependant.body_params[0].name, "", field)
    headers = []
    for field in dependant.header_params:
        # Only a header named outright (Header(alias=…)): FastAPI's conversions of a
        # parameter's name, alias choices and lists are its own.
        alias = field.alias
        if (alias == field.name or field.field_info.validation_alias not in (None, alias)
                or field.config or field.field_info.annotation not in (str, str | None)):
            return None
        headers.append(_Param(field.name, alias, field, field.field_info.is_required()))
    path = tuple(_Param(f.name, f.name, f) for f in dependant.path_params)
    dependencies = []
    for sub in dependant.dependencies:
        if (sub.call is None or not inspect.iscoroutinefunction(sub.call) or sub.dependencies
                or sub.path_params or sub.header_params or sub.body_params
                or _outside_plan(sub)):
            return None
        dependencies.append(_Dependency(sub.name, sub.call, sub.request_param_name))
    if len({id(d.call) for d in dependencies}) != len(dependencies):
        return None  # FastAPI runs a dependency used twice once, and passes its value twice
    return Plan(call, dependant.request_param_name, body, tuple(headers), path,
                tuple(dependencies))


def _effective(route: APIRoute) -> APIRoute:
    """The route as an including router sees it (its dependencies added): FastAPI builds an
    included route's handler with that context set."""
    var: contextvars.ContextVar[Any] | None = getattr(routing, "_effective_route_context_var",
                                                       None)
    context = var.get() if var is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return route


class DirectRoute(APIRoute):
    """An APIRoute serving the usual request by its plan (module docstring)."""

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        route = _effective(self)
        found = plan(route)
        if found is None:
            return standard
        arguments, dependencies, endpoint = found.arguments, found.dependencies, found.call
        # The app: dependencies overridden there (app.dependency_overrides) are FastAPI's to run.
        provider = route.dependency_overrides_provider

        async def direct(request: Request) -> Response:
            if getattr(provider, "dependency_overrides", None):
                return await standard(request)
            values = await arguments(request)
            if values is None:
                return await standard(request)
            # In declaration order, as FastAPI runs them; after the checks above, which have
            # no effects, so a request FastAPI answers never ran one twice.
            for dep in dependencies:
                value = await (dep.call(**{dep.request_name: request})
                               if dep.request_name is not None else dep.call())
                if dep.name is not None:
                    values[dep.name] = value
            return await endpoint(**values)

        return direct

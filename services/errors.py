"""Errors with stable codes, and their RFC 9457 problem+json rendering."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class MotcuaError(Exception):
    """Base of every domain error: `code` is stable, `retriable` says whether to try again."""

    status = 400
    code = "bad_request"
    title = "Bad request"
    retriable = False

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra


class ValidationFailed(MotcuaError):
    status = 422
    code = "validation_failed"
    title = "Request is not valid"


class Unauthorized(MotcuaError):
    """No credentials, or credentials that are not (or no longer) valid."""

    status = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str, *, error: str | None = None, **extra: Any):
        # RFC 6750: tell the client how to authenticate, and why a token was refused.
        challenge = 'Bearer realm="motcua"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge}, error=error, **extra)


class Forbidden(MotcuaError):
    """Authenticated, but this client's kind or scope does not cover the request."""

    status = 403
    code = "forbidden"
    title = "Outside this client's scope"


class TooManyRequests(MotcuaError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"
    retriable = True

    def __init__(self, detail: str, *, retry_after: int, **extra: Any):
        super().__init__(detail, headers={"Retry-After": str(retry_after)},
                         retry_after=retry_after, **extra)


class NotFound(MotcuaError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(MotcuaError):
    status = 409
    code = "conflict"
    title = "Conflict with the current state"


class PayloadTooLarge(MotcuaError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class Unavailable(MotcuaError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"
    retriable = True

    def __init__(self, detail: str, **kwargs: Any) -> None:
        # A database restart or a stopping process: worth trying again in a moment.
        kwargs.setdefault("headers", {"Retry-After": "1"})
        super().__init__(detail, **kwargs)


def problem(
    status: int, title: str, detail: str, *, code: str, instance: str | None = None,
    headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://motcua.vn/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        out.append(
            {
                "field": ".".join(loc) or str(err.get("loc", ("body",))[0]),
                "rule": err.get("type", "invalid"),
                "message": err.get("msg", "invalid"),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MotcuaError)
    async def _motcua(request: Request, exc: MotcuaError) -> JSONResponse:
        return problem(
            exc.status, exc.title, exc.detail, code=exc.code, instance=request.url.path,
            errors=exc.errors, headers=exc.headers, **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        fields = ", ".join(e["field"] for e in errors)
        return problem(
            422, ValidationFailed.title, f"Invalid field(s): {fields}", code=ValidationFailed.code,
            instance=request.url.path, errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(
            exc.status_code, title, str(exc.detail), code=f"http_{exc.status_code}",
            instance=request.url.path,
        )

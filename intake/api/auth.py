"""The token endpoint: OAuth 2.0 client credentials (RFC 6749 section 4.4).

The client authenticates with HTTP Basic (`client_id:client_secret`), or with `client_id` and
`client_secret` in the body, and asks for `grant_type=client_credentials`; the answer is a
short-lived bearer token. Errors are problem+json carrying the RFC 6749 `error` code too.
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from intake import clients
from intake.audit import Actor, Note
from intake.uow import IntakeDep
from services.errors import MotcuaError, Unauthorized
from services.security.policy import public, security_of

router = APIRouter(prefix="/v1/auth", tags=["auth"])
FORM = "application/x-www-form-urlencoded"
_FIELD = {"type": "string", "maxLength": 512}
_BODY = {"type": "object", "required": ["grant_type"], "properties": {
    "grant_type": {"type": "string", "enum": ["client_credentials"]},
    "client_id": _FIELD, "client_secret": _FIELD}}


class BadTokenRequest(MotcuaError):
    status = 400
    code = "invalid_request"
    title = "Bad token request"


@router.post(
    "/token", dependencies=[Depends(public)],
    summary="Exchange a client id and secret for a bearer token (client credentials)",
    responses={s: {"content": {"application/problem+json": {}}} for s in (400, 401, 429)},
    openapi_extra={"requestBody": {"required": True, "content": {
        FORM: {"schema": _BODY}, "application/json": {"schema": _BODY}}}},
)
async def issue_token(request: Request, intake: IntakeDep) -> JSONResponse:
    security = security_of(request)
    # Guessing secrets costs a request each, per address.
    security.limit(f"ip:{request.client.host if request.client else '-'}")
    form = await _form(request)
    if form.get("grant_type") != "client_credentials":
        raise BadTokenRequest("grant_type must be client_credentials.",
                              error="unsupported_grant_type")
    client_id, secret = _credentials(request.headers.get("authorization"), form)
    try:
        client = await intake.read(clients.authenticate_client, client_id=client_id,
                                   secret=secret)
    except Unauthorized:
        security.refuse(401, "invalid_client")
        raise
    token, ttl = security.tokens.issue(client_id=client.client_id, kind=client.kind,
                                       agency=client.agency_code,
                                       province=client.province_code)
    actor = Actor(client_id=client.client_id, kind=client.kind,
                  request_id=str(getattr(request.state, "request_id", "-")),
                  client_ip=request.client.host if request.client else None)
    await intake.audit(Note(actor, "token.issued"), status=200)
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                            "client_id": client.client_id, "kind": client.kind,
                            "agency_code": client.agency_code,
                            "province_code": client.province_code,
                            "issued_at": datetime.now(UTC).isoformat()}
    # RFC 6749 5.1: a token answer is never cached.
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    try:
        if media == FORM:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            return {k: v for k, v in pairs}
        if media in ("application/json", ""):
            parsed = orjson.loads(raw) if raw else {}
            if isinstance(parsed, dict):
                return {str(k): str(v) for k, v in parsed.items() if isinstance(v, str)}
    except (UnicodeDecodeError, orjson.JSONDecodeError, ValueError):
        pass
    raise BadTokenRequest(f"The body must be {FORM} (or a JSON object) with grant_type.",
                          error="invalid_request")


def _credentials(authorization: str | None, form: dict[str, str]) -> tuple[str, str]:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise Unauthorized("Malformed Basic credentials.", error="invalid_client")
        return client_id, secret
    given_id, given_secret = form.get("client_id"), form.get("client_secret")
    if not given_id or not given_secret:
        raise Unauthorized("Give the client id and secret (HTTP Basic, or client_id and "
                           "client_secret in the body).", error="invalid_client")
    return given_id, given_secret

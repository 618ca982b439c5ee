"""The client registry: who may call the API, as what, for which agency or province.

A client has an id and a secret (shown once, stored as a scrypt hash), a kind and a scope:
- counter: writes cases for `agency_code` and every unit under it (national: every agency);
- portal: reads KPIs for `province_code` and what lies in it (national: everything);
- admin: manages the catalogue and the clients, reads cases and the audit trail.
Revoking a client is final; it is published on the clients topic, so every process refuses
the client's unexpired tokens too.
"""

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlmodel import Session, col

from contracts import CLIENTS_TOPIC, ClientRevoked, new_envelope
from contracts.types import AgencyCode, Text
from intake.models import OUTBOX, Client
from registry.catalogue import Catalogue
from services.errors import NotFound, Unauthorized, ValidationFailed

# scrypt at 16 MiB and ~50 ms: cheap once per token, expensive per guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200, description="Who this is, for people.")
    kind: Literal["counter", "portal", "admin"]
    agency_code: AgencyCode | None = Field(
        default=None, description="counter: the agency it writes for (and the units under it).")
    province_code: str | None = Field(
        default=None, pattern=r"^[A-Z][0-9]{2}$",
        description="portal: the province whose KPIs it reads.")
    national: bool = Field(
        default=False, description="counter or portal with no agency or province: every one. "
        "Must be said explicitly.")

    @model_validator(mode="after")
    def _scope_fits_kind(self) -> "ClientCreate":
        problems = []
        if self.kind == "counter" and (self.agency_code is None) == (not self.national):
            problems.append(("agency_code", "required_for_counter",
                             "a counter needs agency_code, or national: true (not both)"))
        if self.kind == "portal" and (self.province_code is None) == (not self.national):
            problems.append(("province_code", "required_for_portal",
                             "a portal needs province_code, or national: true (not both)"))
        if self.kind != "counter" and self.agency_code is not None:
            problems.append(("agency_code", "counter_only", "only a counter has an agency"))
        if self.kind != "portal" and self.province_code is not None:
            problems.append(("province_code", "portal_only", "only a portal has a province"))
        if self.kind == "admin" and self.national:
            problems.append(("national", "not_for_admin", "an administrator has no scope"))
        if problems:
            raise ValidationFailed(
                "; ".join(m for _, _, m in problems),
                errors=[{"field": f, "rule": r, "message": m} for f, r, m in problems])
        return self


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def secret_matches(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        again = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), n=int(n),
                               r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, base64.b64decode(digest))


@cache
def _decoy() -> str:
    # An unknown client id costs the same scrypt as a known one: no timing oracle for ids.
    return hash_secret(secrets.token_urlsafe(16))


def public(client: Client) -> dict[str, Any]:
    """What may be shown about a client: everything but the secret's hash."""
    return {
        "client_id": client.client_id, "name": client.name, "kind": client.kind,
        "agency_code": client.agency_code, "province_code": client.province_code,
        "national": client.kind in ("counter", "portal")
        and client.agency_code is None and client.province_code is None,
        "created_at": client.created_at, "created_by": client.created_by,
        "revoked_at": client.revoked_at, "revoked_by": client.revoked_by,
        "active": client.revoked_at is None,
    }


def create_client(
    *, session: Session, data: ClientCreate, catalogue: Catalogue, created_by: str,
    now: datetime, client_id: str | None = None,
) -> tuple[dict[str, Any], str]:
    """(the client, its secret). The secret is not stored and cannot be shown again."""
    if data.agency_code is not None and data.agency_code not in catalogue.agency_history:
        raise _invalid("agency_code", "registered", f"agency {data.agency_code} is not in "
                       "the registry")
    if data.province_code is not None and data.province_code not in {
            a.province for a in catalogue.agencies.values()}:
        raise _invalid("province_code", "registered", f"no agency of province "
                       f"{data.province_code} is in the registry")
    client_id = client_id or f"{data.kind}-{secrets.token_hex(6)}"
    if not CLIENT_ID.match(client_id):
        raise _invalid("client_id", "format", "3-64 lowercase letters, digits or -")
    if session.get(Client, client_id) is not None:
        raise _invalid("client_id", "unique", f"client {client_id} exists")
    secret = secrets.token_urlsafe(32)
    client = Client(client_id=client_id, name=data.name, kind=data.kind,
                    agency_code=data.agency_code, province_code=data.province_code,
                    secret_hash=hash_secret(secret), created_at=now, created_by=created_by)
    session.add(client)
    session.flush()
    return public(client), secret


def list_clients(*, session: Session, include_revoked: bool = True) -> list[dict[str, Any]]:
    query = select(Client).order_by(col(Client.created_at), col(Client.client_id))
    if not include_revoked:
        query = query.where(col(Client.revoked_at).is_(None))
    return [public(c) for c in session.execute(query).scalars()]


def count_clients(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Client)).scalar_one())


def revoke_client(
    *, session: Session, client_id: str, revoked_by: str, now: datetime, source: str,
) -> tuple[dict[str, Any], bool]:
    """Revoke (once; again is a no-op) and publish it for every process of every service."""
    client = session.get(Client, client_id, with_for_update=True)
    if client is None:
        raise NotFound(f"client {client_id} does not exist")
    if client.revoked_at is not None:
        return public(client), False
    client.revoked_at = now
    client.revoked_by = revoked_by
    OUTBOX.add(session, CLIENTS_TOPIC, [new_envelope(
        ClientRevoked(client_id=client_id, revoked_at=now), source=source, time=now)])
    session.flush()
    return public(client), True


def authenticate_client(*, session: Session, client_id: str, secret: str) -> Client:
    """The client whose id and secret these are, or 401 invalid_client (same for every
    reason, so the answer does not tell which part was wrong)."""
    client = session.get(Client, client_id) if CLIENT_ID.match(client_id) else None
    stored = client.secret_hash if client is not None else _decoy()
    good = secret_matches(secret, stored)
    if client is None or not good or client.revoked_at is not None:
        raise Unauthorized("Unknown client, wrong secret, or revoked client.",
                           error="invalid_client")
    return client


def _invalid(field: str, rule: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": field, "rule": rule, "message": message}])

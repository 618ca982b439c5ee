"""Real clients for a test stack: created in intake's registry, tokens from POST /v1/auth/token,
plus the tokens no client should get through (expired, revoked, tampered)."""

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from services.security import Tokens
from tests.harness import Stack

CENTRE_H56 = "000.00.20.H56"  # counter A: Thanh Hóa's service centre
CENTRE_H05 = "000.00.20.H05"  # counter B: Bắc Ninh's, another province
KINDS = ("none", "counter_a", "counter_b", "portal", "admin", "expired", "revoked", "tampered")


def admin_headers(stack: Stack) -> dict[str, str]:
    return stack.client.auth.headers("admin")  # type: ignore[union-attr]


def create(stack: Stack, **body: Any) -> dict[str, Any]:
    r = stack.client.post("/v1/admin/clients", json={"name": "test", **body},
                          headers=admin_headers(stack))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def token_of(client: TestClient, client_id: str, secret: str) -> str:
    r = client.post("/v1/auth/token", data={"grant_type": "client_credentials"},
                    auth=(client_id, secret))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return str(r.json()["access_token"])


def tamper(token: str) -> str:
    """The same signature over a payload that says admin: must not verify."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["kind"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{head}.{forged}.{signature}"


@dataclass
class Clients:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str | None] = field(default_factory=dict)

    def headers(self, kind: str) -> dict[str, str]:
        token = self.tokens[kind]
        return {"Authorization": f"Bearer {token}"} if token else {}


def provision(stack: Stack) -> Clients:
    """One client of each kind the matrix needs, with a token obtained the way a client would."""
    out = Clients()
    specs = {
        "counter_a": {"kind": "counter", "agency_code": CENTRE_H56},
        "counter_b": {"kind": "counter", "agency_code": CENTRE_H05},
        "portal": {"kind": "portal", "province_code": "H56"},
        "admin": {"kind": "admin"},
        "revoked": {"kind": "counter", "agency_code": CENTRE_H56},
    }
    for kind, spec in specs.items():
        record = create(stack, **spec)
        out.records[kind] = record
        out.tokens[kind] = token_of(stack.client, record["client_id"], record["client_secret"])
    r = stack.client.post(f"/v1/admin/clients/{out.records['revoked']['client_id']}/revoke",
                          headers=admin_headers(stack))
    assert r.status_code == 200 and r.json()["changed"], r.text
    key = stack.settings["intake"].auth_signing_key.get_secret_value()
    # A real client's token, issued two hours ago for one hour.
    out.tokens["expired"] = Tokens(key.encode()).issue(
        client_id=out.records["counter_a"]["client_id"], kind="counter", agency=CENTRE_H56,
        now=time.time() - 7200, ttl_seconds=3600)[0]
    out.tokens["tampered"] = tamper(str(out.tokens["counter_a"]))
    out.tokens["none"] = None
    return out

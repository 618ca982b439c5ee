"""Scopes, tokens, limits and settings: the rules behind the matrix, one by one."""

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from pydantic import ValidationError

from intake.settings import IntakeSettings
from services.errors import PROBLEM_JSON
from services.security import Tokens
from services.settings import ServiceSettings
from tests.factories import FEE_PROCEDURE, case_body, event_body
from tests.harness import Stack, StackFactory
from tests.security.support import CENTRE_H05, CENTRE_H56, create, provision, token_of

PROVINCE_H56 = "000.00.00.H56"  # the People's Committee: parent of every H56 unit
JUSTICE_H56 = "000.00.02.H56"  # a department beside the centre


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _counter(stack: Stack, agency: str) -> dict[str, str]:
    record = create(stack, kind="counter", agency_code=agency)
    return {"Authorization": "Bearer " + token_of(stack.client, record["client_id"],
                                                  record["client_secret"])}


def _portal(stack: Stack, **scope: Any) -> dict[str, str]:
    record = create(stack, kind="portal", **scope)
    return {"Authorization": "Bearer " + token_of(stack.client, record["client_id"],
                                                  record["client_secret"])}


def test_a_counter_writes_for_its_agency_and_the_units_under_it(embedded_stack: Stack) -> None:
    stack = embedded_stack
    province, centre = _counter(stack, PROVINCE_H56), _counter(stack, CENTRE_H56)

    def receive(headers: dict[str, str], agency: str) -> int:
        r = stack.client.post("/v1/cases", headers=headers, auth=None, json=case_body(
            agency_code=agency, procedure_code=FEE_PROCEDURE, received_at=_now()))
        return r.status_code

    assert receive(province, CENTRE_H56) == 201  # under the province
    assert receive(centre, CENTRE_H56) == 201
    assert receive(centre, JUSTICE_H56) == 403  # a sibling, not under the centre
    assert receive(centre, PROVINCE_H56) == 403  # its parent
    assert receive(province, CENTRE_H05) == 403  # another province
    # An agency nobody registered is a validation error, not somebody's scope.
    r = stack.client.post("/v1/cases", headers=centre, auth=None, json=case_body(
        agency_code="000.00.20.H99", received_at=_now()))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "agency_code"


def test_a_counter_reads_and_moves_only_its_cases(embedded_stack: Stack) -> None:
    stack = embedded_stack
    centre, other = _counter(stack, CENTRE_H56), _counter(stack, CENTRE_H05)
    r = stack.client.post("/v1/cases", headers=centre, auth=None, json=case_body(
        agency_code=CENTRE_H56, procedure_code=FEE_PROCEDURE, received_at=_now()))
    code = r.json()["case_code"]
    assert stack.client.get(f"/v1/cases/{code}", headers=other, auth=None).status_code == 403
    mine = stack.client.get(f"/v1/cases/{code}", headers=centre, auth=None)
    assert mine.status_code == 200
    # The counter of the receiving agency sees the applicant; the public never does.
    assert mine.json()["applicant"]["id_number"] == "001203001234"
    public = stack.client.get(f"/v1/public/cases/{code}", auth=None).json()
    assert "applicant" not in public
    event = event_body("supplement_requested", reason="Thiếu bản sao", occurred_at=_now())
    r = stack.client.post(f"/v1/cases/{code}/events", json=event, headers=other, auth=None)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    stack.settled()
    # Routing: the justice department now holds the case; only the centre may hand off as
    # the centre, and another province's counter cannot even see where the case is.
    handoff = {"from_office": CENTRE_H56}
    assert stack.client.post(f"/v1/routing/cases/{code}/handoffs", json=handoff,
                             headers=other, auth=None).status_code == 403
    assert stack.client.get(f"/v1/routing/cases/{code}", headers=other,
                            auth=None).status_code == 403
    justice = _counter(stack, JUSTICE_H56)
    seen = stack.client.get(f"/v1/routing/cases/{code}", headers=justice, auth=None)
    assert seen.status_code == 200 and seen.json()["holder"] == JUSTICE_H56


def test_a_portal_reads_kpis_for_its_province_only(embedded_stack: Stack) -> None:
    stack = embedded_stack
    h56, national = _portal(stack, province_code="H56"), _portal(stack, national=True)
    inside = ["province:H56", f"agency:{CENTRE_H56}", "province-field:H56/justice"]
    outside = ["all", "province:H05", f"agency:{CENTRE_H05}", "field:justice",
               "procedure:2.000488", "province-field:H05/justice", "province:H56x"]
    for scope in inside:
        r = stack.client.get("/v1/kpis", params={"scope": scope}, headers=h56, auth=None)
        assert r.status_code == 200, (scope, r.text)
    for scope in outside:
        r = stack.client.get("/v1/kpis", params={"scope": scope}, headers=h56, auth=None)
        assert r.status_code == 403, scope
        assert r.headers["content-type"] == PROBLEM_JSON
    for scope in [*inside, *outside[:-1]]:
        r = stack.client.get("/v1/kpis", params={"scope": scope}, headers=national, auth=None)
        assert r.status_code == 200, scope
    # Without a scope the query is national: a provincial portal must say its province.
    assert stack.client.get("/v1/kpis", headers=h56, auth=None).status_code == 403
    r = stack.client.get("/v1/breakdown", params={"scope": "all"}, headers=h56, auth=None)
    assert r.status_code == 403
    # A portal writes nothing.
    r = stack.client.post("/v1/cases", json=case_body(received_at=_now()), headers=national,
                          auth=None)
    assert r.status_code == 403


def test_the_token_endpoint(embedded_stack: Stack) -> None:
    stack = embedded_stack
    record = create(stack, kind="counter", agency_code=CENTRE_H56)
    cid, secret = record["client_id"], record["client_secret"]
    grant = {"grant_type": "client_credentials"}
    cases = [
        ({"data": grant, "auth": (cid, secret + "x")}, 401, "invalid_client"),
        ({"data": grant, "auth": ("counter-000000000000", secret)}, 401, "invalid_client"),
        ({"data": {"grant_type": "password"}, "auth": (cid, secret)}, 400,
         "unsupported_grant_type"),
        ({"content": b"\xff\xfe", "headers": {"content-type": "text/plain"}}, 400,
         "invalid_request"),
        ({"data": grant}, 401, "invalid_client"),
    ]
    for kwargs, status, error in cases:
        r = stack.client.post("/v1/auth/token", **kwargs)
        assert (r.status_code, r.json().get("error")) == (status, error), r.text
        assert r.headers["content-type"] == PROBLEM_JSON
    token = token_of(stack.client, cid, secret)
    claims = Tokens(stack.settings["intake"].auth_signing_key.get_secret_value().encode(),
                    ttl_seconds=900).verify(token)
    assert (claims.client_id, claims.kind, claims.agency) == (cid, "counter", CENTRE_H56)
    assert 0 < claims.expires_at - time.time() <= 900
    # JSON works as well as a form; the secret never shows in the listing.
    r = stack.client.post("/v1/auth/token", json={**grant, "client_id": cid,
                                                  "client_secret": secret})
    assert r.status_code == 200
    listing = stack.client.get("/v1/admin/clients").text
    assert cid in listing and secret not in listing and "scrypt" not in listing


def test_a_revoked_client_gets_no_new_token(embedded_stack: Stack) -> None:
    stack = embedded_stack
    clients = provision(stack)
    record = clients.records["revoked"]
    r = stack.client.post("/v1/auth/token", data={"grant_type": "client_credentials"},
                          auth=(record["client_id"], record["client_secret"]))
    assert r.status_code == 401
    again = stack.client.post(f"/v1/admin/clients/{record['client_id']}/revoke")
    assert again.status_code == 200 and again.json()["changed"] is False


def test_rate_limit_answers_429_with_retry_after(stack_factory: StackFactory) -> None:
    stack = stack_factory("embedded", "sqlite", rate_limit_per_second=0.5, rate_limit_burst=3)
    statuses = [stack.client.get("/v1/agencies", params={"limit": 1}).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = stack.client.get("/v1/agencies", params={"limit": 1})
    assert r.status_code == 429 and r.headers["content-type"] == PROBLEM_JSON
    assert int(r.headers["retry-after"]) >= 1 and r.json()["code"] == "rate_limited"
    # Per client: the portal has its own allowance.
    assert stack.client.get("/v1/plans").status_code == 200
    # Health stays reachable for the orchestrator.
    assert stack.client.get("/readyz").status_code == 200


def test_metrics_can_require_a_scrape_token(stack_factory: StackFactory) -> None:
    token = "scrape-" + "k" * 10 + "9f3Qz7Lw2Xv5Rt8Yp1Nm4"
    stack = stack_factory("embedded", "sqlite", metrics_scrape_token=token)
    assert stack.client.get("/metrics", auth=None).status_code == 401
    r = stack.client.get("/metrics", headers={"Authorization": f"Bearer {token}"}, auth=None)
    assert r.status_code == 200 and "motcua_auth_refused_total" in r.text


def test_request_ids_are_kept_and_answered(embedded_stack: Stack) -> None:
    r = embedded_stack.client.get("/healthz", headers={"X-Request-ID": "counter-7:abc"})
    assert r.headers["x-request-id"] == "counter-7:abc"
    made = embedded_stack.client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
    assert made.headers["x-request-id"] != "bad id\n" and len(made.headers["x-request-id"]) == 32


def test_a_token_signed_before_a_key_rotation_still_works(stack_factory: StackFactory) -> None:
    old = "old-" + "Zq8wX2" * 6
    stack = stack_factory("embedded", "sqlite", auth_previous_signing_key=old)
    token = Tokens(old.encode()).issue(client_id="test-portal", kind="portal")[0]
    r = stack.client.get("/v1/plans", headers={"Authorization": f"Bearer {token}"}, auth=None)
    assert r.status_code == 200
    unknown = Tokens(("other-" + "Pw4k" * 8).encode()).issue(client_id="x", kind="admin")[0]
    r = stack.client.get("/v1/plans", headers={"Authorization": f"Bearer {unknown}"}, auth=None)
    assert r.status_code == 401


def test_a_route_without_a_decision_stops_the_app(tmp_path: Path) -> None:
    from intake.app import IntakeComponent, create_app

    extra = APIRouter()

    @extra.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    original = IntakeComponent.routers
    IntakeComponent.routers = lambda self: [*original(self), extra]  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="/v1/forgotten"):
            create_app(IntakeSettings(data_dir=tmp_path, kafka_bootstrap_servers=None,
                                      database_url=None))
    finally:
        IntakeComponent.routers = original  # type: ignore[method-assign]


@pytest.mark.parametrize(("overrides", "message"), [
    ({}, "auth_signing_key"),
    ({"auth_signing_key": "change-me-please-change-me-please-0000"}, "placeholder"),
    ({"auth_signing_key": "x7Q"}, "placeholder"),
    ({"auth_signing_key": "Kq3vB9zL" * 5, "kafka_sasl_password": "hunter2"}, "placeholder"),
])
def test_production_refuses_placeholder_secrets(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as failure:
        ServiceSettings(environment="production", **overrides)
    for value in overrides.values():
        assert value not in str(failure.value)  # an error never prints a secret


def test_production_intake_needs_pii_keys() -> None:
    key = "Kq3vB9zL" * 5
    with pytest.raises(ValidationError, match="pii_keys"):
        IntakeSettings(environment="production", auth_signing_key=key)
    with pytest.raises(ValidationError, match="AES-256 needs 32"):
        IntakeSettings(environment="production", auth_signing_key=key, pii_keys="k1:c2hvcnQ")


def test_tls_and_sasl_come_from_settings_alone(tmp_path: Path) -> None:
    import ssl

    with pytest.raises(ValidationError, match="SASL needs"):
        ServiceSettings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="no file"):
        ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "none.pem")
    s = ServiceSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_sasl_username="motcua", kafka_sasl_password="p" * 40)
    options = s.kafka_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValidationError, match="require_tls"):
        ServiceSettings(require_tls=True, kafka_bootstrap_servers="k:9093")
    with pytest.raises(ValidationError, match="sslmode"):
        ServiceSettings(require_tls=True, database_url="postgresql+psycopg://u:p@db/motcua")
    ok = ServiceSettings(require_tls=True, database_url=(
        "postgresql+psycopg://u:p@db/motcua?sslmode=verify-full&sslrootcert=/etc/ca.pem"))
    assert ok.require_tls


def test_an_answer_that_does_not_start_in_time_is_a_503() -> None:
    import asyncio

    import httpx

    from services.http import RequestTimeout

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    async def call() -> httpx.Response:
        app = RequestTimeout(slow, seconds=0.05)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/cases", json={})

    r = asyncio.run(call())
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.headers["content-type"] == PROBLEM_JSON and r.json()["code"] == "timeout"

"""Every endpoint × every kind of caller: the status each one gets.

The routes come from the apps' own route tables (the one-process app and each service alone),
so an endpoint added without a row here fails this test before it ships.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from services.errors import PROBLEM_JSON
from services.security.policy import endpoints
from tests.factories import FEE_PROCEDURE, case_body, event_body
from tests.harness import Stack
from tests.security.support import CENTRE_H56, KINDS, Clients, admin_headers, create, provision

UNAUTHENTICATED = {"none": 401, "expired": 401, "revoked": 401, "tampered": 401}
PUBLIC = dict.fromkeys(KINDS, 200)


def allowed(counter_a: int = 403, counter_b: int = 403, portal: int = 403,
            admin: int = 403) -> dict[str, int]:
    return {**UNAUTHENTICATED, "counter_a": counter_a, "counter_b": counter_b,
            "portal": portal, "admin": admin}


@dataclass
class World:
    """What the requests point at: a case of counter A's agency, and so on."""

    case: str
    batch_case: str
    event_case: str
    throwaway_client: str
    clients: Clients


Call = Callable[[World], tuple[str, str, dict[str, Any]]]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _procedure_version(stack: Stack) -> dict[str, Any]:
    latest = stack.client.get(f"/v1/admin/procedures/{FEE_PROCEDURE}/versions").json()
    v = latest["items"][0]
    return {k: v[k] for k in ("name", "field_code", "field_name", "processing_days", "fee_vnd",
                              "online_levels", "handling_level", "handling_chain")}


def _agency_version(stack: Stack) -> dict[str, Any]:
    latest = stack.client.get(f"/v1/admin/agencies/{CENTRE_H56}/versions").json()
    v = latest["items"][0]
    return {k: v[k] for k in ("name", "level", "kind", "parent", "reception")}


# (method, route path) -> (what to send, expected status per kind)
def matrix(stack: Stack) -> dict[tuple[str, str], tuple[Call, dict[str, int]]]:
    procedure = _procedure_version(stack)
    agency = _agency_version(stack)
    kpi = allowed(portal=200, admin=200)
    return {
        ("GET", "/healthz"): (lambda w: ("GET", "/healthz", {}), PUBLIC),
        ("GET", "/readyz"): (lambda w: ("GET", "/readyz", {}), PUBLIC),
        ("GET", "/metrics"): (lambda w: ("GET", "/metrics", {}), PUBLIC),
        ("GET", "/dashboard"): (lambda w: ("GET", "/dashboard", {}), PUBLIC),
        ("GET", "/dashboard/static/{name}"): (
            lambda w: ("GET", "/dashboard/static/dashboard.css", {}), PUBLIC),
        ("GET", "/v1/public/cases/{case_code}"): (
            lambda w: ("GET", f"/v1/public/cases/{w.case}", {}), PUBLIC),
        # The token endpoint is public: credentials in the body, the bearer header ignored.
        ("POST", "/v1/auth/token"): (lambda w: ("POST", "/v1/auth/token", {"data": {
            "grant_type": "client_credentials",
            "client_id": w.clients.records["counter_a"]["client_id"],
            "client_secret": w.clients.records["counter_a"]["client_secret"]}}), PUBLIC),
        ("POST", "/v1/cases"): (lambda w: ("POST", "/v1/cases", {"json": case_body(
            agency_code=CENTRE_H56, procedure_code=FEE_PROCEDURE, received_at=_now())}),
            allowed(counter_a=201)),
        ("POST", "/v1/submissions"): (lambda w: ("POST", "/v1/submissions", {"json": {
            "agency_code": CENTRE_H56, "procedure_code": FEE_PROCEDURE,
            "online_level": "full", "submitted_at": _now(),
            "applicant": {"kind": "citizen", "id_number": "038090001234"}}}),
            allowed(counter_a=201)),
        ("POST", "/v1/cases/{case_code}/events"): (
            lambda w: ("POST", f"/v1/cases/{w.event_case}/events", {"json": event_body(
                "supplement_requested", reason="Thiếu bản sao", occurred_at=_now())}),
            allowed(counter_a=201)),
        # A counter of another agency may call the batch endpoint; the item is refused (403).
        ("POST", "/v1/events:batch"): (lambda w: ("POST", "/v1/events:batch", {"json": {
            "events": [{**event_body("supplement_requested", reason="Thiếu bản sao",
                                     occurred_at=_now()), "case_code": w.batch_case}]}}),
            allowed(counter_a=200, counter_b=207)),
        ("GET", "/v1/cases/{case_code}"): (
            lambda w: ("GET", f"/v1/cases/{w.case}", {}), allowed(counter_a=200, admin=200)),
        ("GET", "/v1/agencies"): (lambda w: ("GET", "/v1/agencies", {}),
                                  allowed(200, 200, 200, 200)),
        ("GET", "/v1/procedures"): (lambda w: ("GET", "/v1/procedures", {}),
                                    allowed(200, 200, 200, 200)),
        ("POST", "/v1/admin/procedures/{code}/versions"): (
            lambda w: ("POST", f"/v1/admin/procedures/{FEE_PROCEDURE}/versions",
                       {"json": procedure}), allowed(admin=200)),
        ("GET", "/v1/admin/procedures/{code}/versions"): (
            lambda w: ("GET", f"/v1/admin/procedures/{FEE_PROCEDURE}/versions", {}),
            allowed(admin=200)),
        ("POST", "/v1/admin/agencies/{code}/versions"): (
            lambda w: ("POST", f"/v1/admin/agencies/{CENTRE_H56}/versions", {"json": agency}),
            allowed(admin=200)),  # the version in force again: accepted, unchanged
        ("GET", "/v1/admin/agencies/{code}/versions"): (
            lambda w: ("GET", f"/v1/admin/agencies/{CENTRE_H56}/versions", {}),
            allowed(admin=200)),
        ("POST", "/v1/admin/clients"): (lambda w: ("POST", "/v1/admin/clients", {"json": {
            "name": "Quầy mới", "kind": "counter", "agency_code": CENTRE_H56}}),
            allowed(admin=201)),
        ("GET", "/v1/admin/clients"): (lambda w: ("GET", "/v1/admin/clients", {}),
                                       allowed(admin=200)),
        ("POST", "/v1/admin/clients/{client_id}/revoke"): (
            lambda w: ("POST", f"/v1/admin/clients/{w.throwaway_client}/revoke", {}),
            allowed(admin=200)),
        ("GET", "/v1/audit"): (lambda w: ("GET", "/v1/audit", {"params": {
            "case_code": w.case}}), allowed(admin=200)),
        ("GET", "/v1/routing/cases/{case_code}"): (
            lambda w: ("GET", f"/v1/routing/cases/{w.case}", {}),
            allowed(counter_a=200, admin=200)),
        # The case went to the justice department at once: a handoff from the centre is a
        # repeat (200) for the centre's counter and nobody else's business.
        ("POST", "/v1/routing/cases/{case_code}/handoffs"): (
            lambda w: ("POST", f"/v1/routing/cases/{w.case}/handoffs",
                       {"json": {"from_office": CENTRE_H56}}), allowed(counter_a=200)),
        ("GET", "/v1/kpis"): (lambda w: ("GET", "/v1/kpis", {"params": {
            "scope": "province:H56"}}), kpi),
        ("GET", "/v1/kpis/index"): (lambda w: ("GET", "/v1/kpis/index", {"params": {
            "scope": "province:H56"}}), kpi),
        ("GET", "/v1/breakdown"): (lambda w: ("GET", "/v1/breakdown", {"params": {
            "scope": "province:H56"}}), kpi),
        ("GET", "/v1/overdue"): (lambda w: ("GET", "/v1/overdue", {"params": {
            "scope": "province:H56"}}), kpi),
        ("GET", "/v1/plans"): (lambda w: ("GET", "/v1/plans", {}), allowed(200, 200, 200, 200)),
    }


def routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, e.path) for e in endpoints(app) for method in e.methods if method != "HEAD"}


def service_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """The routes of intake, routing and metrics run one per process (built, not started)."""
    from intake.app import create_app as intake_app
    from intake.settings import IntakeSettings
    from metrics.app import create_app as metrics_app
    from metrics.settings import MetricsSettings
    from routing.app import create_app as routing_app
    from routing.settings import RoutingSettings

    found: set[tuple[str, str]] = set()
    for make, settings in ((intake_app, IntakeSettings), (routing_app, RoutingSettings),
                           (metrics_app, MetricsSettings)):
        found |= routes(make(settings(data_dir=tmp_path, kafka_bootstrap_servers=None,
                                      database_url=None)))
    return found


def setup_world(stack: Stack) -> World:
    clients = provision(stack)

    def receive() -> str:
        r = stack.client.post("/v1/cases", json=case_body(
            agency_code=CENTRE_H56, procedure_code=FEE_PROCEDURE, received_at=_now()))
        assert r.status_code == 201, r.text
        return str(r.json()["case_code"])

    world = World(case=receive(), batch_case=receive(), event_case=receive(),
                  throwaway_client=create(stack, kind="admin")["client_id"], clients=clients)
    stack.settled()  # routing has the cases and has sent them on
    return world


def test_every_endpoint_for_every_kind_of_caller(embedded_stack: Stack, tmp_path: Path) -> None:
    stack = embedded_stack
    table = matrix(stack)
    served = routes(stack.client.app)  # type: ignore[arg-type]
    assert served == set(table), (
        f"routes without a row in the matrix: {sorted(served - set(table))}; "
        f"rows for routes that are gone: {sorted(set(table) - served)}")
    assert service_routes(tmp_path / "alone") <= served
    world = setup_world(stack)
    for key, (call, expected) in sorted(table.items()):
        assert set(expected) == set(KINDS), key
        for kind in KINDS:
            method, url, kwargs = call(world)
            r = stack.client.request(method, url, headers=world.clients.headers(kind),
                                     auth=None, **kwargs)
            assert r.status_code == expected[kind], (key, kind, r.status_code, r.text[:300])
            if r.status_code >= 400:
                assert r.headers["content-type"] == PROBLEM_JSON, (key, kind)
                assert r.json()["status"] == r.status_code
            if r.status_code == 401:
                assert r.headers["www-authenticate"].startswith("Bearer"), (key, kind)
            if key == ("POST", "/v1/events:batch") and kind == "counter_b":
                assert [i["status"] for i in r.json()["results"]] == [403]


@pytest.mark.parametrize("kind", ["none", "expired", "revoked", "tampered"])
def test_a_refused_write_changes_nothing(embedded_stack: Stack, kind: str) -> None:
    stack = embedded_stack
    clients = provision(stack)
    before = stack.client.get("/v1/audit", params={"action": "case.received"},
                              headers=admin_headers(stack)).json()["total"]
    body = case_body(agency_code=CENTRE_H56, received_at=_now(), case_code=None)
    r = stack.client.post("/v1/cases", json=body, headers=clients.headers(kind), auth=None)
    assert r.status_code == 401
    # Nothing received: the same event id from the right client is a first receipt (201).
    ok = stack.client.post("/v1/cases", json=body, headers=clients.headers("counter_a"),
                           auth=None)
    assert ok.status_code == 201, ok.text
    after = stack.client.get("/v1/audit", params={"action": "case.received"},
                             headers=admin_headers(stack)).json()["total"]
    assert after == before + 1


def test_an_unknown_route_is_not_found_not_unauthorised(embedded_stack: Stack) -> None:
    r = embedded_stack.client.get(f"/v1/nothing-{uuid.uuid4().hex}", auth=None)
    assert r.status_code == 404


def test_the_document_asks_for_a_token_on_exactly_the_operations_that_need_one(
        embedded_stack: Stack) -> None:
    doc = embedded_stack.client.get("/openapi.json", auth=None).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "An access token from POST /v1/auth/token."}
    documented = 0
    for (method, path), (_call, expected) in sorted(matrix(embedded_stack).items()):
        operation = doc["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue  # not in the document (the dashboard's pages)
        documented += 1
        needs_token = expected["none"] == 401
        assert (operation.get("security") == [{"bearer": []}]) == needs_token, (method, path)
    assert documented >= 25

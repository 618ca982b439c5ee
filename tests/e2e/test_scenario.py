"""A few hundred cases through the HTTP API on every bus x database: every KPI's numerator and
denominator must equal the reference calculator's, for every scope and local period."""

from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from registry.catalogue import Catalogue
from tests import reference, scenario
from tests.harness import Stack
from tests.scenario import Client, PlannedCase

KPI_NAMES = ["received", "resolved", "returned", "online_share", "full_online_share",
             "online_resolution_share", "e_transfer_rate", "online_payment_rate",
             "postal_intake_share", "postal_return_share"]


def expected_routing_hop(pc: PlannedCase, cat: Catalogue) -> str | None:
    agency = cat.agency(pc.body["agency_code"])
    procedure = cat.procedure(pc.body["procedure_code"])
    assert agency is not None and procedure is not None
    on = datetime.fromisoformat(pc.body["received_at"]).astimezone(reference.VN).date()
    offices = [o.code for o in cat.handling_offices(procedure, near=agency, on=on)]
    # A receiving agency that is itself the first handling office handles before any transfer.
    return offices[0] if offices and offices[0] != agency.code else None


def run_scenario(client: Client, settle: Any, n: int, seed: int) -> list[dict[str, Any]]:
    cases = scenario.plan(n, seed=seed, now=datetime.now(UTC))
    scenario.post_receipts(client, cases)
    # Routing transfers each case to its handling office; let that land before the counters
    # resolve cases (a transfer after resolution is refused by the case's owner).
    settle()
    scenario.post_later_events(client, cases)
    settle()
    facts = scenario.facts(client, cases)
    cat = Catalogue.load()
    for pc, f in zip(cases, facts, strict=True):
        routed = [e for e in f["events"]
                  if e["source"] == "/motcua/routing" and e["type"] == "transferred"]
        hop = expected_routing_hop(pc, cat)
        assert len(routed) == (1 if hop else 0), (pc.code, routed)
    return facts


def assert_kpis_match(client: Client, facts: list[dict[str, Any]]) -> int:
    expected = reference.compute(facts)
    queries = sorted({(scope, period) for (_, scope, period) in expected
                      if len(period) in (4, 7) or scope == "all"})
    checked = 0
    for scope, period in queries:
        r = client.get("/v1/kpis", params={"scope": scope, "period": period,
                                           "kpi": KPI_NAMES})
        assert r.status_code == 200, r.text
        got = {i["kpi"]: (i["numerator"], i["denominator"]) for i in r.json()["items"]}
        want = {k: expected[(k, scope, period)] for k in KPI_NAMES}
        assert got == want, (scope, period)
        checked += len(want)
    return checked


def test_kpis_match_reference_on_every_bus_and_database(stack: Stack) -> None:
    facts = run_scenario(stack.client, stack.settled, n=150, seed=20260302)
    kinds = {e["type"] for f in facts for e in f["events"]}
    assert {"transferred", "paid", "resolved", "returned"} <= kinds
    checked = assert_kpis_match(stack.client, facts)
    assert checked > 1000
    # On PostgreSQL intake's transactions are written from its event loop (intake.pg_writer).
    written = {s.labels["writer"]: s.value for f in text_string_to_metric_families(
        stack.client.get("/metrics").text) if f.name == "motcua_intake_write_transactions"
        for s in f.samples if s.name.endswith("_total")}
    if (stack.settings["intake"].database_url or "").startswith("postgresql"):
        assert written.get("loop", 0) > 10, written
    else:
        assert set(written) == {"thread"}, written
    empty = stack.client.get("/v1/kpis", params={"scope": "all", "period": "2020-01"}).json()
    for item in empty["items"]:
        assert item["numerator"] == 0
        assert item["value"] in (0, None)


def test_kpis_on_metrics_endpoint_move(embedded_stack: Stack) -> None:
    client = embedded_stack.client
    before = client.get("/metrics").text
    assert 'motcua_kpi_numerator{kpi="received",province="H56"}' not in before
    r = client.post("/v1/cases", json={"agency_code": "000.00.20.H56",
                                       "procedure_code": "1.001193", "channel": "online",
                                       "online_level": "full"})
    assert r.status_code == 201, r.text
    embedded_stack.settled()
    text = client.get("/metrics").text
    assert 'motcua_kpi_numerator{kpi="received",province="H56"} 1.0' in text
    assert 'motcua_kpi_value{kpi="online_share",province="H56"} 1.0' in text
    assert 'motcua_intake_cases_received_total{channel="online"} 1.0' in text

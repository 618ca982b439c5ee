"""Shared steps of the metrics tests: run a lifecycle scenario, compare every KPI with the
reference calculator, and stand in for routing's overdue notices."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from contracts import CASES_TOPIC, CaseOverdue, encode, new_envelope
from metrics import service
from metrics.kpis import KPIS
from metrics.models import Counter
from metrics.periods import LIVE
from services.bus.base import Record
from tests import reference, scenario
from tests.harness import Stack

PERIOD_KPIS = [k for k in KPIS if k != "overdue_open"]


def run_lifecycles(stack: Stack, n: int, seed: int) -> list[dict[str, Any]]:
    """Post `n` whole lifecycles through the API and return every case's recorded facts."""
    return scenario.facts(stack.client, post_lifecycles(stack, n, seed))


def post_lifecycles(stack: Stack, n: int, seed: int) -> list[scenario.PlannedCase]:
    cases = scenario.plan_lifecycles(n, seed=seed, now=datetime.now(UTC))
    scenario.post_receipts(stack.client, cases)
    # Routing moves routed cases into processing first, as it would in real time.
    stack.settled(timeout=300)
    scenario.post_lifecycles(stack.client, cases)
    stack.settled(timeout=300)
    return cases


def projected_keys(stack: Stack) -> set[tuple[str, str]]:
    with Session(stack.component("metrics").engine) as session:
        rows = session.exec(select(Counter.scope, Counter.period).distinct()).all()
    return {(s, p) for s, p in rows if p != LIVE}


def kpis_of(stack: Stack, scope: str, period: str) -> dict[str, tuple[int, int | None]]:
    """The service's own query (what GET /v1/kpis answers), without HTTP in between."""
    with Session(stack.component("metrics").engine) as session:
        items = service.query_kpis(session=session, kpis=[KPIS[k] for k in PERIOD_KPIS],
                                   scope=scope, period=period)
    return {i["kpi"]: (i["numerator"], i["denominator"]) for i in items}


def assert_every_kpi_matches(stack: Stack, facts: list[dict[str, Any]]) -> int:
    """Every period KPI, for every scope and period either side knows of; returns how many
    (kpi, scope, period) figures were compared."""
    expected = reference.compute(facts)
    keys = {(s, p) for (_, s, p) in expected} | projected_keys(stack)
    mismatches = []
    for scope, period in sorted(keys):
        got = kpis_of(stack, scope, period)
        for kpi in PERIOD_KPIS:
            den_is_count = reference.RATIOS[kpi][1] is None
            want = expected.get((kpi, scope, period), (0, None if den_is_count else 0))
            if got[kpi] != want:
                mismatches.append((kpi, scope, period, got[kpi], want))
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:10]}"
    # And through HTTP for every scope's months, quarters and years.
    for scope, period in sorted(k for k in keys if len(k[1]) < 10):
        r = stack.client.get("/v1/kpis", params={"scope": scope, "period": period,
                                                 "kpi": PERIOD_KPIS})
        assert r.status_code == 200, r.text
        got = {i["kpi"]: (i["numerator"], i["denominator"]) for i in r.json()["items"]}
        assert got == kpis_of(stack, scope, period), (scope, period)
    return len(keys) * len(PERIOD_KPIS)


def raise_overdue_notices(stack: Stack, codes: list[str]) -> list[str]:
    """Stand in for routing's overdue scan: for every one of `codes` that is open (not waiting
    for supplements) with a due date, as intake holds it, before today, put an overdue notice
    on the case log, as intake does when it records routing's notice. Returns those codes."""
    today = datetime.now(UTC).astimezone(reference.VN).date()
    records = []
    for code in codes:
        case = stack.client.get(f"/v1/cases/{code}").json()
        due = date.fromisoformat(case["due_date"])
        if case["status"] not in (2, 4, 6) or due >= today:
            continue
        payload = CaseOverdue(case_code=code, occurred_at=datetime.now(UTC) - timedelta(
            seconds=1), due_date=due, status=case["status"])
        key, value, headers = encode(new_envelope(payload, source="/motcua/intake"))
        records.append(Record(topic=stack.settings["intake"].topic_prefix + CASES_TOPIC,
                              key=key, value=value, headers=tuple(headers)))
    if records:
        portal = stack.client.portal
        assert portal is not None
        portal.call(stack.client.app.state.bus.publish, records)  # type: ignore[attr-defined]
    stack.settled()
    return [r.key.decode() for r in records if r.key]

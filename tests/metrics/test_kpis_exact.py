"""Every KPI of API.md, for every scope and local period, equals the independent reference
calculator's on a randomised scenario of whole lifecycles (thousands of cases on the embedded
default, a smaller one on Kafka + PostgreSQL); the live overdue backlog follows its cases."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests import reference, scenario
from tests.harness import Stack, StackFactory
from tests.metrics.helpers import (
    assert_every_kpi_matches,
    post_lifecycles,
    raise_overdue_notices,
    run_lifecycles,
)


def assert_scenario_is_rich(facts: list[dict[str, Any]]) -> None:
    """The scenario exercises every rule the KPIs depend on (else a match proves little)."""
    kinds = Counter(e["type"] for f in facts for e in f["events"])
    for kind in ("transferred", "supplement_requested", "supplement_received", "paid",
                 "payment_requested", "resolved", "result_digitised", "returned", "rated",
                 "apology_issued", "withdrawn", "stopped", "refused"):
        assert kinds[kind] > 0, kind
    outcomes: Counter[str] = Counter()
    for f in facts:
        res = reference.resolution(f)
        if res is None:
            continue
        outcomes["on_time" if res[1] else "late"] += 1
        requests = sum(1 for e in f["events"] if e["type"] == "supplement_requested")
        if requests == 2:
            outcomes["second_request"] += 1
            # The rule that makes these late must be the reason, not their dates alone.
            if res[0].astimezone(reference.VN).date() <= reference.due_date(f):
                outcomes["late_only_by_second_request"] += 1
        elif requests == 1:
            outcomes["paused"] += 1
        digitised = [e for e in f["events"] if e["type"] == "result_digitised"]
        if digitised and f"{digitised[0]['occurred_at'].astimezone(reference.VN):%Y-%m}" != \
                f"{res[0].astimezone(reference.VN):%Y-%m}":
            outcomes["digitised_in_a_later_month"] += 1
    for outcome in ("on_time", "late", "second_request", "late_only_by_second_request",
                    "paused", "digitised_in_a_later_month"):
        assert outcomes[outcome] > 0, (outcome, outcomes)
    at_midnight = [e for f in facts for e in f["events"]
                   if e["occurred_at"].astimezone(reference.VN).date()
                   != e["occurred_at"].astimezone(UTC).date()]
    assert at_midnight
    # Receipts in the last minutes of a local month and the first of the next.
    receipts = [f["received_at"].astimezone(reference.VN) for f in facts]
    assert any(r.day == 1 and r.hour == 0 for r in receipts)
    assert any((r + timedelta(minutes=10)).day == 1 and r.hour == 23 for r in receipts)
    assert any(s.startswith("district:") for f in facts for s in reference.scopes(f))


def test_every_kpi_matches_the_reference_on_the_embedded_default(embedded_stack: Stack) -> None:
    facts = run_lifecycles(embedded_stack, n=2000, seed=20261126)
    assert_scenario_is_rich(facts)
    checked = assert_every_kpi_matches(embedded_stack, facts)
    assert checked > 100_000


def test_every_kpi_matches_the_reference_on_kafka_and_postgres(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory("kafka", "postgres")
    facts = run_lifecycles(stack, n=300, seed=7301)
    checked = assert_every_kpi_matches(stack, facts)
    assert checked > 10_000


def overdue_by_scope(stack: Stack, scopes: set[str]) -> dict[str, int]:
    out = {}
    for scope in sorted(scopes):
        r = stack.client.get("/v1/kpis", params={"scope": scope, "kpi": "overdue_open"})
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        assert item["period"] == "live"
        out[scope] = item["numerator"]
    return out


def test_overdue_backlog_is_live(embedded_stack: Stack) -> None:
    stack = embedded_stack
    cases = post_lifecycles(stack, n=300, seed=4242)
    facts = scenario.facts(stack.client, cases)
    codes = [f["case_code"] for f in facts]
    notified = raise_overdue_notices(stack, codes)
    expected = reference.overdue_open(facts, datetime.now(UTC))
    assert expected["all"] > 10
    # Every overdue case the reference finds was notified, and no other.
    by_code = {f["case_code"]: f for f in facts}
    assert sorted(notified) == sorted(
        c for c in codes if reference.is_overdue(by_code[c], datetime.now(UTC)))
    scopes = {s for f in facts for s in reference.scopes(f)}
    assert overdue_by_scope(stack, scopes) == {s: expected[s] for s in scopes}

    # Resolving, pausing or withdrawing an overdue case takes it out of the backlog at once;
    # a notice raised again (a second time for the same due date) changes nothing.
    status = {c: stack.client.get(f"/v1/cases/{c}").json()["status"] for c in notified}
    processing = [c for c in notified if status[c] in (2, 4)]
    changes = ((processing[0], {"type": "resolved"}),
               (processing[1], {"type": "supplement_requested", "reason": "Thiếu giấy tờ"}),
               (processing[2], {"type": "withdrawn", "reason": "Rút hồ sơ"}))
    for code, event in changes:
        r = stack.client.post(f"/v1/cases/{code}/events", json=event)
        assert r.status_code == 201, r.text
    left = [c for c in notified if c not in processing[:3]]
    assert raise_overdue_notices(stack, notified) == left
    refreshed = scenario.facts(stack.client, cases)
    expected = reference.overdue_open(refreshed, datetime.now(UTC))
    assert expected["all"] == len(notified) - 3
    assert overdue_by_scope(stack, scopes) == {s: expected[s] for s in scopes}

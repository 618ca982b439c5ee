"""Routing on real Kafka and PostgreSQL: liên thông chains moved hop by hop, and the deadline
watch raising `overdue` exactly once, across restarts and for deadlines passed while down."""

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.factories import CENTRE, case_body, event_body
from tests.harness import Stack, StackFactory

VN = ZoneInfo("Asia/Ho_Chi_Minh")
COMMUNE = "000.00.60.H56"  # UBND xã Hoằng Hóa, from 2025-07-01
# Thanh Hóa's offices the chains resolve to.
LAND_OFFICE, TAX, DONRE = "000.01.06.H56", "000.00.90.H56", "000.00.06.H56"
POLICE, INSURANCE = "000.00.92.H56", "000.00.91.H56"


class Clock:
    """Time a test moves by hand; every service in the stack reads it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def wait_for(probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 2, 8, 0, tzinfo=VN))


@pytest.fixture
def kafka_stack(stack_factory: StackFactory, clock: Clock) -> Stack:
    return stack_factory("kafka", "postgres", clock=clock, overdue_scan_seconds=0.2)


def receive(stack: Stack, **overrides: Any) -> str:
    r = stack.client.post("/v1/cases", json=case_body(**overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["case_code"])


def history(stack: Stack, code: str) -> list[dict[str, Any]]:
    return list(stack.client.get(f"/v1/cases/{code}").json()["history"])


def transfers(stack: Stack, code: str) -> list[tuple[str, str, str]]:
    return [(h["details"]["from_office"], h["details"]["to_office"], h["details"]["method"])
            for h in history(stack, code)
            if h["type"] == "transferred" and h["source"] == "/motcua/routing"]


def hand_off(stack: Stack, code: str, office: str) -> Any:
    return stack.client.post(f"/v1/routing/cases/{code}/handoffs", json={"from_office": office})


def scans_after(stack: Stack, n: int) -> None:
    """Wait until the deadline watch has completed `n` more scans (and their effects landed);
    no notice may have been refused by intake as a duplicate or as premature."""
    routing = stack.component("routing")
    target = routing.scans + n
    wait_for(lambda: routing.scans >= target)
    stack.settled()
    assert 'motcua_intake_system_events_rejected_total{type="overdue"}' not in (
        stack.client.get("/metrics").text)


def test_lien_thong_chain_is_transferred_hop_by_hop(kafka_stack: Stack, clock: Clock) -> None:
    # Land registration for an organisation, received at the provincial service centre:
    # land registration office, then the tax department, then the environment department.
    code = receive(kafka_stack, procedure_code="1.012769",
                   received_at="2026-03-02T08:00:00+07:00")
    kafka_stack.settled()
    assert transfers(kafka_stack, code) == [(CENTRE, LAND_OFFICE, "electronic")]
    progress = kafka_stack.client.get(f"/v1/routing/cases/{code}").json()
    assert progress["chain"] == [LAND_OFFICE, TAX, DONRE]
    assert (progress["holder"], progress["next_office"], progress["arrived"]) == (
        LAND_OFFICE, TAX, True)

    wrong = hand_off(kafka_stack, code, TAX)
    assert wrong.status_code == 409 and wrong.json()["holder"] == LAND_OFFICE
    clock.now += timedelta(hours=1)
    first = hand_off(kafka_stack, code, LAND_OFFICE)
    assert first.status_code == 201, first.text
    assert (first.json()["holder"], first.json()["next_office"]) == (TAX, DONRE)
    assert hand_off(kafka_stack, code, LAND_OFFICE).status_code == 200  # a retry, no new hop
    kafka_stack.settled()
    clock.now += timedelta(hours=1)
    assert hand_off(kafka_stack, code, TAX).status_code == 201
    kafka_stack.settled()
    last = hand_off(kafka_stack, code, DONRE)
    assert last.status_code == 409 and "resolved" in last.json()["detail"]

    assert transfers(kafka_stack, code) == [
        (CENTRE, LAND_OFFICE, "electronic"), (LAND_OFFICE, TAX, "electronic"),
        (TAX, DONRE, "electronic")]
    case = kafka_stack.client.get(f"/v1/cases/{code}").json()
    assert case["status"] == 4
    resolved = kafka_stack.client.post(f"/v1/cases/{code}/events", json=event_body(
        "resolved", occurred_at="2026-03-02T10:00:00+07:00"))
    assert resolved.status_code == 201
    kafka_stack.settled()
    closed = kafka_stack.client.get(f"/v1/routing/cases/{code}").json()
    assert closed["open"] is False and closed["status"] == 9
    kpi = kafka_stack.client.get("/v1/kpis", params={
        "kpi": "e_transfer_rate", "period": "2026-03", "scope": "all"}).json()["items"][0]
    assert (kpi["numerator"], kpi["denominator"]) == (3, 3)


def test_commune_first_chain_waits_for_the_commune(kafka_stack: Stack) -> None:
    # Birth + residence + health insurance for a child: the commune registers the birth first.
    code = receive(kafka_stack, agency_code=COMMUNE, procedure_code="1.012872",
                   received_at="2026-03-02T08:00:00+07:00")
    kafka_stack.settled()
    assert transfers(kafka_stack, code) == []
    progress = kafka_stack.client.get(f"/v1/routing/cases/{code}").json()
    assert (progress["holder"], progress["chain"]) == (COMMUNE, [POLICE, INSURANCE])
    assert hand_off(kafka_stack, code, COMMUNE).status_code == 201
    # Before intake recorded the transfer to the police, the police cannot pass it on.
    early = hand_off(kafka_stack, code, POLICE)
    assert early.status_code in (201, 409)
    if early.status_code == 409:
        assert early.json()["reason"] == "not_arrived"
        kafka_stack.settled()
        assert hand_off(kafka_stack, code, POLICE).status_code == 201
    kafka_stack.settled()
    assert transfers(kafka_stack, code) == [(COMMUNE, POLICE, "electronic"),
                                            (POLICE, INSURANCE, "electronic")]


def overdue_notices(stack: Stack, code: str) -> list[dict[str, Any]]:
    return [h for h in history(stack, code) if h["type"] == "overdue"]


def test_overdue_is_raised_exactly_once_across_restarts(
    kafka_stack: Stack, clock: Clock
) -> None:
    # 1 working day: received Monday 2 March 2026, due Tuesday 3 March.
    early = receive(kafka_stack, procedure_code="1.011443",
                    received_at="2026-03-02T08:00:00+07:00")
    later = receive(kafka_stack, procedure_code="2.000488",  # 10 days: due 16 March
                    received_at="2026-03-02T08:00:00+07:00")
    paused = receive(kafka_stack, procedure_code="1.011443",
                     received_at="2026-03-02T08:00:00+07:00")
    closed = receive(kafka_stack, procedure_code="1.011443",
                     received_at="2026-03-02T08:00:00+07:00")
    r = kafka_stack.client.post(f"/v1/cases/{closed}/events", json=event_body(
        "resolved", occurred_at="2026-03-02T08:01:00+07:00"))
    assert r.status_code == 201, r.text
    kafka_stack.settled()
    clock.now = datetime(2026, 3, 3, 23, 0, tzinfo=VN)  # the due date itself: not yet overdue
    scans_after(kafka_stack, 2)
    assert overdue_notices(kafka_stack, early) == []
    # Paused on its due date, and routing has heard of it before that date ends. (Posted after
    # midnight instead, a scan could fall between intake's commit and routing reading the
    # pause: intake would then refuse routing's notice, rightly, as the case is paused.)
    r = kafka_stack.client.post(f"/v1/cases/{paused}/events", json=event_body(
        "supplement_requested", reason="Thiếu bản sao", occurred_at="2026-03-03T10:00:00+07:00"))
    assert r.status_code == 201
    kafka_stack.settled()

    clock.now = datetime(2026, 3, 4, 0, 30, tzinfo=VN)
    scans_after(kafka_stack, 2)
    (notice,) = overdue_notices(kafka_stack, early)
    assert notice["source"] == "/motcua/routing" and notice["details"] == {"due_date": "2026-03-03"}
    assert notice["occurred_at"].startswith("2026-03-03T17:00:00")  # local midnight, in UTC
    for code in (later, paused, closed):
        assert overdue_notices(kafka_stack, code) == [], code
    backlog = kafka_stack.client.get("/v1/kpis", params={"kpi": "overdue_open"}).json()
    assert backlog["items"][0]["numerator"] == 1

    kafka_stack.restart()
    scans_after(kafka_stack, 3)
    assert len(overdue_notices(kafka_stack, early)) == 1

    # Down while `later` passes its due date (16 March): raised once when routing is back.
    kafka_stack.close()
    clock.now = datetime(2026, 3, 20, 9, 0, tzinfo=VN)
    kafka_stack.restart()
    scans_after(kafka_stack, 3)
    assert len(overdue_notices(kafka_stack, later)) == 1
    assert len(overdue_notices(kafka_stack, early)) == 1

    # The supplement arrives on 20 March: the pause (4..20 March, 13 working days) moves the
    # due date to 20 March itself; a new notice is raised once that date has passed.
    r = kafka_stack.client.post(f"/v1/cases/{paused}/events", json=event_body(
        "supplement_received", occurred_at="2026-03-20T09:00:00+07:00"))
    assert r.status_code == 201 and r.json()["due_date"] == "2026-03-20"
    scans_after(kafka_stack, 2)
    assert overdue_notices(kafka_stack, paused) == []
    clock.now = datetime(2026, 3, 23, 8, 0, tzinfo=VN)
    scans_after(kafka_stack, 3)
    (extended,) = overdue_notices(kafka_stack, paused)
    assert extended["details"] == {"due_date": "2026-03-20"}
    assert extended["occurred_at"].startswith("2026-03-20T17:00:00")

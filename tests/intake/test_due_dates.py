"""The due date on the appointment slip and after supplements, through the API (DOMAIN.md):
working days in Asia/Ho_Chi_Minh, weekends, holidays and Tết, make-up Saturdays, pauses."""

from typing import Any

import pytest

from tests.factories import CENTRE, case_body, event_body
from tests.harness import Stack

# Procedures by processing days N (registry/data/procedures.json).
N = {0: "1.001193", 1: "1.011443", 2: "2.001019", 3: "2.001610", 5: "1.012872", 10: "2.000488"}

# (received_at local, N, due date, why)
SLIPS = [
    ("2025-03-10T09:00", 3, "2025-03-13", "Monday, N=3: Thursday"),
    ("2025-03-15T09:00", 1, "2025-03-17", "received on a Saturday, N=1: Monday"),
    ("2025-03-14T16:30", 1, "2025-03-17", "Friday, N=1: over the weekend"),
    ("2025-03-15T10:00", 0, "2025-03-15", "N=0: due on the receipt date, even a Saturday"),
    ("2025-04-30T08:00", 1, "2025-05-05", "received on a holiday (30/4), then 1/5, 2/5"),
    ("2025-01-24T15:00", 1, "2025-02-03", "Tết 2025: the Friday before the break"),
    ("2025-01-29T10:00", 3, "2025-02-05", "received on mùng 1 Tết 2025"),
    ("2026-02-13T09:00", 1, "2026-02-23", "Tết 2026: 14/2 to 22/2 off"),
    ("2026-02-12T09:00", 2, "2026-02-23", "Tết 2026: one day before, one after"),
    ("2025-04-25T09:00", 1, "2025-04-26", "make-up Saturday 26/4/2025 is a working day"),
    ("2025-12-31T09:00", 10, "2026-01-15", "across the year end and New Year's Day"),
    ("2025-03-09T23:30", 1, "2025-03-10", "Sunday 23:30 local is Sunday, not Monday in UTC"),
    ("2025-03-10T00:10", 1, "2025-03-11", "00:10 local Monday is Sunday in UTC"),
]


@pytest.mark.parametrize(("received", "days", "due"),
                         [pytest.param(r, n, d, id=why) for r, n, d, why in SLIPS])
def test_slip_due_date(embedded_stack: Stack, received: str, days: int, due: str) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(
        procedure_code=N[days], received_at=f"{received}:00+07:00"))
    assert r.status_code == 201, r.text
    slip = r.json()
    assert (slip["due_date"], slip["processing_days"]) == (due, days)
    assert slip["receipt_date"] == received[:10]
    assert embedded_stack.client.get(f"/v1/public/cases/{slip['case_code']}").json()[
        "due_date"] == due


def post(stack: Stack, code: str, type_: str, at: str, **fields: Any) -> dict[str, Any]:
    r = stack.client.post(f"/v1/cases/{code}/events",
                          json=event_body(type_, occurred_at=f"{at}:00+07:00", **fields))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_supplement_pauses_extend_the_due_date(embedded_stack: Stack) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(
        procedure_code=N[5], received_at="2025-03-03T09:00:00+07:00"))
    code = r.json()["case_code"]
    assert r.json()["due_date"] == "2025-03-10"
    post(embedded_stack, code, "supplement_requested", "2025-03-05T10:00", reason="Thiếu")
    # Thu 6, Fri 7 and Mon 10 March were paused: three working days later.
    back = post(embedded_stack, code, "supplement_received", "2025-03-10T15:00")
    assert back["due_date"] == "2025-03-13"
    resolved = post(embedded_stack, code, "resolved", "2025-03-13T16:00")
    assert resolved["status"] == 9
    case = embedded_stack.client.get(f"/v1/cases/{code}").json()
    assert case["on_time"] is True and case["due_date"] == "2025-03-13"
    assert case["history"][-1]["details"]["resolution_days"] == 5


def test_pause_over_tet_counts_only_working_days(embedded_stack: Stack) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(
        procedure_code=N[10], received_at="2025-01-20T09:00:00+07:00"))
    code = r.json()["case_code"]
    assert r.json()["due_date"] == "2025-02-10"
    post(embedded_stack, code, "supplement_requested", "2025-01-24T10:00", reason="Thiếu")
    # Paused from Friday 24/1 through Monday 3/2: only 3/2 was a working day (Tết 25/1-2/2).
    assert post(embedded_stack, code, "supplement_received",
                "2025-02-03T09:00")["due_date"] == "2025-02-11"


def test_second_supplement_request_makes_the_case_late(embedded_stack: Stack) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(
        procedure_code=N[10], received_at="2025-03-03T09:00:00+07:00"))
    code = r.json()["case_code"]
    for ask, back in (("2025-03-04T09:00", "2025-03-04T15:00"),
                      ("2025-03-05T09:00", "2025-03-05T15:00")):
        post(embedded_stack, code, "supplement_requested", ask, reason="Thiếu")
        post(embedded_stack, code, "supplement_received", back)
    post(embedded_stack, code, "resolved", "2025-03-06T09:00")
    case = embedded_stack.client.get(f"/v1/cases/{code}").json()
    assert case["supplement_requests"] == 2
    assert case["resolved_at"] < case["due_date"] + "T23:59" and case["on_time"] is False


def test_apology_sets_a_citizen_date_but_the_case_stays_late(embedded_stack: Stack) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(
        procedure_code=N[1], received_at="2025-03-10T09:00:00+07:00", agency_code=CENTRE))
    code = r.json()["case_code"]
    post(embedded_stack, code, "apology_issued", "2025-03-12T09:00",
         new_due_date="2025-03-14", reason="Chờ ý kiến cơ quan thuế")
    post(embedded_stack, code, "resolved", "2025-03-14T09:00")
    case = embedded_stack.client.get(f"/v1/cases/{code}").json()
    assert (case["due_date"], case["citizen_due_date"]) == ("2025-03-11", "2025-03-14")
    assert case["on_time"] is False

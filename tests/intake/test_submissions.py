"""Online submission: registered (status 1), then received at the counter or refused, or
withdrawn by the applicant; the due date is set at receipt, not at submission."""

from typing import Any

from tests.factories import CENTRE, FEE_PROCEDURE, case_body, event_body
from tests.harness import Stack


def submission(**overrides: Any) -> dict[str, Any]:
    body = case_body(**overrides)
    del body["channel"], body["received_at"]
    return {"online_level": "full", "submitted_at": "2026-03-06T21:40:00+07:00", **body}


def test_submitted_then_received_sets_the_due_date_at_receipt(embedded_stack: Stack) -> None:
    client = embedded_stack.client
    r = client.post("/v1/submissions", json=submission(procedure_code=FEE_PROCEDURE))
    assert r.status_code == 201, r.text
    ack = r.json()
    code = ack["case_code"]
    assert code.startswith(f"{CENTRE}-260306-")
    assert (ack["status"], ack["status_name"]) == (1, "Mới đăng ký")
    assert {"received", "refused", "withdrawn", "paid"} <= set(ack["allowed_events"])
    assert "due_date" not in ack
    assert client.get(f"/v1/public/cases/{code}").json()["due_date"] is None

    # Paid online before acceptance, then accepted on Monday (submitted on a Friday night).
    paid = client.post(f"/v1/cases/{code}/events", json=event_body(
        "paid", amount=200000, method="online", portal="national",
        occurred_at="2026-03-06T21:45:00+07:00"))
    assert paid.status_code == 201 and paid.json()["status"] == 1
    received = client.post(f"/v1/cases/{code}/events", json=event_body(
        "received", occurred_at="2026-03-09T08:05:00+07:00"))
    assert received.status_code == 201, received.text
    body = received.json()
    assert (body["status"], body["due_date"]) == (2, "2026-03-23")  # 10 working days
    slip = body["receipt"]
    assert (slip["receipt_date"], slip["channel"], slip["online_level"]) == (
        "2026-03-09", "online", "full")
    assert slip["fee_vnd"] == 200000 and slip["procedure_name"].startswith("Cấp Phiếu")

    again = client.post(f"/v1/cases/{code}/events", json=event_body(
        "received", occurred_at="2026-03-09T08:06:00+07:00"))
    assert again.status_code == 409 and again.json()["current_status"] == 2
    embedded_stack.settled()
    case = client.get(f"/v1/cases/{code}").json()
    assert [h["type"] for h in case["history"]][:3] == ["submitted", "paid", "received"]
    kpi = client.get("/v1/kpis", params={"kpi": ["received", "full_online_share"],
                                         "period": "2026-03-09"}).json()["items"]
    assert {i["kpi"]: i["numerator"] for i in kpi} == {"received": 1, "full_online_share": 1}


def test_a_submission_can_be_refused_or_withdrawn_but_not_resolved(
    embedded_stack: Stack
) -> None:
    client = embedded_stack.client
    codes = [client.post("/v1/submissions", json=submission()).json()["case_code"]
             for _ in range(3)]
    early = client.post(f"/v1/cases/{codes[0]}/events", json=event_body(
        "resolved", occurred_at="2026-03-07T08:00:00+07:00"))
    assert early.status_code == 409 and early.json()["current_status"] == 1
    refused = client.post(f"/v1/cases/{codes[0]}/events", json=event_body(
        "refused", reason="Hồ sơ không hợp lệ", occurred_at="2026-03-09T08:00:00+07:00"))
    assert refused.status_code == 201 and refused.json()["status"] == 3
    withdrawn = client.post(f"/v1/cases/{codes[1]}/events", json=event_body(
        "withdrawn", reason="Nộp nhầm", occurred_at="2026-03-07T08:00:00+07:00"))
    assert withdrawn.status_code == 201 and withdrawn.json()["status"] == 7
    free = client.post(f"/v1/cases/{codes[2]}/events", json=event_body(
        "paid", amount=1000, method="online", occurred_at="2026-03-07T08:00:00+07:00"))
    assert free.status_code == 409 and "no fee obligation" in free.json()["detail"]
    assert "paid" not in free.json()["allowed_events"]
    before = client.post(f"/v1/cases/{codes[2]}/events", json=event_body(
        "received", occurred_at="2026-03-06T21:00:00+07:00"))
    assert before.status_code == 422  # before the submission itself


def test_bad_submissions_are_refused_naming_the_field(embedded_stack: Stack) -> None:
    client = embedded_stack.client
    not_online = client.post("/v1/submissions", json=submission(procedure_code="1.012812"))
    assert not_online.status_code == 422
    assert not_online.json()["errors"][0] == {
        "field": "procedure_code", "rule": "offered_online",
        "message": "procedure 1.012812 is not offered online"}
    level = client.post("/v1/submissions",
                        json=submission(procedure_code="1.012790", online_level="full"))
    assert level.status_code == 422 and level.json()["errors"][0]["rule"] == "offered"
    missing = submission()
    del missing["online_level"]
    r = client.post("/v1/submissions", json=missing)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "online_level"
    body = submission()
    first, retry = (client.post("/v1/submissions", json=body) for _ in range(2))
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json() == retry.json()

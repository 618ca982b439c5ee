"""Recording events on a case: the lifecycle, honest refusals, idempotent retries."""

import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from intake.schemas import CaseReceipt
from services.clock import LOCAL_TZ
from tests.factories import CENTRE, FEE_PROCEDURE, case_body, event_body
from tests.harness import Stack, StackFactory


def receive(stack: Stack, **overrides: object) -> str:
    r = stack.client.post("/v1/cases", json=case_body(**overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["case_code"])


def post(stack: Stack, code: str, type_: str, **fields: object) -> dict:
    r = stack.client.post(f"/v1/cases/{code}/events", json=event_body(type_, **fields))
    return {**r.json(), "http": r.status_code}


def test_full_lifecycle_of_a_fee_case(embedded_stack: Stack) -> None:
    code = receive(embedded_stack, procedure_code=FEE_PROCEDURE)
    transfer = post(embedded_stack, code, "transferred", from_office=CENTRE,
                    to_office="000.00.03.H56", method="electronic")
    assert (transfer["http"], transfer["type"]) == (201, "transferred")
    assert transfer["allowed_events"] and "returned" not in transfer["allowed_events"]
    paid = post(embedded_stack, code, "paid", amount=200000, method="online", portal="national")
    assert paid["http"] == 201
    resolved = post(embedded_stack, code, "resolved", result_digitised=True)
    assert resolved["http"] == 201 and resolved["status_name"] == "Đã xử lý xong"
    returned = post(embedded_stack, code, "returned", method="post")
    assert returned["http"] == 201
    case = embedded_stack.client.get(f"/v1/cases/{code}").json()
    assert case["status"] == 10 and case["status_name"] == "Đã trả kết quả"
    posted = [h["type"] for h in case["history"] if h["source"] == "/motcua/intake"]
    assert posted == ["received", "transferred", "paid", "resolved", "returned"]
    assert case["amount_paid"] == 200000 and case["result_digitised"] is True
    assert case["allowed_events"] == ["rated"] or "rated" in case["allowed_events"]
    public = embedded_stack.client.get(f"/v1/public/cases/{code}").json()
    assert public["status"] == 10
    assert "applicant" not in public and "history" not in public


def test_impossible_events_are_409_naming_status_and_allowed(embedded_stack: Stack) -> None:
    code = receive(embedded_stack)
    early = post(embedded_stack, code, "returned", method="counter")
    assert early["http"] == 409
    assert early["current_status"] == 2
    assert "resolved" in early["allowed_events"] and "returned" not in early["allowed_events"]
    assert "Được tiếp nhận" in early["detail"]
    free = post(embedded_stack, code, "paid", amount=1000, method="counter")
    assert free["http"] == 409 and "no fee obligation" in free["detail"]
    again = embedded_stack.client.post("/v1/cases/" + code + "/events",
                                       json=event_body("received"))
    assert again.status_code == 409
    assert post(embedded_stack, code, "withdrawn", reason="Công dân xin rút")["http"] == 201
    after = post(embedded_stack, code, "resolved")
    assert after["http"] == 409 and after["allowed_events"] == []


def test_missing_or_foreign_fields_are_422(embedded_stack: Stack) -> None:
    code = receive(embedded_stack)
    r = post(embedded_stack, code, "transferred", from_office=CENTRE, method="fax")
    assert r["http"] == 422
    assert {(e["field"], e["rule"]) for e in r["errors"]} == {("to_office", "required"),
                                                              ("method", "enum")}
    r = post(embedded_stack, code, "rated", rating="satisfied", amount=5)
    assert r["http"] == 422 and r["errors"][0]["field"] == "amount"
    r = post(embedded_stack, code, "overdue")
    assert r["http"] == 422 and r["errors"][0]["rule"] == "system_only"
    missing = embedded_stack.client.post(f"/v1/cases/{CENTRE}-990101-0001/events",
                                         json=event_body("resolved"))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_retries_are_applied_once(embedded_stack: Stack) -> None:
    body = case_body()
    first = embedded_stack.client.post("/v1/cases", json=body)
    second = embedded_stack.client.post("/v1/cases", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    code = first.json()["case_code"]
    ev = event_body("resolved")
    a = embedded_stack.client.post(f"/v1/cases/{code}/events", json=ev)
    b = embedded_stack.client.post(f"/v1/cases/{code}/events", json=ev)
    assert (a.status_code, b.status_code) == (201, 200) and a.json() == b.json()
    changed = embedded_stack.client.post(f"/v1/cases/{code}/events",
                                         json={**ev, "result_digitised": True})
    assert changed.status_code == 409
    history = embedded_stack.client.get(f"/v1/cases/{code}").json()["history"]
    assert [h["type"] for h in history].count("resolved") == 1
    # The Idempotency-Key header works like event_id.
    key = str(uuid.uuid4())
    body2 = {k: v for k, v in case_body().items() if k != "event_id"}
    h1 = embedded_stack.client.post("/v1/cases", json=body2, headers={"Idempotency-Key": key})
    h2 = embedded_stack.client.post("/v1/cases", json=body2, headers={"Idempotency-Key": key})
    assert (h1.status_code, h2.status_code) == (201, 200)
    assert h1.json()["case_code"] == h2.json()["case_code"]
    embedded_stack.settled()
    kpi = embedded_stack.client.get("/v1/kpis", params={"kpi": "received",
                                                         "period": "2026-03-02"}).json()
    assert kpi["items"][0]["numerator"] == 2


def test_supplied_case_code_conflicts(embedded_stack: Stack) -> None:
    code = f"{CENTRE}-260302-0042"
    body = {k: v for k, v in case_body(case_code=code).items() if k != "event_id"}
    assert embedded_stack.client.post("/v1/cases", json=body).status_code == 201
    assert embedded_stack.client.post("/v1/cases", json=body).status_code == 200
    other = embedded_stack.client.post("/v1/cases", json={**body, "channel": "postal"})
    assert other.status_code == 409


def test_vietnamese_text_is_stored_nfc(embedded_stack: Stack) -> None:
    code = receive(embedded_stack)
    nfd = unicodedata.normalize("NFD", "Thiếu giấy khai sinh bản chính")
    assert post(embedded_stack, code, "supplement_requested", reason=nfd)["http"] == 201
    history = embedded_stack.client.get(f"/v1/cases/{code}").json()["history"]
    # Routing's transfer of the case may land after it: find the event by type.
    reason = next(h for h in history if h["type"] == "supplement_requested")["details"]["reason"]
    assert reason == unicodedata.normalize("NFC", nfd) and reason != nfd


def test_batch_answers_per_item(embedded_stack: Stack) -> None:
    code = receive(embedded_stack)
    r = embedded_stack.client.post("/v1/events:batch", json={"events": [
        {**event_body("resolved"), "case_code": code},
        {**event_body("returned", method="post"), "case_code": code},
        {**event_body("returned", method="post"), "case_code": code},
        {**event_body("resolved"), "case_code": f"{CENTRE}-990101-0009"},
        {"type": "nonsense", "case_code": code},
    ]})
    assert r.status_code == 207
    assert [i["status"] for i in r.json()["results"]] == [201, 201, 409, 404, 422]


def test_an_event_retried_through_the_other_route_is_answered_as_a_retry(
    embedded_stack: Stack,
) -> None:
    code = receive(embedded_stack)
    body = event_body("transferred", from_office=CENTRE, to_office="000.00.03.H56",
                      method="electronic")
    first = embedded_stack.client.post(f"/v1/cases/{code}/events", json=body)
    assert first.status_code == 201
    again = embedded_stack.client.post("/v1/events:batch",
                                       json={"events": [{**body, "case_code": code}]})
    assert again.status_code == 200
    assert again.json()["results"] == [{"index": 0, "status": 200, "result": first.json()}]
    changed = embedded_stack.client.post("/v1/events:batch", json={"events": [
        {**body, "case_code": code, "method": "paper"}]})
    assert [(r["status"], r["reason"]) for r in changed.json()["results"]] == [
        (409, "idempotency_key_reused")]
    # And the other way round: a batch item's event retried on the case's own route.
    later = event_body("supplement_requested", reason="Thiếu bản sao")
    assert embedded_stack.client.post("/v1/events:batch", json={"events": [
        {**later, "case_code": code}]}).json()["results"][0]["status"] == 201
    assert embedded_stack.client.post(f"/v1/cases/{code}/events",
                                      json=later).status_code == 200
    history = embedded_stack.client.get(f"/v1/cases/{code}").json()["history"]
    assert [h["type"] for h in history].count("transferred") >= 1
    assert [h["event_id"] for h in history].count(body["event_id"]) == 1


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_concurrent_receipts_get_unique_sequential_codes(
    stack_factory: StackFactory, db: str
) -> None:
    stack = stack_factory("embedded", db)
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: receive(stack), range(40)))
    assert len(set(codes)) == 40
    assert sorted(int(c.rsplit("-", 1)[1]) for c in codes) == list(range(1, 41))


def test_the_slip_is_the_receipt_models_json_at_any_offset(embedded_stack: Stack) -> None:
    # The slip is built as JSON directly; times in UTC are written with Z, as pydantic does.
    now = datetime.now(UTC).replace(microsecond=0)
    for received_at in (None, now.isoformat(), now.astimezone(LOCAL_TZ).isoformat(),
                        (now - timedelta(minutes=5, microseconds=1)).isoformat()):
        body = case_body(received_at=... if received_at is None else received_at)
        r = embedded_stack.client.post("/v1/cases", json=body)
        assert r.status_code == 201, r.text
        slip = r.json()
        assert CaseReceipt.model_validate(slip).model_dump(mode="json") == slip
        if received_at is not None and received_at.endswith("+00:00"):
            assert slip["received_at"] == received_at[:-6] + "Z"

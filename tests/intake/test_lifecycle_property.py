"""Random sequences of valid and invalid events against a reference model of DOMAIN.md's
lifecycle table: the recorded status always equals the model's, and intake refuses an event
exactly when the model does. Mostly on intake's domain functions (SQLite, fast), plus a
smaller run over HTTP on the running stack."""

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from intake import service
from intake.models import Case
from intake.schemas import (
    CaseCreate,
    CaseReceipt,
    EventCreate,
    EventResult,
    SubmissionCreate,
    SubmissionReceipt,
)
from services.errors import Conflict, MotcuaError
from tests.harness import Stack
from tests.intake.domain import Domain, make_domain

VN = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 3, 2, 8, 0, tzinfo=VN)
# A commune that handles both procedures itself, so routing never transfers them behind the
# model's back in the HTTP variant: birth registration (free), marital status (3,000 VND).
COMMUNE = "000.00.60.H56"
PROCEDURES = {"1.001193": 0, "1.004873": 3000}


class Model:
    """DOMAIN.md's lifecycle, written from the table (not from intake's code)."""

    OPEN = frozenset({2, 4, 5, 6})

    def __init__(self, fee: int) -> None:
        self.status = 0  # no case yet
        self.fee = fee
        self.requested = 0
        self.paid = 0
        self.digitised = False
        self.rated = False

    def apply(self, kind: str, fields: dict[str, Any]) -> bool:
        """Apply the event if DOMAIN.md allows it; False when it must be refused."""
        s = self.status
        nxt: int | None = None
        if kind == "submitted":
            nxt = 1 if s == 0 else None
        elif kind == "received":
            nxt = 2 if s in (0, 1) else None
        elif kind == "refused":  # refused at reception: before or at receipt
            nxt = 3 if s in (1, 2) else None
        elif kind == "transferred":  # to the handling office: processing starts
            nxt = (4 if s == 2 else s) if s in self.OPEN else None
        elif kind == "supplement_requested":
            nxt = 5 if s in (2, 4) else None
        elif kind == "supplement_received":
            nxt = 4 if s == 5 else None
        elif kind == "payment_requested":
            nxt = 6 if s in (2, 4) else None
        elif kind == "paid":
            owed = max(self.fee, self.requested)
            if s in (1, 2, 4, 6, 9) and owed > 0 and self.paid < owed:
                self.paid += fields["amount"]
                nxt = 4 if s == 6 else s
        elif kind == "resolved":
            if s in (2, 4):
                nxt = 9
                self.digitised = bool(fields.get("result_digitised"))
        elif kind == "result_digitised":
            if s in (9, 10) and not self.digitised:
                self.digitised, nxt = True, s
        elif kind == "returned":
            nxt = 10 if s == 9 else None
        elif kind == "apology_issued":
            nxt = s if s in self.OPEN else None
        elif kind == "withdrawn":  # the applicant may withdraw until processing ends
            nxt = 7 if s in (1, 2, 4, 5, 6) else None
        elif kind == "stopped":
            nxt = 8 if s in self.OPEN else None
        elif kind == "rated" and s in (9, 10) and not self.rated:
            self.rated, nxt = True, s
        if nxt is None:
            return False
        if kind == "payment_requested":
            self.requested += fields["amount"]
        self.status = nxt
        return True


KINDS = ["received", "refused", "transferred", "supplement_requested", "supplement_received",
         "payment_requested", "paid", "resolved", "result_digitised", "returned",
         "apology_issued", "withdrawn", "stopped", "rated", "submitted"]


def fields_for(kind: str, i: int, draw_amount: int, digitised: bool) -> dict[str, Any]:
    return {
        "transferred": {"from_office": COMMUNE, "to_office": "000.00.02.H56",
                        "method": "electronic"},
        "supplement_requested": {"reason": "Thiếu giấy tờ"},
        "payment_requested": {"amount": draw_amount},
        "paid": {"amount": draw_amount, "method": "counter"},
        "resolved": {"result_digitised": digitised},
        "returned": {"method": "counter"},
        # Each apology moves the citizen's date later than any before it.
        "apology_issued": {"new_due_date": (date(2027, 1, 1) + timedelta(days=i)).isoformat(),
                           "reason": "Quá hạn"},
        "refused": {"reason": "Không đủ điều kiện"},
        "withdrawn": {"reason": "Công dân xin rút"},
        "stopped": {"reason": "Dừng xử lý"},
        "rated": {"rating": "satisfied"},
    }.get(kind, {})


step = st.tuples(st.sampled_from(KINDS), st.sampled_from([1000, 3000, 50_000]), st.booleans(),
                 st.booleans())
scenario = st.tuples(
    st.sampled_from(sorted(PROCEDURES)),
    st.booleans(),  # submitted online first, or received at the counter
    st.lists(step, min_size=1, max_size=25),
)


class Driver:
    """Posts events through intake's domain functions (or HTTP) and reports accepted/refused."""

    def __init__(self, domain: Domain | None = None, stack: Stack | None = None) -> None:
        self.domain, self.stack = domain, stack

    def start(self, procedure: str, online: bool, at: datetime) -> str:
        base = {"event_id": str(uuid.uuid4()), "agency_code": COMMUNE,
                "procedure_code": procedure}
        if online:
            body = {**base, "online_level": "partial", "submitted_at": at.isoformat()}
            url, fn, schema = "/v1/submissions", service.submit_case, SubmissionCreate
        else:
            body = {**base, "channel": "counter", "received_at": at.isoformat()}
            url, fn, schema = "/v1/cases", service.receive_case, CaseCreate
        if self.stack is not None:
            r = self.stack.client.post(url, json=body)
            assert r.status_code == 201, r.text
            answer = r.json()
        else:
            assert self.domain is not None
            answer, _created = self.domain.run(fn, data=schema.model_validate(body))
        # Built as JSON directly: exactly the response model's JSON form.
        model = SubmissionReceipt if online else CaseReceipt
        assert model.model_validate(answer).model_dump(mode="json") == answer
        return str(answer["case_code"])

    def post(self, code: str, body: dict[str, Any]) -> tuple[bool, Any]:
        if self.stack is not None:
            r = self.stack.client.post(f"/v1/cases/{code}/events", json=body)
            assert r.status_code in (200, 201, 409), r.text
            return r.status_code != 409, r.json()
        assert self.domain is not None
        try:
            result, _created = self.domain.run(service.record_event, case_code=code,
                                               data=EventCreate.model_validate(body))
        except Conflict as exc:
            return False, {"current_status": exc.extra["current_status"],
                           "allowed_events": exc.extra["allowed_events"]}
        except MotcuaError as exc:  # anything but a 409 is a test bug
            raise AssertionError(f"{body}: {exc.status} {exc.detail}") from exc
        return True, result

    def status(self, code: str) -> int:
        if self.stack is not None:
            return int(self.stack.client.get(f"/v1/cases/{code}").json()["status"])
        assert self.domain is not None
        with self.domain.engine.connect() as conn:
            return int(conn.execute(select(Case.status).where(Case.case_code == code))
                       .scalar_one())


def check(driver: Driver, procedure: str, online: bool, steps: list[Any]) -> None:
    model = Model(PROCEDURES[procedure])
    at = START
    model.apply("submitted" if online else "received", {})
    code = driver.start(procedure, online, at)
    last: dict[str, Any] | None = None
    for i, (kind, amount, digitised, repeat) in enumerate(steps):
        at += timedelta(hours=5)
        if repeat and last is not None:
            # The same event again, same id: applied once, same answer.
            before = driver.status(code)
            ok, _ = driver.post(code, last)
            assert ok and driver.status(code) == before
            continue
        body = {"event_id": str(uuid.uuid4()), "type": kind, "occurred_at": at.isoformat(),
                **fields_for(kind, i, amount, digitised)}
        expected = model.apply(kind, body)
        ok, answer = driver.post(code, body)
        assert ok == expected, (kind, model.status, answer)
        if not ok:
            assert answer["current_status"] == model.status
            assert kind not in answer["allowed_events"]
        else:
            last = body
            # The answer is built as JSON directly: exactly the response model's JSON form.
            assert EventResult.model_validate(answer).model_dump(mode="json") == answer
            assert answer["status"] == model.status
        assert driver.status(code) == model.status, (kind, steps)


@pytest.fixture(scope="module")
def domain(tmp_path_factory: pytest.TempPathFactory) -> Domain:
    path: Path = tmp_path_factory.mktemp("lifecycle")
    return make_domain(path, START + timedelta(days=400))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario)
def test_domain_status_follows_the_reference_model(domain: Domain, case: Any) -> None:
    procedure, online, steps = case
    check(Driver(domain=domain), procedure, online, steps)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario)
def test_http_status_follows_the_reference_model(embedded_stack: Stack, case: Any) -> None:
    procedure, online, steps = case
    check(Driver(stack=embedded_stack), procedure, online, steps[:12])

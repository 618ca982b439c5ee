"""Intake's domain functions: receive a case, record an event on it, read it back.

The write functions (receive, submit, record) work on a Batch (intake.batch): they read what
they need from it, check everything, and only then append the case, its history row and the
outgoing event, which the batch writes in the caller's transaction. The writer (intake.writer)
runs many requests' items in one batch; receive_case, submit_case and record_event run one item
in a session's transaction.
"""

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import orjson
from sqlalchemy import select
from sqlmodel import Session, col

from contracts import (
    EVENT_CLASSES,
    CaseEvent,
    CaseReceived,
    CaseSubmitted,
    new_envelope,
)
from contracts.types import OnlineLevel
from intake import lifecycle
from intake.batch import Batch
from intake.codes import parse_case_code
from intake.models import CATALOGUE, Applicant, Case, CaseEventRecord
from intake.pii import PiiCipher
from intake.schemas import (
    ApplicantIn,
    ApplicantOut,
    CaseCreate,
    CaseDetail,
    CasePublic,
    EventCreate,
    HistoryItem,
    SubmissionCreate,
    SubmissionReceipt,
)
from intake.state import CaseState
from registry.calendar import WorkingCalendar, due_date, is_on_time, resolution_days
from registry.catalogue import Agency, Catalogue, Procedure
from registry.store import CatalogueStore
from services.clock import LOCAL_TZ, Clock
from services.errors import Conflict, MotcuaError, NotFound, ValidationFailed
from services.security import Principal
from services.security.scopes import check_agencies

PAYLOADS: dict[str, type[CaseEvent]] = {cls.NAME: cls for cls in EVENT_CLASSES}
EXTRA_FIELDS = ("from_office", "to_office", "method", "reason", "amount", "portal",
                "result_digitised", "new_due_date", "rating")
# Per type: required extra fields, optional ones, and the methods allowed (API.md).
RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "received": ((), (), ()),
    "transferred": (("from_office", "to_office", "method"), (), ("electronic", "paper")),
    "supplement_requested": (("reason",), (), ()),
    "supplement_received": ((), (), ()),
    "payment_requested": (("amount",), (), ()),
    "paid": (("amount", "method"), ("portal",), ("online", "counter", "post")),
    "resolved": ((), ("result_digitised",), ()),
    "result_digitised": ((), (), ()),
    "returned": (("method",), (), ("counter", "post", "online")),
    "apology_issued": (("new_due_date", "reason"), (), ()),
    "refused": (("reason",), (), ()),
    "withdrawn": (("reason",), (), ()),
    "stopped": (("reason",), (), ()),
    "rated": (("rating",), (), ()),
}
SYSTEM_ONLY = frozenset({"overdue"})
# The write functions see CaseState; reads build their answers from the mapped row.
CaseLike = Case | CaseState


@dataclass(frozen=True)
class IntakeDeps:
    calendar: WorkingCalendar
    clock: Clock
    store: CatalogueStore = CATALOGUE
    clock_skew: timedelta = timedelta(seconds=120)
    source: str = "/motcua/intake"
    # Encrypts applicant data at rest; None only in domain tests that store no applicant.
    pii: PiiCipher | None = None

    def applicant(self, case_code: str, data: ApplicantIn) -> dict[str, Any]:
        """The applicant's row, sealed: never stored plain."""
        if self.pii is None:
            raise RuntimeError("no PII cipher configured: applicant data is never stored plain")
        return self.pii.sealed({"case_code": case_code, **data.model_dump()})

    def catalogue(self, session: Session) -> Catalogue:
        """The agency registry and procedure catalogue, with history, as intake stores them."""
        return self.store.catalogue(session)


def _error(field: str, rule: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": field, "rule": rule, "message": message}])


def _fingerprint(data: Any, *, exclude: frozenset[str] = frozenset()) -> str:
    # Without the applicant: a hash of an id number beside the case's own fields could be
    # reversed by trying every number, which would undo its encryption at rest.
    body = data.model_dump(mode="json", exclude={"event_id", "applicant", *exclude},
                           exclude_none=True)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


_CASE_CODE = frozenset({"case_code"})


def _local(ts: datetime) -> date:
    return ts.astimezone(LOCAL_TZ).date()


def _check_time(deps: IntakeDeps, field: str, value: datetime | None) -> datetime:
    now = deps.clock()
    if value is None:
        return now
    if value > now + deps.clock_skew:
        raise _error(field, "not_in_future", f"{field} {value.isoformat()} is in the future")
    return value


Result = tuple[dict[str, Any], bool]


@dataclass(frozen=True)
class NeedsCode:
    """An item checked and ready but for its case code. A batch hands out codes per agency and
    day once every item is checked, so that a refused item never takes a number."""

    agency_code: str
    day: date
    finish: Callable[[str], Result]


def _scope(batch: Batch, scope: Principal | None, agency_code: str) -> None:
    if scope is not None:
        check_agencies(scope, batch.tree(), [agency_code])


# --- receive -------------------------------------------------------------------------------


def receive(
    batch: Batch, deps: IntakeDeps, data: CaseCreate, idempotency_key: str | None = None,
    scope: Principal | None = None,
) -> Result | NeedsCode:
    """Receive a case; (appointment slip, created). A retry answers (same slip, False)."""
    _scope(batch, scope, data.agency_code)
    event_id = str(data.event_id) if data.event_id else idempotency_key
    fingerprint = _fingerprint(data)
    if (replayed := batch.replay(event_id, fingerprint)) is not None:
        return replayed, False

    catalogue = batch.catalogue
    received_at = _check_time(deps, "received_at", data.received_at)
    received_on = _local(received_at)
    agency, procedure = _lookup(catalogue, data.agency_code, data.procedure_code, received_on)
    if data.channel == "online":
        if data.online_level is None:
            raise _error("online_level", "required_if_online",
                         "online_level (partial | full) is required when channel is online")
        _check_offered(procedure, data.online_level)
    elif data.online_level is not None:
        raise _error("online_level", "only_if_online",
                     "online_level is only allowed when channel is online")

    replayed_first = _supplied_code(batch, data.case_code, agency.code, fingerprint,
                                    first_type="received")
    if replayed_first is not None:
        return replayed_first, False
    due = due_date(calendar=deps.calendar, received_on=received_on,
                   processing_days=procedure.processing_days, pauses=())
    district = catalogue.district_of(agency, on=received_on)

    def finish(case_code: str) -> Result:
        case = CaseState(
            case_code=case_code,
            agency_code=agency.code,
            province_code=agency.province,
            district_code=district,
            procedure_code=procedure.code,
            procedure_name=procedure.name,
            field_code=procedure.field_code,
            channel=data.channel.value,
            online_level=data.online_level.value if data.online_level else None,
            return_by_post=data.return_by_post,
            status=2,
            received_at=received_at,
            receipt_date=received_on,
            processing_days=procedure.processing_days,
            fee_vnd=procedure.fee_vnd,
            due_date=due,
            updated_at=deps.clock(),
            event_count=1,
        )
        batch.add_case(case)
        if data.applicant is not None:
            batch.applicants.append(deps.applicant(case_code, data.applicant))
        receipt = _slip(case, agency)
        payload = CaseReceived(case_code=case_code, occurred_at=received_at, status=2,
                               **_received_fields(case))
        _append(batch, deps, case, payload, event_id or str(uuid.uuid4()), fingerprint,
                receipt, source=deps.source, seq=1)
        return receipt, True

    return _coded(data.case_code, agency.code, received_on, finish)


def _coded(supplied: str | None, agency_code: str, day: date,
           finish: Callable[[str], Result]) -> Result | NeedsCode:
    """Finish now with the code the counter supplied, or wait for the batch's numbering."""
    return finish(supplied) if supplied is not None else NeedsCode(agency_code, day, finish)


def settle(batch: Batch, staged: list[Result | NeedsCode | MotcuaError]
           ) -> list[Result | MotcuaError]:
    """Give the items waiting for a case code their codes, in item order."""
    wanted = codes_wanted(staged)
    return assign_codes(staged, batch.new_codes(wanted) if wanted else {})


def codes_wanted(staged: list[Result | NeedsCode | MotcuaError]) -> Counter[tuple[str, date]]:
    """How many new case codes the staged items need, per (agency, day)."""
    return Counter((s.agency_code, s.day) for s in staged if isinstance(s, NeedsCode))


def assign_codes(staged: list[Result | NeedsCode | MotcuaError],
                 codes: dict[tuple[str, date], list[str]]) -> list[Result | MotcuaError]:
    """Finish the items waiting for a code with `codes` (from Batch.new_codes), in order."""
    given = {key: iter(got) for key, got in codes.items()}
    return [s.finish(next(given[(s.agency_code, s.day)])) if isinstance(s, NeedsCode) else s
            for s in staged]


def run_one(session: Session, deps: IntakeDeps, fn: Callable[..., Result | NeedsCode],
            **kwargs: Any) -> Result:
    """One item in the caller's transaction (tests, scripts): a batch of one."""
    batch = Batch(session.connection(), deps.store)
    outcome = settle(batch, [fn(batch, deps, **kwargs)])[0]
    if isinstance(outcome, MotcuaError):
        raise outcome
    batch.write()
    return outcome


def receive_case(
    *, session: Session, deps: IntakeDeps, data: CaseCreate, idempotency_key: str | None = None
) -> Result:
    return run_one(session, deps, receive, data=data, idempotency_key=idempotency_key)


def _lookup(
    catalogue: Catalogue, agency_code: str, procedure_code: str, on: date
) -> tuple[Agency, Procedure]:
    """The agency and the procedure version in force on `on`, or a 422 naming the field."""
    agency = catalogue.agency(agency_code, on=on)
    if agency is None:
        if catalogue.agency(agency_code) is None:
            raise _error("agency_code", "registered", f"agency {agency_code} is not registered")
        raise _error("agency_code", "active",
                     f"agency {agency_code} is not in the registry on {on.isoformat()}")
    procedure = catalogue.procedure(procedure_code, on=on)
    if procedure is None:
        raise _error("procedure_code", "in_catalogue",
                     f"procedure {procedure_code} is not in the catalogue"
                     + ("" if catalogue.procedure(procedure_code) is None
                        else f" on {on.isoformat()}"))
    if not agency.active_on(on):
        raise _error("agency_code", "active",
                     f"agency {agency.code} does not exist on {on.isoformat()}"
                     + (f"; its successor is {agency.successor}" if agency.successor else ""))
    return agency, procedure


def _check_offered(procedure: Procedure, level: OnlineLevel) -> None:
    if procedure.online_levels and level not in procedure.online_levels:
        raise _error("online_level", "offered",
                     f"procedure {procedure.code} is not offered online at level "
                     f"{level}; offered: {list(procedure.online_levels)}")


def _supplied_code(
    batch: Batch, case_code: str | None, agency_code: str, fingerprint: str, *,
    first_type: str,
) -> dict[str, Any] | None:
    """Check a case code the counter supplied; the stored answer if this is a retry."""
    if case_code is None:
        return None
    code_agency, _code_day = parse_case_code(case_code)
    if code_agency != agency_code:
        raise _error("case_code", "agency_prefix",
                     f"case_code must start with the receiving agency {agency_code}")
    existing = batch.case(case_code)
    if existing is None:
        return None
    first = batch.first_event(case_code)
    if first is not None and first[0] == first_type and first[1] == fingerprint:
        return first[2]
    raise Conflict(f"case {case_code} already exists with a different body",
                   current_status=existing.status)


def _slip(case: CaseLike, agency: Agency) -> dict[str, Any]:
    """What the appointment slip prints, from the case as received: CaseReceipt's JSON form,
    built as such (validating the model to dump it again cost 4.7 µs a receipt; a test holds
    the two equal)."""
    assert case.received_at is not None and case.receipt_date is not None
    assert case.due_date is not None
    return {
        "case_code": case.case_code, "status": 2, "status_name": lifecycle.STATUS_NAMES[2],
        "agency_code": agency.code, "agency_name": agency.name,
        "procedure_code": case.procedure_code, "procedure_name": case.procedure_name,
        "field_code": case.field_code, "channel": case.channel or "",
        "online_level": case.online_level, "received_at": _json_time(case.received_at),
        "receipt_date": case.receipt_date.isoformat(), "due_date": case.due_date.isoformat(),
        "processing_days": case.processing_days, "fee_vnd": case.fee_vnd,
        "fee_required": case.fee_vnd > 0, "return_by_post": case.return_by_post,
    }


def _json_time(at: datetime) -> str:
    """An aware time as pydantic writes it in JSON: ISO 8601, UTC as Z."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _received_fields(case: CaseLike) -> dict[str, Any]:
    """The attribution and terms a received event carries, copied from the case."""
    return {
        "agency_code": case.agency_code, "province_code": case.province_code,
        "district_code": case.district_code, "procedure_code": case.procedure_code,
        "field_code": case.field_code, "channel": case.channel,
        "online_level": case.online_level, "return_by_post": case.return_by_post,
        "processing_days": case.processing_days, "fee_vnd": case.fee_vnd,
        "due_date": case.due_date,
    }


# --- online submission ---------------------------------------------------------------------


def submit(
    batch: Batch, deps: IntakeDeps, data: SubmissionCreate, idempotency_key: str | None = None,
    scope: Principal | None = None,
) -> Result | NeedsCode:
    """Register a case submitted online (status 1): not yet accepted, no due date yet.

    The reception counter later records `received` on it (the due date is set then, from the
    procedure version in force on the receipt date) or `refused`; the applicant may withdraw.
    The case code is taken on the submission date, as the portal prints it at submission.
    """
    _scope(batch, scope, data.agency_code)
    event_id = str(data.event_id) if data.event_id else idempotency_key
    fingerprint = _fingerprint(data)
    if (replayed := batch.replay(event_id, fingerprint)) is not None:
        return replayed, False
    catalogue = batch.catalogue
    submitted_at = _check_time(deps, "submitted_at", data.submitted_at)
    submitted_on = _local(submitted_at)
    agency, procedure = _lookup(catalogue, data.agency_code, data.procedure_code, submitted_on)
    if not procedure.online_levels:
        raise _error("procedure_code", "offered_online",
                     f"procedure {procedure.code} is not offered online")
    _check_offered(procedure, data.online_level)
    replayed_first = _supplied_code(batch, data.case_code, agency.code, fingerprint,
                                    first_type="submitted")
    if replayed_first is not None:
        return replayed_first, False
    district = catalogue.district_of(agency, on=submitted_on)

    def finish(case_code: str) -> Result:
        case = CaseState(
            case_code=case_code, agency_code=agency.code, province_code=agency.province,
            district_code=district, procedure_code=procedure.code,
            procedure_name=procedure.name, field_code=procedure.field_code, channel="online",
            online_level=data.online_level.value, return_by_post=data.return_by_post,
            status=1, submitted_at=submitted_at, processing_days=procedure.processing_days,
            fee_vnd=procedure.fee_vnd, updated_at=deps.clock(), event_count=1,
        )
        batch.add_case(case)
        if data.applicant is not None:
            batch.applicants.append(deps.applicant(case_code, data.applicant))
        answer = SubmissionReceipt(
            case_code=case_code, status=1, status_name=lifecycle.STATUS_NAMES[1],
            agency_code=agency.code, agency_name=agency.name, procedure_code=procedure.code,
            procedure_name=procedure.name, online_level=data.online_level.value,
            submitted_at=submitted_at, processing_days=procedure.processing_days,
            fee_vnd=procedure.fee_vnd, allowed_events=_allowed(case),
        ).model_dump(mode="json")
        payload = CaseSubmitted(case_code=case_code, occurred_at=submitted_at, status=1,
                                agency_code=agency.code, procedure_code=procedure.code,
                                online_level=data.online_level)
        _append(batch, deps, case, payload, event_id or str(uuid.uuid4()), fingerprint,
                answer, source=deps.source, seq=1)
        return answer, True

    return _coded(data.case_code, agency.code, submitted_on, finish)


def submit_case(
    *, session: Session, deps: IntakeDeps, data: SubmissionCreate,
    idempotency_key: str | None = None,
) -> Result:
    return run_one(session, deps, submit, data=data, idempotency_key=idempotency_key)


def _receive_submitted(
    catalogue: Catalogue, deps: IntakeDeps, case: CaseState, at: datetime
) -> dict[str, Any]:
    """Accept an online submission: the terms in force on the receipt date, and a due date."""
    day = _local(at)
    agency, procedure = _lookup(catalogue, case.agency_code, case.procedure_code, day)
    case.received_at = at
    case.receipt_date = day
    case.district_code = catalogue.district_of(agency, on=day)
    case.procedure_name = procedure.name
    case.processing_days = procedure.processing_days
    case.fee_vnd = procedure.fee_vnd
    case.due_date = due_date(calendar=deps.calendar, received_on=day,
                             processing_days=procedure.processing_days, pauses=())
    return _received_fields(case)


# --- record an event -----------------------------------------------------------------------


def record(
    batch: Batch,
    deps: IntakeDeps,
    case_code: str,
    data: EventCreate,
    idempotency_key: str | None = None,
    source: str | None = None,
    scope: Principal | None = None,
) -> Result:
    """Apply one event to a case; (result, created). A retry answers (same result, False)."""
    event_id = str(data.event_id) if data.event_id else idempotency_key
    # The case is the path's, or the batch item's own: the same event posted either way (a
    # retry through the other route) has the same fingerprint.
    fingerprint = _fingerprint(data, exclude=_CASE_CODE)
    # The case first (locked), then the earlier answer: a copy of this very event committed by
    # another process while we waited for the lock is answered as the retry it is.
    stored = batch.case(case_code)
    if stored is not None:
        _scope(batch, scope, stored.agency_code)
    if (replayed := batch.replay(event_id, fingerprint)) is not None:
        return replayed, False
    system = source is not None and source != deps.source
    catalogue = batch.catalogue
    _check_fields(catalogue, data, system=system)
    occurred_at = _check_time(deps, "occurred_at", data.occurred_at)
    if stored is None:
        raise NotFound(f"case {case_code} does not exist")
    case = stored.copy()
    new_status = lifecycle.next_status(data.type, case.status)
    if new_status is None:
        raise _not_allowed(case, data.type)
    started = case.received_at or case.submitted_at
    if started is not None and occurred_at < started:
        raise _error("occurred_at", "after_receipt",
                     f"occurred_at is before the case was received ({started.isoformat()})")
    extra = _apply(deps, catalogue, case, data, occurred_at)
    case.status = new_status
    case.updated_at = deps.clock()
    case.event_count += 1
    payload = PAYLOADS[data.type](
        case_code=case.case_code, occurred_at=occurred_at, status=new_status, **extra
    )
    eid = event_id or str(uuid.uuid4())
    response = _event_result(eid, case, data.type, catalogue)
    _append(batch, deps, case, payload, eid, fingerprint, response,
            source=source or deps.source, seq=case.event_count)
    batch.put_case(case)
    return response, True


def record_event(
    *,
    session: Session,
    deps: IntakeDeps,
    case_code: str,
    data: EventCreate,
    idempotency_key: str | None = None,
    source: str | None = None,
) -> Result:
    return run_one(session, deps, record, case_code=case_code, data=data,
                   idempotency_key=idempotency_key, source=source)


def _agency_of(catalogue: Catalogue, case: CaseLike) -> Agency:
    agency = catalogue.agency(case.agency_code, on=case.receipt_date)
    assert agency is not None, "checked when the case was received"
    return agency


def _event_result(event_id: str, case: CaseState, event_type: str,
                  catalogue: Catalogue) -> dict[str, Any]:
    """EventResult in its JSON form, built as such: validating the model only to dump it again
    cost 3 µs an event (docs/benchmarks.md, ninth pass); a test holds the two equal."""
    return {
        "event_id": event_id, "case_code": case.case_code, "type": event_type,
        "status": case.status, "status_name": lifecycle.STATUS_NAMES[case.status],
        "due_date": case.due_date.isoformat() if case.due_date is not None else None,
        "allowed_events": _allowed(case),
        "receipt": (_slip(case, _agency_of(catalogue, case)) if event_type == "received"
                    else None),
    }


def _allowed(case: CaseLike) -> list[str]:
    """What a counter may record next: the status allows it and the case has not had it yet."""
    owed = max(case.fee_vnd, case.amount_requested)
    return list(_allowed_when(case.status, owed == 0 or case.amount_paid >= owed,
                              case.result_digitised, case.rated))


@cache
def _allowed_when(status: int, paid: bool, digitised: bool, rated: bool) -> tuple[str, ...]:
    # Every answer lists these: worked out once per combination (a few dozen), not per event.
    spent = {"paid": paid, "result_digitised": digitised, "rated": rated}
    return tuple(e for e in lifecycle.allowed_events(status)
                 if e not in SYSTEM_ONLY and not spent.get(e, False))


def _not_allowed(case: CaseLike, event: str, why: str | None = None) -> Conflict:
    allowed = _allowed(case)
    name = lifecycle.STATUS_NAMES[case.status]
    detail = why or (f"'{event}' is not allowed while the case is in status {case.status} "
                     f"({name}); allowed: {', '.join(allowed) or 'none (terminal)'}")
    return Conflict(detail, current_status=case.status, current_status_name=name,
                    allowed_events=allowed)


def _check_fields(catalogue: Catalogue, data: EventCreate, *, system: bool) -> None:
    if data.type in SYSTEM_ONLY and not system:
        raise _error("type", "system_only", f"'{data.type}' events are raised by motcua itself")
    if data.type == "submitted":
        return  # refused by the state machine with a 409 naming the status
    required, optional, methods = RULES.get(data.type, ((), (), ()))
    errors = []
    for name in required:
        if getattr(data, name) is None:
            errors.append({"field": name, "rule": "required",
                           "message": f"{name} is required for '{data.type}'"})
    for name in EXTRA_FIELDS:
        if name not in required and name not in optional and getattr(data, name) is not None:
            errors.append({"field": name, "rule": "not_allowed",
                           "message": f"{name} is not a field of '{data.type}'"})
    if methods and data.method is not None and data.method not in methods:
        errors.append({"field": "method", "rule": "enum",
                       "message": f"method must be one of {', '.join(methods)}"})
    if data.type == "paid" and data.portal is not None and data.method != "online":
        errors.append({"field": "portal", "rule": "only_if_online",
                       "message": "portal is only given for online payments"})
    for name in ("from_office", "to_office"):
        code = getattr(data, name)
        if code is not None and catalogue.agency(code) is None:
            errors.append({"field": name, "rule": "registered",
                           "message": f"agency {code} is not registered"})
    if errors:
        raise ValidationFailed(
            "Invalid field(s): " + ", ".join(e["field"] for e in errors), errors=errors
        )


def _apply(
    deps: IntakeDeps, catalogue: Catalogue, case: CaseState, data: EventCreate, at: datetime
) -> dict[str, Any]:
    """Update the case for the event and return the payload's event-specific fields."""
    day = _local(at)
    t = data.type
    if t == "received":
        return _receive_submitted(catalogue, deps, case, at)
    if t == "transferred":
        return {"from_office": data.from_office, "to_office": data.to_office,
                "method": data.method}
    if t == "supplement_requested":
        case.supplement_requests += 1
        case.paused_on = day
        return {"reason": data.reason}
    if t == "supplement_received":
        paused_on = case.paused_on or day
        case.pauses = [*case.pauses, [paused_on.isoformat(), day.isoformat()]]
        case.paused_on = None
        case.due_date = _due(deps, case)
        return {"due_date": case.due_date}
    if t == "payment_requested":
        case.amount_requested += data.amount or 0
        return {"amount": data.amount}
    if t == "paid":
        owed = max(case.fee_vnd, case.amount_requested)
        if owed == 0:
            raise _not_allowed(case, t, "the case has no fee obligation (its procedure is free "
                                        "and no payment was requested)")
        if case.amount_paid >= owed:
            raise _not_allowed(case, t, f"the fee of {owed} VND is already paid")
        case.amount_paid += data.amount or 0
        return {"amount": data.amount, "method": data.method, "portal": data.portal}
    if t == "resolved":
        received_on = case.receipt_date or day
        pauses = _pauses(case)
        case.resolved_at = at
        case.on_time = is_on_time(resolved_on=day, due=case.due_date or day,
                                  supplement_requests=case.supplement_requests)
        case.result_digitised = bool(data.result_digitised)
        return {
            "result_digitised": case.result_digitised,
            "on_time": case.on_time,
            "resolution_days": resolution_days(calendar=deps.calendar, received_on=received_on,
                                               resolved_on=day, pauses=pauses),
        }
    if t == "result_digitised":
        if case.result_digitised:
            raise _not_allowed(case, t, "the result is already digitised")
        case.result_digitised = True
        return {}
    if t == "returned":
        return {"method": data.method}
    if t == "apology_issued":
        current = case.citizen_due_date or case.due_date
        if data.new_due_date is None or (current is not None and data.new_due_date <= current):
            raise _error("new_due_date", "after_due_date",
                         f"new_due_date must be after the current due date {current}")
        case.citizen_due_date = data.new_due_date
        return {"new_due_date": data.new_due_date, "reason": data.reason}
    if t in ("refused", "withdrawn", "stopped"):
        return {"reason": data.reason}
    if t == "rated":
        if case.rated:
            raise _not_allowed(case, t, "the case is already rated")
        case.rated = True
        return {"rating": data.rating}
    if t == "overdue":
        if case.due_date is None or case.due_date >= day:
            raise _not_allowed(case, t, f"the case is not past its due date {case.due_date} "
                                        f"on {day}")
        if case.overdue_notified_for == case.due_date:
            raise _not_allowed(case, t, "overdue was already raised for this due date")
        case.overdue_notified_for = case.due_date
        return {"due_date": case.due_date}
    raise _not_allowed(case, t)


def _pauses(case: CaseLike) -> list[tuple[date, date]]:
    return [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in case.pauses]


def _due(deps: IntakeDeps, case: CaseLike) -> date:
    return due_date(calendar=deps.calendar, received_on=case.receipt_date or date.today(),
                    processing_days=case.processing_days, pauses=_pauses(case))


def _append(
    batch: Batch, deps: IntakeDeps, case: CaseState, payload: CaseEvent, event_id: str,
    fingerprint: str, response: dict[str, Any], *, source: str, seq: int,
) -> None:
    now = deps.clock()
    batch.add_event(
        {"event_id": event_id, "case_code": case.case_code, "seq": seq, "type": payload.NAME,
         "occurred_at": payload.occurred_at, "recorded_at": now, "source": source,
         "status_after": payload.status or 0, "details": payload.details(),
         "fingerprint": fingerprint, "response": response},
        new_envelope(payload, source=deps.source, event_id=event_id, time=now, sequence=seq),
    )


# --- read ----------------------------------------------------------------------------------


def get_case(*, session: Session, case_code: str, pii: PiiCipher | None = None) -> CaseDetail:
    """The case with its history; with a cipher, also the applicant (decrypted)."""
    case = session.get(Case, case_code)
    if case is None:
        raise NotFound(f"case {case_code} does not exist")
    rows = session.execute(
        select(CaseEventRecord).where(col(CaseEventRecord.case_code) == case_code)
        .order_by(col(CaseEventRecord.seq))
    ).scalars()
    history = [
        HistoryItem(event_id=r.event_id, type=r.type, occurred_at=r.occurred_at,
                    recorded_at=r.recorded_at, source=r.source, status=r.status_after,
                    details=r.details)
        for r in rows
    ]
    return CaseDetail(
        **_public_fields(case),
        field_code=case.field_code,
        channel=case.channel,
        online_level=case.online_level,
        return_by_post=case.return_by_post,
        processing_days=case.processing_days,
        fee_vnd=case.fee_vnd,
        amount_paid=case.amount_paid,
        supplement_requests=case.supplement_requests,
        on_time=case.on_time,
        result_digitised=case.result_digitised,
        allowed_events=_allowed(case),
        history=history,
        applicant=_applicant(session, case_code, pii),
    )


def _applicant(session: Session, case_code: str, pii: PiiCipher | None) -> ApplicantOut | None:
    row = session.get(Applicant, case_code) if pii is not None else None
    return ApplicantOut.model_validate(pii.open(row)) if pii is not None and row else None


def get_public_case(*, session: Session, case_code: str) -> CasePublic:
    case = session.get(Case, case_code)
    if case is None:
        raise NotFound(f"case {case_code} does not exist")
    return CasePublic(**_public_fields(case))


def _public_fields(case: CaseLike) -> dict[str, Any]:
    return {
        "case_code": case.case_code,
        "status": case.status,
        "status_name": lifecycle.STATUS_NAMES[case.status],
        "procedure_code": case.procedure_code,
        "procedure_name": case.procedure_name,
        "agency_code": case.agency_code,
        "received_at": case.received_at,
        "due_date": case.due_date,
        "citizen_due_date": case.citizen_due_date,
        "resolved_at": case.resolved_at,
    }

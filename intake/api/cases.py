"""Cases: receive, record events (one or a batch), read back, public look-up."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import ValidationError

from contracts.types import CaseCode
from intake import service
from intake.access import actor, needs_check, require_case
from intake.audit import Note
from intake.schemas import (
    BatchEventCreate,
    BatchRequest,
    CaseCreate,
    CaseDetail,
    CasePublic,
    CaseReceipt,
    EventCreate,
    EventResult,
    SubmissionCreate,
    SubmissionReceipt,
)
from intake.uow import IntakeDep, intake_of
from intake.writer import Item
from services.direct_route import DirectRoute
from services.errors import Forbidden, MotcuaError, ValidationFailed
from services.security import Principal
from services.security.policy import CaseReaderDep, CounterDep, public, security_of

# DirectRoute: the write routes are intake's hot path (services/direct_route.py).
router = APIRouter(prefix="/v1", tags=["cases"], route_class=DirectRoute)
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=64, description="Same as body event_id."),
]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"content": {"application/problem+json": {}}} for s in (401, 403, 404, 409, 413, 422, 429)
}


def _scope(principal: Principal) -> Principal | None:
    """The principal whose agency scope the writer checks, or None for unscoped clients."""
    return principal if needs_check(principal) else None


async def _write(request: Request, item: Item) -> Response:
    try:
        body, created = await intake_of(request).submit_one(item)
    except Forbidden:
        security_of(request).refuse(403, "scope")
        raise
    # The answer is already the response model's JSON form (or the stored copy of it): sent
    # as it is, not validated against the model and serialised again (a tenth of the route).
    return Response(orjson.dumps(body), status_code=201 if created else 200,
                    media_type="application/json")


@router.post("/cases", status_code=201, response_model=CaseReceipt, responses=PROBLEMS,
             summary="Receive a case (tiếp nhận hồ sơ)")
async def receive_case(
    data: CaseCreate, principal: CounterDep, request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    note = Note(actor(request, principal), "case.received", case_code=data.case_code)
    return await _write(request, Item(service.receive, {
        "data": data, "idempotency_key": idempotency_key, "scope": _scope(principal)}, note))


@router.post("/submissions", status_code=201, response_model=SubmissionReceipt,
             responses=PROBLEMS, summary="Register an online submission (status 1, mới đăng ký)")
async def submit_case(
    data: SubmissionCreate, principal: CounterDep, request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The counter then records `received` (sets the due date) or `refused` on the case."""
    note = Note(actor(request, principal), "case.submitted", case_code=data.case_code)
    return await _write(request, Item(service.submit, {
        "data": data, "idempotency_key": idempotency_key, "scope": _scope(principal)}, note))


@router.post("/cases/{case_code}/events", status_code=201, response_model=EventResult,
             responses=PROBLEMS, summary="Record what happened to a case")
async def record_event(
    case_code: CaseCode, data: EventCreate, principal: CounterDep, request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    note = Note(actor(request, principal), f"case.{data.type}", case_code=case_code)
    return await _write(request, Item(service.record, {
        "case_code": case_code, "data": data, "idempotency_key": idempotency_key,
        "scope": _scope(principal)}, note))


@router.post("/events:batch", summary="Record up to 1,000 events, answered per item",
             responses=PROBLEMS)
async def record_batch(batch: BatchRequest, principal: CounterDep,
                       request: Request) -> Response:
    """Every valid item is written by the group writer with the requests in flight beside it;
    each is answered on its own (201, 200 for a retry, or a problem), in order."""
    intake = intake_of(request)
    if len(batch.events) > intake.settings.batch_max_items:
        raise ValidationFailed(
            f"a batch holds at most {intake.settings.batch_max_items} events",
            errors=[{"field": "events", "rule": "max_items",
                     "message": f"at most {intake.settings.batch_max_items} events"}],
        )
    who = actor(request, principal)
    scope = _scope(principal)
    results: list[dict[str, Any] | None] = []
    items: list[tuple[int, Item]] = []
    for index, raw in enumerate(batch.events):
        try:
            parsed = BatchEventCreate.model_validate(raw)
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]), "rule": e["type"],
                       "message": e["msg"]} for e in exc.errors()]
            results.append({"index": index, "status": 422, "errors": errors})
            continue
        # The item is the event itself (BatchEventCreate is an EventCreate with its case).
        note = Note(who, f"case.{parsed.type}", case_code=parsed.case_code)
        items.append((index, Item(service.record, {"case_code": parsed.case_code,
                                                   "data": parsed, "scope": scope}, note)))
        results.append(None)
    outcomes = await intake.submit([item for _, item in items]) if items else []
    for (index, _item), outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, MotcuaError):
            if isinstance(outcome, Forbidden):
                security_of(request).refuse(403, "scope")
            results[index] = {"index": index, "status": outcome.status, "code": outcome.code,
                              "detail": outcome.detail, "errors": outcome.errors,
                              **outcome.extra}
        else:
            body, created = outcome
            results[index] = {"index": index, "status": 201 if created else 200,
                              "result": body}
    answered = [r for r in results if r is not None]
    return Response(orjson.dumps({"results": answered}), media_type="application/json",
                    status_code=207 if _mixed(answered) else 200)


def _mixed(results: list[dict[str, Any]]) -> bool:
    return any(r["status"] >= 400 for r in results)


@router.get("/cases/{case_code}", response_model=CaseDetail, responses=PROBLEMS,
            summary="Read a case: status, due date, history")
async def read_case(case_code: CaseCode, intake: IntakeDep, principal: CaseReaderDep,
                    request: Request) -> CaseDetail:
    note = Note(actor(request, principal), "case.read", case_code=case_code)
    await require_case(intake, request, principal, case_code, note)
    detail = await intake.read(service.get_case, case_code=case_code, pii=intake.pii)
    # The answer holds personal data: every read is on the record.
    await intake.audit(note, status=200)
    return detail


@router.get("/public/cases/{case_code}", response_model=CasePublic, responses=PROBLEMS,
            tags=["public"], dependencies=[Depends(public)],
            summary="Public look-up by code: status and dates, never the applicant")
async def public_case(case_code: CaseCode, intake: IntakeDep, request: Request) -> CasePublic:
    # No credentials here: the limit is per address, so codes cannot be enumerated fast.
    security_of(request).limit(f"ip:{request.client.host if request.client else '-'}")
    return await intake.read(service.get_public_case, case_code=case_code)

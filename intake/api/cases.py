"""Cases: receive, record events (one or a batch), read back, public look-up."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from contracts.types import CaseCode
from intake import service
from intake.access import (
    actor,
    agency_tree,
    case_agencies,
    needs_check,
    require_agency,
    require_case,
)
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
from intake.uow import IntakeDep
from services.errors import Forbidden, MotcuaError, ValidationFailed
from services.security.policy import CaseReaderDep, CounterDep, public, security_of
from services.security.scopes import check_agencies

router = APIRouter(prefix="/v1", tags=["cases"])
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=64, description="Same as body event_id."),
]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"content": {"application/problem+json": {}}} for s in (401, 403, 404, 409, 413, 422, 429)
}


@router.post("/cases", status_code=201, response_model=CaseReceipt, responses=PROBLEMS,
             summary="Receive a case (tiếp nhận hồ sơ)")
async def receive_case(
    data: CaseCreate, intake: IntakeDep, response: Response, principal: CounterDep,
    request: Request, idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    note = Note(actor(request, principal), "case.received", case_code=data.case_code)
    await require_agency(intake, request, principal, data.agency_code, note)
    body, created = await intake.write(
        service.receive_case, data=data, idempotency_key=idempotency_key, audit=note
    )
    response.status_code = 201 if created else 200
    return body


@router.post("/submissions", status_code=201, response_model=SubmissionReceipt,
             responses=PROBLEMS, summary="Register an online submission (status 1, mới đăng ký)")
async def submit_case(
    data: SubmissionCreate, intake: IntakeDep, response: Response, principal: CounterDep,
    request: Request, idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """The counter then records `received` (sets the due date) or `refused` on the case."""
    note = Note(actor(request, principal), "case.submitted", case_code=data.case_code)
    await require_agency(intake, request, principal, data.agency_code, note)
    body, created = await intake.write(
        service.submit_case, data=data, idempotency_key=idempotency_key, audit=note
    )
    response.status_code = 201 if created else 200
    return body


@router.post("/cases/{case_code}/events", status_code=201, response_model=EventResult,
             responses=PROBLEMS, summary="Record what happened to a case")
async def record_event(
    case_code: CaseCode, data: EventCreate, intake: IntakeDep, response: Response,
    principal: CounterDep, request: Request, idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    note = Note(actor(request, principal), f"case.{data.type}", case_code=case_code)
    await require_case(intake, request, principal, case_code, note)
    body, created = await intake.write(
        service.record_event, case_code=case_code, data=data, idempotency_key=idempotency_key,
        audit=note,
    )
    response.status_code = 201 if created else 200
    return body


@router.post("/events:batch", summary="Record up to 1,000 events, answered per item",
             responses=PROBLEMS)
async def record_batch(batch: BatchRequest, intake: IntakeDep, principal: CounterDep,
                       request: Request) -> JSONResponse:
    if len(batch.events) > intake.settings.batch_max_items:
        raise ValidationFailed(
            f"a batch holds at most {intake.settings.batch_max_items} events",
            errors=[{"field": "events", "rule": "max_items",
                     "message": f"at most {intake.settings.batch_max_items} events"}],
        )
    scope = await _BatchScope.load(intake, principal, batch.events)
    results: list[dict[str, Any]] = []
    for index, raw in enumerate(batch.events):
        results.append(await _batch_item(intake, request, principal, scope, index, raw))
    return JSONResponse({"results": results}, status_code=207 if _mixed(results) else 200)


class _BatchScope:
    """The agencies of a batch's cases, read once for the whole batch."""

    def __init__(self, tree: Any, agencies: dict[str, str]) -> None:
        self.tree = tree
        self.agencies = agencies

    @classmethod
    async def load(cls, intake: Any, principal: Any, raws: list[dict[str, Any]]) -> "_BatchScope":
        if not needs_check(principal):
            return cls(None, {})
        codes = [r["case_code"] for r in raws if isinstance(r.get("case_code"), str)]
        return cls(await agency_tree(intake), await case_agencies(intake, codes))

    def check(self, principal: Any, case_code: str) -> None:
        agency = self.agencies.get(case_code)
        if self.tree is not None and agency is not None:
            check_agencies(principal, self.tree, [agency])


async def _batch_item(intake: Any, request: Request, principal: Any, scope: _BatchScope,
                      index: int, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        item = BatchEventCreate.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "rule": e["type"],
                   "message": e["msg"]} for e in exc.errors()]
        return {"index": index, "status": 422, "errors": errors}
    data = EventCreate.model_validate(item.model_dump(exclude={"case_code"}))
    note = Note(actor(request, principal), f"case.{data.type}", case_code=item.case_code)
    try:
        try:
            scope.check(principal, item.case_code)
        except Forbidden as exc:
            security_of(request).refuse(403, "scope")
            await intake.audit(note, status=403, detail=exc.code)
            raise
        body, created = await intake.write(service.record_event, case_code=item.case_code,
                                           data=data, audit=note)
    except MotcuaError as exc:
        return {"index": index, "status": exc.status, "code": exc.code, "detail": exc.detail,
                "errors": exc.errors, **exc.extra}
    return {"index": index, "status": 201 if created else 200, "result": body}


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

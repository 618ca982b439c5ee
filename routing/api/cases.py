"""A case's progress along its handling chain, and the handoff that moves it on.

A counter sees a case that one of its offices received or handles along the chain, and hands
it off only as an office it covers; administrators see every case and hand off none.
"""

import logging
from datetime import date
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from contracts.types import AgencyCode, CaseCode
from routing import service
from routing.service import RoutingDeps
from routing.uow import RoutingDep
from services.errors import Forbidden
from services.security import Principal
from services.security.policy import CaseReaderDep, CounterDep, security_of
from services.security.scopes import AgencyTree, check_agencies

router = APIRouter(prefix="/v1/routing", tags=["routing"])
PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"content": {"application/problem+json": {}}} for s in (401, 403, 404, 409, 422, 429)
}
log = logging.getLogger(__name__)


class HandoffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_office: AgencyCode = Field(description="The office that finished its part.")


class Progress(BaseModel):
    case_code: str
    agency_code: str
    procedure_code: str
    chain: list[str] = Field(description="Offices the case is transferred to, in order.")
    hops_sent: int
    hops_recorded: int = Field(description="Transfers intake recorded on the case log.")
    holder: str = Field(description="The office holding the case now.")
    next_office: str | None
    arrived: bool = Field(description="The last transfer is recorded on the case log.")
    status: int
    open: bool
    due_date: date | None
    overdue_for: date | None = Field(description="The due date an overdue was raised for.")


@router.get("/cases/{case_code}", response_model=Progress, responses=PROBLEMS,
            summary="Where a case is along its handling chain")
async def progress(case_code: CaseCode, routing: RoutingDep, principal: CaseReaderDep,
                   request: Request) -> dict[str, Any]:
    body = await routing.read(service.get_progress, case_code=case_code)
    if principal.kind == "counter" and principal.agency is not None:
        tree = await routing.read(_tree, deps=routing.deps)
        offices = [body["agency_code"], *body["chain"]]
        if not any(tree.covers(principal.agency, office) for office in offices):
            security_of(request).refuse(403, "scope")
            raise Forbidden(f"This client ({principal.describe()}) neither received nor "
                            f"handles case {case_code}.", case_code=case_code)
    return body


@router.post("/cases/{case_code}/handoffs", status_code=201, response_model=Progress,
             responses=PROBLEMS,
             summary="The holding office finished its part: transfer to the next office")
async def hand_off(
    case_code: CaseCode, data: HandoffCreate, routing: RoutingDep, response: Response,
    principal: CounterDep, request: Request,
) -> dict[str, Any]:
    await _may_act_for(routing, request, principal, data.from_office)
    body, created = await routing.write(service.hand_off, case_code=case_code,
                                        from_office=data.from_office)
    # Routing keeps no audit table (intake's trail records the transfer it causes); the log
    # line carries the client and request id.
    log.info("handoff of %s from %s: %s", case_code, data.from_office,
             "sent" if created else "repeat")
    response.status_code = 201 if created else 200
    return body


def _tree(*, session: Session, deps: RoutingDeps) -> AgencyTree:
    return AgencyTree.of(deps.store.catalogue(session))


async def _may_act_for(routing: Any, request: Request, principal: Principal,
                       office: str) -> None:
    if principal.agency is None:
        return
    try:
        check_agencies(principal, await routing.read(_tree, deps=routing.deps), [office])
    except Forbidden:
        security_of(request).refuse(403, "scope")
        raise

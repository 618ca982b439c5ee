"""A case's progress along its handling chain, and the handoff that moves it on."""

from datetime import date
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from contracts.types import AgencyCode, CaseCode
from routing import service
from routing.uow import RoutingDep

router = APIRouter(prefix="/v1/routing", tags=["routing"])
PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"content": {"application/problem+json": {}}} for s in (404, 409, 422)
}


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
async def progress(case_code: CaseCode, routing: RoutingDep) -> dict[str, Any]:
    return await routing.read(service.get_progress, case_code=case_code)


@router.post("/cases/{case_code}/handoffs", status_code=201, response_model=Progress,
             responses=PROBLEMS,
             summary="The holding office finished its part: transfer to the next office")
async def hand_off(
    case_code: CaseCode, data: HandoffCreate, routing: RoutingDep, response: Response
) -> dict[str, Any]:
    body, created = await routing.write(service.hand_off, case_code=case_code,
                                        from_office=data.from_office)
    response.status_code = 201 if created else 200
    return body

"""Maintaining the agency registry and the procedure catalogue, with history.

Administrators only, every change in the audit trail. A change is a new version applying from
`effective_from`; cases already received keep the terms they were received under.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from contracts.types import AgencyCode, ProcedureCode
from intake import catalogue
from intake.access import actor
from intake.audit import Note
from intake.schemas import AgencyVersionIn, ProcedureVersionIn
from intake.uow import IntakeDep
from services.security.policy import AdminDep

router = APIRouter(prefix="/v1/admin", tags=["admin"])
PROBLEMS: dict[int | str, dict[str, Any]] = {
    s: {"content": {"application/problem+json": {}}} for s in (401, 403, 404, 409, 422)
}
AgencyPath = Annotated[AgencyCode, Path(description="e.g. 000.00.06.H56")]
ProcedurePath = Annotated[ProcedureCode, Path(description="e.g. 1.003560")]


@router.post("/procedures/{code}/versions", status_code=201, responses=PROBLEMS,
             summary="Add a version of a procedure (new fee, processing time, chain…)")
async def add_procedure_version(
    code: ProcedurePath, version: ProcedureVersionIn, intake: IntakeDep, response: Response,
    principal: AdminDep, request: Request,
) -> dict[str, Any]:
    body, created = await intake.write(
        catalogue.add_procedure_version, code=code, version=version,
        audit=Note(actor(request, principal), "catalogue.procedure_version", detail=code))
    response.status_code = 201 if created else 200
    return body


@router.get("/procedures/{code}/versions", responses=PROBLEMS,
            summary="Every version of a procedure, newest first")
async def procedure_versions(code: ProcedurePath, intake: IntakeDep,
                             _admin: AdminDep) -> dict[str, Any]:
    return await intake.read(catalogue.procedure_versions, deps=intake.deps, code=code)


@router.post("/agencies/{code}/versions", status_code=201, responses=PROBLEMS,
             summary="Register an agency or add a version of it (renamed, merged, moved)")
async def add_agency_version(
    code: AgencyPath, version: AgencyVersionIn, intake: IntakeDep, response: Response,
    principal: AdminDep, request: Request,
) -> dict[str, Any]:
    body, created = await intake.write(
        catalogue.add_agency_version, code=code, version=version,
        audit=Note(actor(request, principal), "catalogue.agency_version", detail=code))
    response.status_code = 201 if created else 200
    return body


@router.get("/agencies/{code}/versions", responses=PROBLEMS,
            summary="Every version of an agency, newest first")
async def agency_versions(code: AgencyPath, intake: IntakeDep,
                          _admin: AdminDep) -> dict[str, Any]:
    return await intake.read(catalogue.agency_versions, deps=intake.deps, code=code)

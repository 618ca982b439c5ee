"""The audit trail, for administrators: newest first, filtered by case, client or action."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from contracts.types import CaseCode
from intake import audit
from intake.uow import IntakeDep
from services.security.policy import AdminDep

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/audit", summary="Who did what to which case, when, from where",
            responses={s: {"content": {"application/problem+json": {}}} for s in (401, 403, 422)})
async def read_audit(
    intake: IntakeDep, _admin: AdminDep,
    case_code: Annotated[CaseCode | None, Query(description="Only this case.")] = None,
    client_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # SQL offsets are 64-bit at most
) -> dict[str, Any]:
    return await intake.read(audit.entries, case_code=case_code, client_id=client_id,
                             action=action, limit=limit, offset=offset)

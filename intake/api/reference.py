"""Reference data: the agency registry and the procedure catalogue (paginated, filterable).

Each entry is shown in the version in force on `on` (default: today, local). With `on`, the
agency list holds only the units that existed that day, so `on=2025-06-30` shows the
three-level structure (province, district, commune) and `on=2025-07-01` the two-level one.
"""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session

from intake.service import IntakeDeps
from intake.uow import IntakeDep
from registry.store import agency_to_dict, procedure_to_dict
from services.clock import LOCAL_TZ
from services.security.policy import ANY_CLIENT

# Any client: reference data is what every counter, portal and page needs to name things.
router = APIRouter(prefix="/v1", tags=["reference"], dependencies=[Depends(ANY_CLIENT)])
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
On = Annotated[date | None, Query(description="Local date; default today.")]


def _page(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    return {"total": len(items), "limit": limit, "offset": offset,
            "items": items[offset : offset + limit]}


def _agencies(*, session: Session, deps: IntakeDeps, on: date | None,
              **filters: str | None) -> list[dict[str, Any]]:
    day = on or deps.clock().astimezone(LOCAL_TZ).date()
    agencies = deps.catalogue(session).agencies_on(day).values()
    return [
        agency_to_dict(a) for a in sorted(agencies, key=lambda a: a.code)
        if (on is None or a.active_on(on))
        and all(v is None or getattr(a, k) == v for k, v in filters.items())
    ]


def _procedures(*, session: Session, deps: IntakeDeps, on: date | None, field: str | None,
                online_level: str | None) -> list[dict[str, Any]]:
    day = on or deps.clock().astimezone(LOCAL_TZ).date()
    catalogue = deps.catalogue(session)
    current = (catalogue.procedure(code, on=day) for code in catalogue.procedure_history)
    return [
        procedure_to_dict(p) for p in sorted((p for p in current if p), key=lambda p: p.code)
        if (field is None or p.field_code == field)
        and (online_level is None or online_level in p.online_levels)
    ]


@router.get("/agencies", summary="The agency registry")
async def list_agencies(
    intake: IntakeDep,
    province: str | None = None,
    level: Annotated[str | None, Query(pattern="^(province|district|commune)$")] = None,
    parent: str | None = None,
    kind: str | None = None,
    on: On = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items = await intake.read(_agencies, deps=intake.deps, on=on, province=province,
                              level=level, parent=parent, kind=kind)
    return _page(items, limit, offset)


@router.get("/procedures", summary="The procedure catalogue")
async def list_procedures(
    intake: IntakeDep,
    field: str | None = None,
    online_level: Annotated[str | None, Query(pattern="^(partial|full)$")] = None,
    on: On = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items = await intake.read(_procedures, deps=intake.deps, on=on, field=field,
                              online_level=online_level)
    return _page(items, limit, offset)

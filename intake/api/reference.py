"""Reference data: the agency registry and the procedure catalogue (paginated, filterable)."""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from intake.uow import IntakeDep

router = APIRouter(prefix="/v1", tags=["reference"])
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


def _page(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    return {"total": len(items), "limit": limit, "offset": offset,
            "items": items[offset : offset + limit]}


@router.get("/agencies", summary="The agency registry")
async def list_agencies(
    intake: IntakeDep,
    province: str | None = None,
    level: Annotated[str | None, Query(pattern="^(province|district|commune)$")] = None,
    parent: str | None = None,
    kind: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items = [
        asdict(a)
        for a in sorted(intake.deps.catalogue.agencies.values(), key=lambda a: a.code)
        if (province is None or a.province == province)
        and (level is None or a.level == level)
        and (parent is None or a.parent == parent)
        and (kind is None or a.kind == kind)
    ]
    return _page(items, limit, offset)


@router.get("/procedures", summary="The procedure catalogue")
async def list_procedures(
    intake: IntakeDep,
    field: str | None = None,
    online_level: Annotated[str | None, Query(pattern="^(partial|full)$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    items = [
        asdict(p)
        for p in sorted(intake.deps.catalogue.procedures.values(), key=lambda p: p.code)
        if (field is None or p.field_code == field)
        and (online_level is None or online_level in p.online_levels)
    ]
    return _page(items, limit, offset)

"""KPIs: numerator, denominator and value for any KPI, scope and period."""

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from metrics import service

if TYPE_CHECKING:
    from metrics.app import MetricsComponent

router = APIRouter(prefix="/v1", tags=["kpis"])


def get_metrics(request: Request) -> "MetricsComponent":
    return request.app.state.components["metrics"]


MetricsDep = Annotated["MetricsComponent", Depends(get_metrics)]


@router.get("/kpis", summary="KPI figures for a scope and a local period",
            responses={422: {"content": {"application/problem+json": {}}}})
async def read_kpis(
    metrics: MetricsDep,
    kpi: Annotated[list[str] | None, Query(description="Repeatable; default all.")] = None,
    scope: Annotated[str, Query(description="all, province:H56, agency:…, field:…, "
                                            "procedure:…, district:…")] = "all",
    period: Annotated[str | None, Query(description="2026, 2026-Q1, 2026-03 or 2026-03-02; "
                                                    "default the current local month.")] = None,
) -> dict[str, Any]:
    kpis, scope, period = service.validate_query(kpi, scope, period, metrics.clock())
    items = await metrics.read(service.query_kpis, kpis=kpis, scope=scope, period=period)
    return {"scope": scope, "period": period, "items": items}

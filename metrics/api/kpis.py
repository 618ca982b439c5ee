"""KPIs: numerator, denominator and value for any KPI, scope and period, beside the target a
province's plan sets; JSON or CSV; cacheable (ETag, If-None-Match -> 304)."""

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from metrics import index, service
from services.security.policy import ANY_CLIENT, KPI_READER

if TYPE_CHECKING:
    from metrics.app import MetricsComponent

router = APIRouter(prefix="/v1", tags=["kpis"])
PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {"content": {"application/problem+json": {}}}}
CSV = "text/csv"
JSON = "application/json"


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
async def get_metrics(request: Request) -> "MetricsComponent":
    return request.app.state.components["metrics"]


MetricsDep = Annotated["MetricsComponent", Depends(get_metrics)]
ScopeQuery = Annotated[str, Query(description="all, province:H56, agency:…, field:…, "
                                              "procedure:…, district:…, province-field:H56/land")]
PeriodQuery = Annotated[str | None, Query(description="2026, 2026-Q1, 2026-03 or 2026-03-02 "
                                                      "(local); default the current month.")]
IfNoneMatch = Annotated[str | None, Header(description="An ETag from an earlier answer.")]


def preferred(accept: str | None) -> str:
    """JSON unless the client prefers CSV (RFC 9110 content negotiation, q-values honoured)."""
    best, best_q = JSON, -1.0
    for part in (accept or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        kind = {CSV: CSV, JSON: JSON, "*/*": JSON, "application/*": JSON}.get(media.lower())
        # A tie keeps JSON, the contract's default representation.
        if kind is not None and q > 0 and (q > best_q or (q == best_q and kind == JSON)):
            best, best_q = kind, q
    return best


def cacheable(body: bytes, media_type: str, if_none_match: str | None) -> Response:
    tag = service.etag(body)
    headers = {"ETag": tag, "Vary": "Accept", "Cache-Control": "no-cache"}
    if service.etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/kpis", summary="KPI figures for a scope and a local period",
            dependencies=[Depends(KPI_READER)],
            responses={**PROBLEMS, 200: {"content": {JSON: {}, CSV: {}}},
                       304: {"description": "Not modified since the ETag given"}})
async def read_kpis(
    metrics: MetricsDep,
    kpi: Annotated[list[str] | None, Query(description="Repeatable; default all.")] = None,
    scope: ScopeQuery = "all",
    period: PeriodQuery = None,
    accept: Annotated[str | None, Header()] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    kpis, scope, period = service.validate_query(kpi, scope, period, metrics.clock())
    items = await metrics.read(service.query_kpis, kpis=kpis, scope=scope, period=period)
    items = service.with_targets(items, metrics.plans)
    if preferred(accept) == CSV:
        return cacheable(service.to_csv(items).encode(), "text/csv; charset=utf-8",
                         if_none_match)
    body = JSONResponse({"scope": scope, "period": period, "items": items}).body
    return cacheable(bytes(body), JSON, if_none_match)


@router.get("/kpis/index", summary="Decision 766 style score for a unit and local period",
            dependencies=[Depends(KPI_READER)],
            responses={**PROBLEMS, 304: {"description": "Not modified since the ETag given"}})
async def read_index(
    metrics: MetricsDep,
    scope: ScopeQuery = "all",
    period: PeriodQuery = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    _, scope, period = service.validate_query(None, scope, period, metrics.clock())
    answer = await metrics.read(index.score, plans=metrics.plans, scope=scope, period=period)
    return cacheable(bytes(JSONResponse(answer).body), JSON, if_none_match)


@router.get("/plans", summary="The provincial plans loaded and the targets they set",
            dependencies=[Depends(ANY_CLIENT)])
async def read_plans(
    metrics: MetricsDep,
    province: Annotated[str | None, Query(description="Only this province's plans, e.g. H05.",
                                          pattern=r"^[0-9A-Za-z]{1,8}$")] = None,
) -> dict[str, Any]:
    plans = [p.public() for p in metrics.plans.plans
             if province is None or p.province == province]
    return {"plans": plans}

"""Routes of the dashboard: the page, its static files and the two views it reads."""

import html
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from metrics import service
from metrics.api.kpis import MetricsDep
from metrics.dashboard import queries
from services.errors import NotFound
from services.security.policy import KPI_READER, public

STATIC = Path(__file__).parent / "static"
_MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# What the breakdown table shows when the page does not ask for specific KPIs.
_BREAKDOWN_KPIS = ["received", "online_share", "on_time_rate", "digitisation_rate",
                   "overdue_open"]

router = APIRouter(tags=["dashboard"])


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_DASHBOARD_", extra="ignore")

    intake_url: str = Field(
        default="",
        description="Base URL of intake's API, where the page looks agency and procedure names "
                    "up; empty means this origin (`motcua up`, or one reverse proxy in front of "
                    "all three services). Without it the page shows codes instead of names.",
    )
    refresh_seconds: int = Field(default=5, ge=1, le=3600,
                                 description="How often the page polls for new figures.")

    @field_validator("intake_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if v and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("intake_url must be an http(s) URL or empty")
        return v.rstrip("/")


def _settings(request: Request) -> DashboardSettings:
    # Built on first use, not at import, and kept for the app's life like other settings.
    found: DashboardSettings | None = getattr(request.app.state, "dashboard_settings", None)
    if found is None:
        found = request.app.state.dashboard_settings = DashboardSettings()
    return found


@cache
def _static_files() -> dict[str, Path]:
    return {p.name: p for p in STATIC.iterdir() if p.suffix in _MEDIA_TYPES}


# The page and its files are public; the figures it fetches need a portal token (docs/security.md).
@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False,
            dependencies=[Depends(public)])
async def dashboard(request: Request) -> HTMLResponse:
    settings = _settings(request)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{intake_url}}", html.escape(settings.intake_url, quote=True))
    page = page.replace("{{refresh_seconds}}", str(settings.refresh_seconds))
    # Everything the page loads is its own; names may come from intake on another origin.
    csp = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
           "connect-src 'self' http: https:; frame-ancestors 'self'; base-uri 'none'")
    return HTMLResponse(page, headers={"Content-Security-Policy": csp,
                                       "Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name}", include_in_schema=False, dependencies=[Depends(public)])
async def static_file(name: str) -> FileResponse:
    path = _static_files().get(name)
    if path is None:
        raise NotFound(f"no dashboard file {name!r}")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix],
                        headers={"Cache-Control": "no-cache"})


@router.get("/v1/breakdown", tags=["kpis"], dependencies=[Depends(KPI_READER)],
            summary="KPIs of a scope's children: provinces of all, agencies of a province",
            responses={422: {"content": {"application/problem+json": {}}}})
async def read_breakdown(
    metrics: MetricsDep,
    scope: Annotated[str, Query(description="all or province:H56")] = "all",
    period: Annotated[str | None, Query(description="As for /v1/kpis; default the current "
                                                    "local month.")] = None,
    kpi: Annotated[list[str] | None, Query(description="Repeatable; default received, "
                                                       "online_share, on_time_rate, "
                                                       "digitisation_rate, overdue_open.")] = None,
) -> dict[str, Any]:
    kpis, scope, period = service.validate_query(kpi or _BREAKDOWN_KPIS, scope, period,
                                                 metrics.clock())
    children = await metrics.read(queries.breakdown, kpis=kpis, scope=scope, period=period)
    for child in children:
        child["items"] = service.with_targets(child["items"], metrics.plans)
    return {"scope": scope, "period": period, "by": queries.child_kind(scope),
            "children": children}


@router.get("/v1/overdue", tags=["kpis"], dependencies=[Depends(KPI_READER)],
            summary="The live overdue backlog, case by case",
            responses={422: {"content": {"application/problem+json": {}}}})
async def read_overdue(
    metrics: MetricsDep,
    scope: Annotated[str, Query(description="all, province:…, agency:…, district:…, field:…, "
                                            "procedure:…, province-field:H56/land")] = "all",
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # SQL offsets are 64-bit at most
) -> dict[str, Any]:
    _, scope, _ = service.validate_query(["overdue_open"], scope, None, metrics.clock())
    return await metrics.read(queries.overdue_cases, scope=scope, limit=limit, offset=offset)

"""The app factory: builds a FastAPI app around one or more service components."""

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.bus.base import Bus
from services.component import Component
from services.errors import Unauthorized, install_error_handlers, problem
from services.http import BodyLimit, RequestId, RequestMetrics, RequestTimeout
from services.security import Security
from services.security.policy import document_bearer, public, unguarded_routes
from services.settings import ServiceSettings

log = logging.getLogger(__name__)


def build_app(
    *,
    title: str,
    components: Sequence[Component],
    bus: Bus,
    registry: CollectorRegistry,
    topic_prefix: str,
    max_body_bytes: int,
    settings: ServiceSettings,
    shutdown_timeout: float = 15.0,
) -> FastAPI:
    # One per process: verifies tokens and follows the revocation topic for every component.
    security = Security(settings, bus=bus, registry=registry,
                        service="-".join(c.name for c in components))
    components = [*components, security]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        await bus.start()
        topics = sorted({topic_prefix + t for c in components for t in c.topics()})
        await bus.ensure_topics(topics)
        for c in components:
            await c.start()
        tasks = [
            asyncio.create_task(coro, name=f"{c.name}-bg")
            for c in components
            for coro in c.background(stop)
        ]
        app.state.stop = stop
        log.info("%s started: %s on the %s bus", title, [c.name for c in components], bus.kind)
        try:
            yield
        finally:
            # Graceful: loops finish their in-flight batch (or roll it back), then resources close.
            stop.set()
            _done, pending = await asyncio.wait(tasks, timeout=shutdown_timeout) if tasks else (
                set(), set())
            for task in pending:
                log.warning("%s did not stop in %ss; cancelling", task.get_name(),
                            shutdown_timeout)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in reversed(components):
                await c.stop()
            await bus.close()

    app = FastAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        description="motcua: case tracking for Vietnam's one-stop-shop counters.",
        # Monitoring is Prometheus (docs/monitoring.md). FastAPI's native OpenTelemetry asked
        # the global providers on every request whether anyone listens (environment look-ups
        # included): 3 µs a request for nothing (docs/benchmarks.md, ninth pass).
        telemetry={"tracing": False, "metrics": False, "logs": False,
                   "operation_spans": False},
    )
    install_error_handlers(app)
    app.state.security = security
    app.state.components = {c.name: c for c in components}
    app.state.bus = bus
    app.state.registry = registry
    app.state.settings = settings
    for c in components:
        for router in c.routers():
            app.include_router(router)

    @app.get("/healthz", tags=["health"], summary="Liveness", dependencies=[Depends(public)])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness of the bus, databases and loops",
             dependencies=[Depends(public)])
    async def readyz() -> Response:
        checks: dict[str, object] = {"bus": await bus.ready()}
        for c in components:
            for name, value in (await c.readiness()).items():
                checks[f"{c.name}.{name}"] = value
        if all(v is not False for v in checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        failing = ", ".join(k for k, v in checks.items() if v is False)
        return problem(503, "Not ready", f"Failing checks: {failing}", code="not_ready",
                       checks=checks)

    @app.get("/metrics", tags=["health"], summary="Prometheus exposition",
             dependencies=[Depends(public)])
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        # Public unless a scrape token is configured: Prometheus sends a fixed credential, and
        # the exposition carries counts only, never case or applicant data.
        expected = security.metrics_token
        if expected is not None and not hmac.compare_digest(
                (authorization or "").encode(), f"Bearer {expected}".encode()):
            security.refuse(401, "metrics_token")
            raise Unauthorized("GET /metrics needs the scrape token (MOTCUA_METRICS_SCRAPE_TOKEN)"
                               " as `Authorization: Bearer …`.")
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    unguarded = unguarded_routes(app)
    if unguarded:
        raise RuntimeError(f"routes without an access decision (public or allow(...)): "
                           f"{unguarded}")
    document_bearer(app)
    app.add_middleware(RequestMetrics, registry=registry)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_seconds)
    app.add_middleware(RequestId)
    return app

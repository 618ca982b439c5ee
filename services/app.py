"""The app factory: builds a FastAPI app around one or more service components."""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.bus.base import Bus
from services.component import Component
from services.errors import install_error_handlers, problem
from services.http import BodyLimit, RequestMetrics

log = logging.getLogger(__name__)


def build_app(
    *,
    title: str,
    components: Sequence[Component],
    bus: Bus,
    registry: CollectorRegistry,
    topic_prefix: str,
    max_body_bytes: int,
    shutdown_timeout: float = 15.0,
) -> FastAPI:
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
    )
    install_error_handlers(app)
    app.state.components = {c.name: c for c in components}
    app.state.bus = bus
    app.state.registry = registry
    for c in components:
        for router in c.routers():
            app.include_router(router)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness of the bus, databases and loops")
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

    @app.get("/metrics", tags=["health"], summary="Prometheus exposition")
    async def metrics() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestMetrics, registry=registry)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app

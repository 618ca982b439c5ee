"""Routing's component and app factory."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import IntegrityError, OperationalError

from contracts import CASES_TOPIC, CATALOGUE_TOPIC, DEAD_LETTER_TOPIC, ROUTING_TOPIC
from registry.catalogue import Catalogue
from routing import models, service
from routing.api import cases
from routing.handlers import make_case_handler
from routing.metrics import RoutingMetrics
from routing.service import RoutingDeps
from routing.settings import RoutingSettings
from services.app import build_app
from services.bus import Bus, make_bus
from services.clock import Clock, system_clock
from services.consumer import ConsumerRunner, ConsumerSpec
from services.db import make_engine, read_in_thread, transaction
from services.errors import Unavailable
from services.migrations import upgrade
from services.observability import ConsumerCollector, OutboxCollector, register
from services.outbox import Relay, relay_readiness

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class RoutingComponent:
    name = "routing"

    def __init__(
        self, settings: RoutingSettings, *, bus: Bus, registry: CollectorRegistry,
        catalogue: Catalogue, clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        # Routing's copy of the catalogue follows intake's catalogue events; the data files only
        # seed an empty copy, so cases can be routed before the catalogue topic is read.
        self.seed = catalogue
        self.deps = RoutingDeps(clock=clock, source=f"/motcua/{settings.service_name}")
        self.engine = make_engine(settings.resolved_database_url("routing"))
        self.metrics = RoutingMetrics(registry)
        self.relay = Relay(models.OUTBOX, self.engine, bus, topic_prefix=settings.topic_prefix)
        self.consumer = ConsumerRunner(
            bus=bus, engine=self.engine, tracking=models.TRACKING,
            spec=ConsumerSpec(
                group_id="routing",
                topics=[CASES_TOPIC, CATALOGUE_TOPIC],
                handle=make_case_handler(self.deps, self._routed),
                after_commit=lambda _events: self.relay.wake(),
            ),
            batch_size=settings.consumer_batch_size, poll_ms=settings.consumer_poll_ms,
            topic_prefix=settings.topic_prefix,
        )
        self.last_scan_error: str | None = None
        self.scans = 0  # completed deadline scans, for readiness and tests
        register(
            registry,
            ConsumerCollector(lambda: [self.consumer]),
            OutboxCollector("routing", lambda: models.OUTBOX.backlog(self.engine),
                            lambda: self.relay.published),
        )

    def _routed(self, hops: int) -> None:
        if hops:
            self.metrics.transfers.inc(hops)
        else:
            self.metrics.unroutable.inc()

    def routers(self) -> list[APIRouter]:
        return [cases.router]

    def topics(self) -> list[str]:
        return [CASES_TOPIC, ROUTING_TOPIC, CATALOGUE_TOPIC, DEAD_LETTER_TOPIC]

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.engine, service="routing",
                                script_location=MIGRATIONS)
        await asyncio.to_thread(self._seed)

    def _seed(self) -> None:
        with transaction(self.engine) as session:
            self.deps.store.seed(session, self.seed)

    def background(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return [self.relay.run(stop), self.consumer.supervise(stop), self.watch_deadlines(stop)]

    async def watch_deadlines(self, stop: asyncio.Event) -> None:
        """Scan for overdue cases at start (deadlines passed while down), then periodically."""
        while not stop.is_set():
            try:
                raised = await asyncio.to_thread(self.scan_once)
                self.last_scan_error = None
                self.scans += 1
            except OperationalError as exc:  # database restarting: the next scan catches up
                self.last_scan_error = f"{type(exc).__name__}: {exc}"
                log.warning("overdue scan failed, retrying: %s", self.last_scan_error)
                raised = 0
            if raised:
                self.metrics.overdue_raised.inc(raised)
                self.relay.wake()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.overdue_scan_seconds)

    def scan_once(self) -> int:
        total = 0
        while True:
            with transaction(self.engine) as session:
                raised = service.scan_overdue(session=session, deps=self.deps)
            total += raised
            if raised < 1000:
                return total

    async def stop(self) -> None:
        self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        return {**await relay_readiness(models.OUTBOX, self.engine, self.relay),
                "consumer": self.consumer.stats.running,
                "overdue_scan_error": self.last_scan_error}

    async def write(self, fn: Callable[..., tuple[T, bool]], **kwargs: Any) -> tuple[T, bool]:
        """Run a domain function in one transaction; wake the relay once it committed."""
        def run() -> tuple[T, bool]:
            try:
                with transaction(self.engine) as session:
                    return fn(session=session, deps=self.deps, **kwargs)
            except OperationalError as exc:
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

        try:
            result = await asyncio.to_thread(run)
        except IntegrityError:
            result = await asyncio.to_thread(run)  # raced another process: answer as a retry
        if result[1]:
            self.relay.wake()
            self.metrics.handoffs.inc()
            self.metrics.transfers.inc()
        return result

    async def read(self, fn: Callable[..., T], **kwargs: Any) -> T:
        return await read_in_thread(self.engine, fn, **kwargs)


def create_app(
    settings: RoutingSettings | None = None, *, clock: Clock = system_clock
) -> FastAPI:
    settings = settings or RoutingSettings()
    registry = CollectorRegistry()
    bus = make_bus(settings)
    component = RoutingComponent(settings, bus=bus, registry=registry,
                                 catalogue=Catalogue.load(settings.catalogue_dir), clock=clock)
    return build_app(title="motcua routing", components=[component], bus=bus, registry=registry,
                     topic_prefix=settings.topic_prefix, max_body_bytes=settings.max_body_bytes,
                     settings=settings)

"""Routing's component and app factory."""

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from contracts import CASES_TOPIC, DEAD_LETTER_TOPIC, ROUTING_TOPIC
from registry.catalogue import Catalogue
from routing import models
from routing.handlers import make_case_handler
from routing.metrics import RoutingMetrics
from routing.service import RoutingDeps
from routing.settings import RoutingSettings
from services.app import build_app
from services.bus import Bus, make_bus
from services.clock import Clock, system_clock
from services.consumer import ConsumerRunner, ConsumerSpec
from services.db import make_engine
from services.migrations import upgrade
from services.observability import ConsumerCollector, OutboxCollector, register
from services.outbox import Relay

MIGRATIONS = Path(__file__).parent / "migrations"


class RoutingComponent:
    name = "routing"

    def __init__(
        self, settings: RoutingSettings, *, bus: Bus, registry: CollectorRegistry,
        catalogue: Catalogue, clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.deps = RoutingDeps(catalogue=catalogue, clock=clock)
        self.engine = make_engine(settings.resolved_database_url("routing"))
        self.metrics = RoutingMetrics(registry)
        self.relay = Relay(models.OUTBOX, self.engine, bus, topic_prefix=settings.topic_prefix)
        self.consumer = ConsumerRunner(
            bus=bus, engine=self.engine, tracking=models.TRACKING,
            spec=ConsumerSpec(
                group_id="routing",
                topics=[CASES_TOPIC],
                handle=make_case_handler(self.deps, self._routed),
                after_commit=lambda _events: self.relay.wake(),
            ),
            batch_size=settings.consumer_batch_size, poll_ms=settings.consumer_poll_ms,
            topic_prefix=settings.topic_prefix,
        )
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
        return []

    def topics(self) -> list[str]:
        return [CASES_TOPIC, ROUTING_TOPIC, DEAD_LETTER_TOPIC]

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.engine, service="routing",
                                script_location=MIGRATIONS)

    def background(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return [self.relay.run(stop), self.consumer.supervise(stop)]

    async def stop(self) -> None:
        self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        try:
            backlog = await asyncio.to_thread(models.OUTBOX.backlog, self.engine)
            db = True
        except OperationalError:
            backlog, db = -1, False
        return {"database": db, "outbox_backlog": backlog,
                "consumer": self.consumer.stats.running, "relay_error": self.relay.last_error}


def create_app(
    settings: RoutingSettings | None = None, *, clock: Clock = system_clock
) -> FastAPI:
    settings = settings or RoutingSettings()
    registry = CollectorRegistry()
    bus = make_bus(settings)
    component = RoutingComponent(settings, bus=bus, registry=registry,
                                 catalogue=Catalogue.load(settings.catalogue_dir), clock=clock)
    return build_app(title="motcua routing", components=[component], bus=bus, registry=registry,
                     topic_prefix=settings.topic_prefix, max_body_bytes=settings.max_body_bytes)

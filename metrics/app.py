"""Metrics' component and app factory."""

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from contracts import CASES_TOPIC, DEAD_LETTER_TOPIC, Envelope
from metrics import dashboard, models
from metrics.api import kpis
from metrics.metrics import KpiGaugeCollector, MetricsMetrics
from metrics.projection import apply_batch
from metrics.settings import MetricsSettings
from metrics.targets import BUILT_IN as BUILT_IN_PLANS
from metrics.targets import Plans
from services.app import build_app
from services.bus import Bus, make_bus
from services.clock import Clock, system_clock
from services.consumer import ConsumerRunner, ConsumerSpec
from services.db import make_engine, read_in_thread
from services.migrations import upgrade
from services.observability import ConsumerCollector, register

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
_PAYLOAD_CLASS, _TIME = attrgetter("data.__class__"), attrgetter("time")


class MetricsComponent:
    name = "metrics"

    def __init__(
        self, settings: MetricsSettings, *, bus: Bus, registry: CollectorRegistry,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.engine = make_engine(settings.resolved_database_url("metrics"))
        self.metrics = MetricsMetrics(registry)
        self.plans = Plans.load(BUILT_IN_PLANS, settings.plans_dir)
        self.consumer = ConsumerRunner(
            bus=bus, engine=self.engine, tracking=models.TRACKING,
            spec=ConsumerSpec(group_id="metrics", topics=[CASES_TOPIC], handle=apply_batch,
                              deduplicates=True, after_commit=self._observe),
            batch_size=settings.consumer_batch_size, poll_ms=settings.consumer_poll_ms,
            topic_prefix=settings.topic_prefix,
        )
        register(registry, ConsumerCollector(lambda: [self.consumer]),
                 KpiGaugeCollector(lambda: self.engine, clock, self.plans))

    def _observe(self, events: list[Envelope]) -> None:
        now = datetime.now(UTC)
        # One labelled increment per type and batch: a per-event label lookup cost ~5% of
        # the projection's time; and nothing here steps through the events in Python
        # (docs/benchmarks.md).
        for kind, n in Counter(map(_PAYLOAD_CLASS, events)).items():
            self.metrics.events_projected.labels(kind.NAME).inc(n)
        self.metrics.freshness.observe_ages(map(_TIME, events), now)

    def routers(self) -> list[APIRouter]:
        return [kpis.router, dashboard.router]

    def topics(self) -> list[str]:
        return [CASES_TOPIC, DEAD_LETTER_TOPIC]

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.engine, service="metrics",
                                script_location=MIGRATIONS)

    def background(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return [self.consumer.supervise(stop)]

    async def stop(self) -> None:
        self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        def ping() -> bool:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True

        try:
            db = await asyncio.to_thread(ping)
        except OperationalError:
            db = False
        return {"database": db, "consumer": self.consumer.stats.running}

    async def read(self, fn: Callable[..., T], **kwargs: Any) -> T:
        return await read_in_thread(self.engine, fn, **kwargs)


def create_app(
    settings: MetricsSettings | None = None, *, clock: Clock = system_clock
) -> FastAPI:
    settings = settings or MetricsSettings()
    registry = CollectorRegistry()
    bus = make_bus(settings)
    component = MetricsComponent(settings, bus=bus, registry=registry, clock=clock)
    return build_app(title="motcua metrics", components=[component], bus=bus, registry=registry,
                     topic_prefix=settings.topic_prefix, max_body_bytes=settings.max_body_bytes,
                     settings=settings)

"""Intake's component and app factory."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import IntegrityError, OperationalError

from contracts import CASES_TOPIC, CATALOGUE_TOPIC, DEAD_LETTER_TOPIC, ROUTING_TOPIC
from intake import models
from intake.api import admin, auth, cases, clients, reference
from intake.api import audit as audit_api
from intake.audit import Note, record
from intake.catalogue import seed_catalogue
from intake.handlers import make_routing_handler
from intake.metrics import IntakeMetrics
from intake.pg_writer import LoopWriter
from intake.pii import PiiCipher
from intake.schemas import CaseCreate, EventCreate, SubmissionCreate
from intake.service import IntakeDeps, Result
from intake.settings import IntakeSettings
from intake.writer import GroupWriter, Item, Outcome
from registry.calendar import WorkingCalendar, default_calendar_dir
from registry.catalogue import Catalogue
from services.app import build_app
from services.bus import Bus, make_bus
from services.clock import Clock, system_clock
from services.consumer import ConsumerRunner, ConsumerSpec
from services.db import make_engine, read_in_thread, transaction
from services.errors import MotcuaError, Unavailable
from services.migrations import upgrade
from services.observability import ConsumerCollector, OutboxCollector, register
from services.outbox import Relay, relay_readiness

T = TypeVar("T")
log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class IntakeComponent:
    name = "intake"

    def __init__(
        self, settings: IntakeSettings, *, bus: Bus, registry: CollectorRegistry,
        catalogue: Catalogue, calendar: WorkingCalendar, clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.bus = bus
        # The data files seed an empty catalogue; from then on intake's database is the truth.
        self.seed = catalogue
        self.pii = PiiCipher.from_settings(settings)
        self.deps = IntakeDeps(calendar=calendar, clock=clock,
                               clock_skew=timedelta(seconds=settings.clock_skew_seconds),
                               source=f"/motcua/{settings.service_name}", pii=self.pii)
        self.engine = make_engine(settings.resolved_database_url("intake"))
        self.metrics = IntakeMetrics(registry)
        self.relay = Relay(models.OUTBOX, self.engine, bus, topic_prefix=settings.topic_prefix)
        on_loop = ([LoopWriter(self.engine, self.deps)
                    for _ in range(settings.write_transactions)]
                   if settings.write_on_loop and self.engine.dialect.name == "postgresql"
                   else [])
        self.writer = GroupWriter(self.engine, self.deps, max_items=settings.batch_max_items,
                                  on_written=self._written, on_loop=on_loop,
                                  on_commit=self._committed)
        self.consumer = ConsumerRunner(
            bus=bus, engine=self.engine, tracking=models.TRACKING,
            spec=ConsumerSpec(
                group_id="intake",
                topics=[ROUTING_TOPIC],
                handle=make_routing_handler(self.deps, self._rejected),
                after_commit=lambda _events: self.relay.wake(),
            ),
            batch_size=settings.consumer_batch_size, poll_ms=settings.consumer_poll_ms,
            topic_prefix=settings.topic_prefix,
        )
        register(
            registry,
            ConsumerCollector(lambda: [self.consumer]),
            OutboxCollector("intake", lambda: models.OUTBOX.backlog(self.engine),
                            lambda: self.relay.published),
        )

    def _rejected(self, event_type: str) -> None:
        self.metrics.system_events_rejected.labels(event_type).inc()

    def routers(self) -> list[APIRouter]:
        return [cases.router, reference.router, admin.router, auth.router, clients.router,
                audit_api.router]

    def topics(self) -> list[str]:
        return [CASES_TOPIC, ROUTING_TOPIC, CATALOGUE_TOPIC, DEAD_LETTER_TOPIC]

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.engine, service="intake",
                                script_location=MIGRATIONS)
        await asyncio.to_thread(self._seed)

    def _seed(self) -> None:
        with transaction(self.engine) as session:
            seed_catalogue(session=session, deps=self.deps, source=self.seed)
        with transaction(self.engine) as session:
            sealed = self.pii.reencrypt(session)
        if sealed:
            log.info("re-encrypted %d applicants under PII key %s", sealed, self.pii.active)

    def background(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        return [self.writer.run(stop), self.relay.run(stop), self.consumer.supervise(stop)]

    async def stop(self) -> None:
        self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        return {**await relay_readiness(models.OUTBOX, self.engine, self.relay),
                "consumer": self.consumer.stats.running}

    async def submit(self, items: list[Item]) -> list[Outcome]:
        """Cases and their events: written by the group writer, many requests a transaction."""
        return await self.writer.submit(items)

    async def submit_one(self, item: Item) -> Result:
        outcome = (await self.writer.submit([item]))[0]
        if isinstance(outcome, MotcuaError):
            raise outcome
        return outcome

    def _committed(self, writer: str) -> None:
        self.metrics.write_transactions.labels(writer).inc()

    def _written(self, items: list[Item], outcomes: list[Outcome]) -> None:
        created = False
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, MotcuaError):
                continue
            if outcome[1]:
                created = True
                self._count(item.fn, item.kwargs)
            else:
                self.metrics.retries_replayed.inc()
        if created:
            self.relay.wake()

    async def write(self, fn: Callable[..., tuple[T, bool]], *, audit: Note | None = None,
                    **kwargs: Any) -> tuple[T, bool]:
        """Run a domain function in one transaction, with its audit row; wake the relay once
        it committed. A refused change is audited too, in a transaction of its own."""
        try:
            result = await asyncio.to_thread(self._write, fn, kwargs, audit)
        except MotcuaError as exc:
            if audit is not None:
                await self.audit(audit, status=exc.status, detail=exc.code)
            raise
        if result[1]:
            self.relay.wake()
            self._count(fn, kwargs)
        else:
            self.metrics.retries_replayed.inc()
        return result

    def _write(self, fn: Callable[..., tuple[T, bool]], kwargs: dict[str, Any],
               audit: Note | None) -> tuple[T, bool]:
        for attempt in range(3):
            try:
                with transaction(self.engine) as session:
                    body, created = fn(session=session, deps=self.deps, **kwargs)
                    if audit is not None:
                        case_code = body.get("case_code") if isinstance(body, dict) else None
                        record(session, audit, status=201 if created else 200,
                               at=self.deps.clock(), case_code=case_code)
                    return body, created
            except IntegrityError:
                # Two processes raced on one event id or case code: the retry sees the
                # winner's row and answers as a replay (or a 409).
                if attempt == 2:
                    raise
            except OperationalError as exc:
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    def _count(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        data = kwargs.get("data")
        if isinstance(data, CaseCreate):
            self.metrics.cases_received.labels(data.channel.value).inc()
            self.metrics.events_recorded.labels("received").inc()
        elif isinstance(data, SubmissionCreate):
            self.metrics.events_recorded.labels("submitted").inc()
        elif isinstance(data, EventCreate):
            if data.type == "received":
                self.metrics.cases_received.labels("online").inc()
            self.metrics.events_recorded.labels(data.type).inc()

    async def audit(self, note: Note, *, status: int, detail: str | None = None) -> None:
        """An audit row on its own: a read, or a refusal that changed nothing."""
        if detail is not None:
            note = replace(note, detail=detail)

        def run() -> None:
            with transaction(self.engine) as session:
                record(session, note, status=status, at=self.deps.clock())

        try:
            await asyncio.to_thread(run)
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def read(self, fn: Callable[..., T], **kwargs: Any) -> T:
        return await read_in_thread(self.engine, fn, **kwargs)


def create_app(
    settings: IntakeSettings | None = None, *, clock: Clock = system_clock
) -> FastAPI:
    settings = settings or IntakeSettings()
    registry = CollectorRegistry()
    bus = make_bus(settings)
    component = IntakeComponent(
        settings, bus=bus, registry=registry,
        catalogue=Catalogue.load(settings.catalogue_dir),
        calendar=WorkingCalendar.load(default_calendar_dir()), clock=clock,
    )
    return build_app(title="motcua intake", components=[component], bus=bus, registry=registry,
                     topic_prefix=settings.topic_prefix, max_body_bytes=settings.max_body_bytes,
                     settings=settings)

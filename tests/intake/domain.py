"""Intake's domain functions on a migrated, seeded SQLite database, without HTTP or a bus."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from intake.app import MIGRATIONS
from intake.catalogue import seed_catalogue
from intake.pii import PiiCipher
from intake.service import IntakeDeps
from registry.calendar import WorkingCalendar, default_calendar_dir
from registry.catalogue import Catalogue
from services.db import make_engine, transaction
from services.migrations import upgrade

T = TypeVar("T")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Domain:
    engine: Engine
    deps: IntakeDeps
    clock: Clock

    def run(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """One unit of work, as the API runs it: committed, or rolled back on an error."""
        with transaction(self.engine) as session:
            return fn(session=session, deps=self.deps, **kwargs)


def make_domain(directory: Path, now: datetime) -> Domain:
    engine = make_engine(f"sqlite:///{directory / 'intake.db'}")
    upgrade(engine, service="intake", script_location=MIGRATIONS)
    clock = Clock(now)
    deps = IntakeDeps(calendar=WorkingCalendar.load(default_calendar_dir()), clock=clock,
                      pii=PiiCipher([("test", b"k" * 32)]))
    with transaction(engine) as session:
        seed_catalogue(session=session, deps=deps, source=Catalogue.load())
    return Domain(engine=engine, deps=deps, clock=clock)

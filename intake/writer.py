"""Group commit: the requests that arrive while one transaction is being written all go into
the next one.

A request is answered only once the transaction holding its rows has committed, so nothing is
acknowledged that a crash could lose; but the cost of a transaction (the commit's flush to
disk, the catalogue check, a statement per table) is paid once per batch instead of once per
request. Under light load a batch holds one item and the latency is one transaction's; under
heavy load batches grow, which is what keeps the latency bounded.

Each item is checked in full before it appends anything (intake.service), so a refused item
leaves no trace and the others commit. If the commit itself fails on a unique key (another
intake process took the same event id or case code at the same instant), the batch is rolled
back and its items are written one per transaction, where the loser sees the winner's row and
answers as a retry.

On PostgreSQL the transactions are run from the event loop (intake.pg_writer); this module's
threaded writer takes every batch that one hands back, and all of them on SQLite.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from intake import audit, service
from intake.audit import Note
from intake.batch import Batch
from intake.service import IntakeDeps, NeedsCode, Result
from services.db import transaction
from services.errors import Forbidden, MotcuaError, Unavailable

log = logging.getLogger(__name__)
# Through SQLAlchemy, or straight from psycopg where the batch COPYs (intake.batch).
DATABASE_ERRORS = (IntegrityError, OperationalError, psycopg.IntegrityError,
                   psycopg.OperationalError)
Outcome = Result | MotcuaError


class OnLoop(Protocol):
    async def write(self, items: list["Item"], locked: Callable[[], None] = ...
                    ) -> list[Outcome] | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Item:
    """One write: a domain function (service.receive, submit or record) and its arguments,
    with the audit note to record once its outcome is known."""

    fn: Callable[..., Result | NeedsCode]
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: Note | None = None

    def locks(self) -> str | None:
        data = self.kwargs.get("data")
        return self.kwargs.get("case_code") or getattr(data, "case_code", None)

    def event_id(self) -> str | None:
        data = self.kwargs.get("data")
        given = getattr(data, "event_id", None)
        return str(given) if given else self.kwargs.get("idempotency_key")


def write_batch(engine: Engine, deps: IntakeDeps, items: list[Item]) -> list[Outcome]:
    """Items in one transaction. If it clashes with another process's (a unique key taken at
    the same instant, or a deadlock between their row locks), each item is tried again in a
    transaction of its own, where it sees the other's rows (up to 3 tries)."""
    try:
        return _transaction(engine, deps, items)
    except DATABASE_ERRORS as exc:
        if not clash(exc):
            return [unavailable(exc)] * len(items)
    return [_alone(engine, deps, item) for item in items]


def _transaction(engine: Engine, deps: IntakeDeps, items: list[Item]) -> list[Outcome]:
    with transaction(engine) as session:
        return _apply(Batch(session.connection(), deps.store), deps, items)


def _alone(engine: Engine, deps: IntakeDeps, item: Item) -> Outcome:
    for attempt in range(3):
        try:
            return _transaction(engine, deps, [item])[0]
        except DATABASE_ERRORS as exc:
            if not clash(exc):
                return unavailable(exc)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def clash(exc: Exception) -> bool:
    # deadlock_detected, serialization_failure: PostgreSQL chose this transaction to undo.
    if isinstance(exc, IntegrityError | psycopg.IntegrityError):
        return True
    error = exc.orig if isinstance(exc, OperationalError) else exc
    return getattr(error, "sqlstate", None) in ("40P01", "40001")


def unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"database unavailable: {type(exc).__name__}")


def _apply(batch: Batch, deps: IntakeDeps, items: list[Item]) -> list[Outcome]:
    batch.prefetch(*lookups(items))
    outcomes = service.settle(batch, stage(batch, deps, items))
    audit_outcomes(batch, deps, items, outcomes)
    batch.write()
    return outcomes


def lookups(items: list[Item]) -> tuple[list[str], list[str]]:
    """The cases to lock and the event ids to look up before the items run."""
    return ([c for i in items if (c := i.locks())], [e for i in items if (e := i.event_id())])


def stage(batch: Batch, deps: IntakeDeps, items: list[Item]
          ) -> list[Result | NeedsCode | MotcuaError]:
    """Each item's domain function run on the batch: its result, or the error refusing it."""
    staged: list[Result | NeedsCode | MotcuaError] = []
    for item in items:
        try:
            staged.append(item.fn(batch, deps=deps, **item.kwargs))
        except MotcuaError as exc:
            staged.append(exc)
    return staged


def audit_outcomes(batch: Batch, deps: IntakeDeps, items: list[Item],
                   outcomes: list[Outcome]) -> None:
    now = deps.clock()
    for item, outcome in zip(items, outcomes, strict=True):
        if item.note is None:
            continue
        if isinstance(outcome, MotcuaError):
            detail = outcome.detail if isinstance(outcome, Forbidden) else outcome.code
            batch.audits.append(audit.row(item.note, status=outcome.status, at=now,
                                          detail=detail))
        else:
            body, created = outcome
            batch.audits.append(audit.row(item.note, status=201 if created else 200, at=now,
                                          case_code=body.get("case_code")))


class GroupWriter:
    """Requests queued in arrival order, written a group a transaction.

    With more than one loop writer, the requests waiting while a transaction is in flight go
    into a further one beside it, which does its work while the one before waits on
    PostgreSQL (docs/benchmarks.md, seventeenth and eighteenth passes). It starts only once
    the one before holds its cases' locks and its case numbers (or, handed to the threaded
    writer, is written): if it shares a case it waits for that commit and reads what it
    wrote, so events on one case and case numbers keep the order of arrival. The loop writer
    draws case numbers outside its transaction (intake.pg_writer), so transactions receiving
    cases at one agency do not wait on each other's sequence row."""

    def __init__(self, engine: Engine, deps: IntakeDeps, *, max_items: int = 1000,
                 on_written: Callable[[list[Item], list[Outcome]], None] | None = None,
                 on_loop: Sequence[OnLoop] = (),
                 on_commit: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.deps = deps
        # intake.pg_writer's, on PostgreSQL, one a transaction in flight: a batch one declines
        # (None) is written here. Without any, one transaction at a time, on a thread.
        self.on_loop: list[OnLoop | None] = list(on_loop) or [None]
        # Told "loop" or "thread" for each transaction run (intake's metrics).
        self.on_commit = on_commit
        self.max_items = max_items
        self.on_written = on_written
        # A request's items with one future for all their outcomes: a future an item, and
        # gather over them, cost a batch request about 1 µs an event (docs/benchmarks.md,
        # fourteenth pass).
        self._queue: deque[tuple[list[Item], asyncio.Future[list[Outcome]]]] = deque()
        self._wake = asyncio.Event()
        self._stopped = False

    async def submit(self, items: list[Item]) -> list[Outcome]:
        """The outcome of each item, once its transaction committed (or failed)."""
        if self._stopped:
            raise Unavailable("intake is stopping and no longer accepts writes")
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        self._wake.set()
        return await future

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        free = list(self.on_loop)
        writing: set[asyncio.Task[None]] = set()
        # Set once the last transaction started holds its locks (intake.pg_writer's `locked`).
        last_locked = asyncio.Event()

        def done(task: asyncio.Task[None], writer: OnLoop | None) -> None:
            writing.discard(task)
            free.append(writer)
            self._wake.set()

        def locked(flag: asyncio.Event) -> None:
            flag.set()
            self._wake.set()

        try:
            while True:
                while self._queue and free and (not writing or last_locked.is_set()):
                    writer = free.pop()
                    last_locked = asyncio.Event()
                    task = asyncio.create_task(self._write(
                        self._take(), writer, partial(locked, last_locked)))
                    writing.add(task)
                    task.add_done_callback(partial(done, writer=writer))
                if stop.is_set() and not self._queue and not writing:
                    break
                # Woken by a request, a transaction done, or the stop (once: a set stop would
                # wake this every time while the last transactions finish).
                self._wake.clear()
                woken = asyncio.create_task(self._wake.wait())
                await asyncio.wait({woken} if stopping.done() else {woken, stopping},
                                   return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            self._stopped = True
            stopping.cancel()
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)
            for writer in self.on_loop:
                if writer is not None:
                    writer.close()
            for _items, future in self._queue:
                if not future.done():
                    future.set_exception(
                        Unavailable("intake stopped before writing this request"))
            self._queue.clear()

    def _take(self) -> list[tuple[list[Item], asyncio.Future[list[Outcome]]]]:
        """Whole requests, in arrival order, up to max_items items (at least one request)."""
        taken = [self._queue.popleft()]
        count = len(taken[0][0])
        while self._queue and count + len(self._queue[0][0]) <= self.max_items:
            taken.append(self._queue.popleft())
            count += len(taken[-1][0])
        return taken

    async def _write(self, taken: list[tuple[list[Item], asyncio.Future[list[Outcome]]]],
                     on_loop: OnLoop | None, locked: Callable[[], None]) -> None:
        items = [item for group, _ in taken for item in group]
        try:
            outcomes = await on_loop.write(items, locked) if on_loop is not None else None
            writer = "loop"
            if outcomes is None:
                outcomes = await asyncio.to_thread(write_batch, self.engine, self.deps, items)
                writer = "thread"
        except Exception as exc:
            log.exception("writing a batch of %d items failed", len(items))
            _fail(taken, exc)
            return
        except asyncio.CancelledError:  # intake is stopping
            _fail(taken, Unavailable("intake stopped while writing this request"))
            raise
        finally:
            # A batch handed to the threaded writer, or failed, holds the next one back until
            # it is done.
            locked()
        start = 0
        for group, future in taken:
            if not future.done():  # the request may have gone (cancelled)
                future.set_result(outcomes[start:start + len(group)])
            start += len(group)
        if self.on_commit is not None:
            self.on_commit(writer)
        if self.on_written is not None:
            self.on_written(items, outcomes)


def _fail(taken: list[tuple[list[Item], asyncio.Future[list[Outcome]]]],
          exc: Exception) -> None:
    for _, future in taken:
        if not future.done():
            future.set_exception(exc)

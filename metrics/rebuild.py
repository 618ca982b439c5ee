"""Rebuild the KPI projection from the case log (`motcua metrics rebuild`).

In place, with the metrics consumer stopped, in ONE database transaction: the projection's
tables (cases, counters, processed event ids and the consumer's positions) are emptied, every
record of the case log from offset 0 up to the end offsets seen at the start is folded in with
the same code the live consumer runs (`fold_batch`), the positions are set to those end
offsets, and the transaction commits. Until it commits, readers keep seeing the old figures;
if anything fails it rolls back and the old projection is untouched. When the service starts
again, its consumer resumes after the end offsets and skips what the rebuild applied.

Why not alongside the live consumer: both would write the same counters, and an event the live
consumer is applying while the rebuild replays it would be counted twice. So the service (or
`motcua up`) must be stopped first; docs/monitoring.md says so.
"""

import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlmodel import Session

from contracts import CASES_TOPIC, DecodeError, Envelope, UnknownVersionError, decode
from metrics import models, projection_sql
from metrics.projection import Delta, Key, fold_batch, write_totals
from metrics.settings import MetricsSettings
from services.bus import Bus, TopicPartition, make_bus
from services.db import make_engine
from services.migrations import upgrade

MIGRATIONS = Path(__file__).parent / "migrations"
LIVE_GROUP = "metrics"  # the live consumer's group id (before the topic prefix)
APPLY_CHUNK = 10_000  # two in memory at once (one applying, one decoding): ~100 MB
COLLECT_EVERY = 100  # chunks between the rebuild's own garbage collections (1M events)
FLUSH_COUNTERS = 100_000  # counter rows gathered before they are written: ~25 MB


class RebuildError(Exception):
    """The log holds what this build cannot project: nothing was changed."""


@dataclass
class RebuildReport:
    total: int = 0  # records in the log when the rebuild started
    read: int = 0
    applied: int = 0
    duplicates: int = 0  # the same event id published twice: applied once, as live
    undecodable: int = 0  # what the live consumer dead-letters: skipped
    cases: int = 0
    counters: int = 0
    seconds: float = 0.0


Progress = Callable[[RebuildReport], None]


class _Counters:
    """Counter increments gathered over many chunks, written when many rows are waiting and at
    the end. In the rebuild's one transaction a row written again leaves a version nothing can
    prune until the commit: today's, this month's and the live figures were rewritten by every
    chunk, and each chunk's upsert walked longer chains (docs/benchmarks.md)."""

    def __init__(self, flush_at: int) -> None:
        self.flush_at = flush_at
        self.totals: dict[Key, int] = {}

    def add(self, session: Session, delta: Delta) -> None:
        totals = self.totals
        get = totals.get
        for key, n in delta.tally.items():
            totals[key] = get(key, 0) + n
        if len(totals) >= self.flush_at:
            self.flush(session)

    def flush(self, session: Session) -> None:
        write_totals(session, self.totals)
        self.totals = {}


async def rebuild(
    settings: MetricsSettings, *, progress: Progress | None = None, batch_size: int = 2000,
    bus: Bus | None = None, chunk_events: int = APPLY_CHUNK,
    flush_counters: int = FLUSH_COUNTERS,
) -> RebuildReport:
    engine = make_engine(settings.resolved_database_url("metrics"))
    own_bus = bus is None
    bus = bus or make_bus(settings)
    try:
        await asyncio.to_thread(upgrade, engine, service="metrics", script_location=MIGRATIONS)
        if own_bus:
            await bus.start()
        topic = settings.topic_prefix + CASES_TOPIC
        await bus.ensure_topics([topic])
        ends = {tp: o for tp, o in (await bus.end_offsets([topic])).items()}
        return await _replay(engine, bus, settings.topic_prefix + LIVE_GROUP, ends,
                             progress, batch_size, chunk_events, flush_counters)
    finally:
        if own_bus:
            await bus.close()
        engine.dispose()


async def _replay(
    engine: Engine, bus: Bus, live_group: str, ends: dict[TopicPartition, int],
    progress: Progress | None, batch_size: int, chunk_events: int, flush_counters: int,
) -> RebuildReport:
    started = time.monotonic()
    report = RebuildReport(total=sum(ends.values()))

    async def from_the_start(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    # A group of its own that commits nothing: the live group's offsets stay as they were.
    group = f"{live_group}.rebuild.{int(time.time() * 1000)}"
    consumer = bus.consumer(group_id=group, topics=sorted({tp.topic for tp in ends}),
                            load_positions=from_the_start)
    await consumer.start()
    # Applied in chunks of at least APPLY_CHUNK events, in a worker thread, while the next
    # chunk is fetched and decoded: a bigger chunk folds more facts into each counter row,
    # and decoding overlaps the database's work (docs/benchmarks.md).
    applying: asyncio.Future[None] | None = None
    # The cycle collector off, and run every COLLECT_EVERY chunks instead: a chunk's envelopes
    # live long enough to be promoted through every generation, and the collections they
    # triggered walked the whole heap (the counters, the chunk in flight) for next to
    # nothing, a fifth of the rebuild's CPU; reference counting frees the rest as before
    # (docs/benchmarks.md).
    collecting = gc.isenabled()
    gc.disable()
    chunks = 0
    try:
        with Session(engine) as session, session.begin():
            # Emptied first: deleting every row is the one whole-table scan it wants.
            _empty(session, live_group)
            projection_sql.tune_transaction(session)
            reached = {tp: 0 for tp in ends}
            chunk: list[Envelope] = []
            counters = _Counters(flush_counters)
            try:
                while any(reached[tp] < end for tp, end in ends.items()):
                    messages = await consumer.getmany(timeout_ms=500, max_records=batch_size)
                    for m in messages:
                        # Records appended after the start belong to the live consumer.
                        if m.offset >= ends.get(m.tp, 0):
                            continue
                        reached[m.tp] = max(reached[m.tp], m.offset + 1)
                        report.read += 1
                        try:
                            chunk.append(decode(m.value))
                        except UnknownVersionError as exc:
                            raise RebuildError(
                                f"{m.topic}[{m.partition}]@{m.offset} is a newer event version "
                                f"than this build knows ({exc}); upgrade motcua and rebuild again"
                            ) from exc
                        except DecodeError:
                            report.undecodable += 1
                    last = not any(reached[tp] < end for tp, end in ends.items())
                    if len(chunk) >= chunk_events or (last and chunk):
                        if applying is not None:
                            await applying
                        applying = asyncio.ensure_future(
                            asyncio.to_thread(_apply, session, chunk, report, counters))
                        chunk = []
                        chunks += 1
                        if chunks % COLLECT_EVERY == 0:
                            gc.collect()
                    if progress is not None and messages:
                        progress(report)
            finally:
                # Never leave the transaction while a worker thread still uses its session.
                if applying is not None:
                    await asyncio.gather(applying, return_exceptions=True)
            if applying is not None:
                await applying  # raises what the last chunk raised
            counters.flush(session)
            models.TRACKING.save_positions(session, live_group, ends)
            report.cases = _count(session, models.ProjectedCase)
            report.counters = _count(session, models.Counter)
    finally:
        if collecting:
            gc.enable()
        await consumer.stop()
    report.seconds = time.monotonic() - started
    return report


def _empty(session: Session, live_group: str) -> None:
    session.execute(delete(models.Counter))
    session.execute(delete(models.ProjectedCase))
    session.execute(delete(models.TRACKING.processed))
    positions = models.TRACKING.positions
    session.execute(delete(positions).where(positions.c.group_id == live_group))


def _apply(session: Session, envelopes: list[Envelope], report: RebuildReport,
           counters: _Counters) -> None:
    delta, applied = fold_batch(session, envelopes)
    report.duplicates += len(envelopes) - applied
    report.applied += applied
    counters.add(session, delta)


def _count(session: Session, table: Any) -> int:
    return int(session.execute(select(func.count()).select_from(table)).scalar_one())

"""The one shape of every consumer: fetch a batch, apply it in one database transaction together
with the positions and processed event ids, commit, then acknowledge to the bus.

A record this build cannot decode goes to the dead-letter topic and the partition moves on. A
record of a newer event version than this build knows is not bad, only early: the partition is
parked at it (position stored at that record, fetching paused) until an upgraded consumer reads
it again from there. Skipping it would apply the case's later events without it, out of order
(docs/reliability.md).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from contracts import DEAD_LETTER_TOPIC, DecodeError, Envelope, UnknownVersionError, decode
from services.bus.base import Bus, Message, Record, TopicPartition
from services.db import transaction
from services.tracking import Tracking

log = logging.getLogger(__name__)

# Applies the new (never seen) events of a batch; runs in a worker thread inside the transaction.
BatchHandler = Callable[[Session, list[Envelope]], None]


@dataclass
class ConsumerStats:
    """Read by the service's /metrics collector."""

    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    restarts: int = 0
    last_batch_at: float | None = None
    lag: dict[TopicPartition, int] = field(default_factory=dict)
    # Partitions waiting at a newer event version than this build knows: partition -> offset.
    parked: dict[TopicPartition, int] = field(default_factory=dict)
    running: bool = False


@dataclass
class ConsumerSpec:
    group_id: str
    topics: Sequence[str]
    handle: BatchHandler
    # Runs in the event loop after the transaction committed, with the batch's events.
    after_commit: Callable[[list[Envelope]], None] | None = None


class ConsumerRunner:
    def __init__(
        self, *, bus: Bus, engine: Engine, tracking: Tracking, spec: ConsumerSpec,
        batch_size: int, poll_ms: int, topic_prefix: str = "",
    ) -> None:
        self._bus = bus
        self._engine = engine
        self._tracking = tracking
        self._spec = spec
        self._batch = batch_size
        self._poll = poll_ms
        self._prefix = topic_prefix
        self.stats = ConsumerStats()

    @property
    def group_id(self) -> str:
        return self._prefix + self._spec.group_id

    async def supervise(self, stop: asyncio.Event) -> None:
        """Run until stopped; an unexpected crash is logged loudly and the loop restarted."""
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.run(stop)
            except Exception:
                self.stats.restarts += 1
                log.exception("consumer %s crashed; restarting in %.1fs", self.group_id, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 30)

    async def run(self, stop: asyncio.Event) -> None:
        topics = [self._prefix + t for t in self._spec.topics]

        async def load(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
            stored = await asyncio.to_thread(
                self._tracking.load_positions, self._engine, self.group_id, tps
            )
            # The database is the source of truth: a partition it has never seen is read from
            # the start, even if the group committed offsets for it (a rebuilt database).
            return {tp: stored.get(tp, 0) for tp in tps}

        consumer = self._bus.consumer(group_id=self.group_id, topics=topics, load_positions=load)
        await consumer.start()
        self.stats.running = True
        try:
            while not stop.is_set():
                messages = await consumer.getmany(timeout_ms=self._poll, max_records=self._batch)
                if messages:
                    done = await self._process(messages, stop)
                    if done is None:
                        break  # stopped before the batch committed: nothing applied
                    offsets, parked = done
                    await consumer.commit(offsets)
                    for tp, offset in parked.items():
                        consumer.pause_at(tp, offset)
                    self.stats.parked.update(parked)
                    self.stats.batches += 1
                    self.stats.last_batch_at = time.time()
                self.stats.lag = await consumer.lag()
                # A partition reassigned elsewhere is parked (or not) at its new owner.
                owned = consumer.assignment()
                self.stats.parked = {tp: o for tp, o in self.stats.parked.items() if tp in owned}
        finally:
            self.stats.running = False
            self.stats.parked = {}
            await consumer.stop()

    async def _process(
        self, messages: list[Message], stop: asyncio.Event
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]] | None:
        """Apply a batch; returns (offsets to commit, partitions parked at an offset), or None
        if stopped before the database commit."""
        decoded: list[tuple[Message, Envelope | DecodeError]] = []
        parked: dict[TopicPartition, int] = {}
        for m in messages:
            try:
                decoded.append((m, decode(m.value)))
            except UnknownVersionError as exc:
                if m.offset < parked.get(m.tp, m.offset + 1):
                    parked[m.tp] = m.offset
                    log.error("parking %s[%d] at offset %d until %s is upgraded: %s", m.topic,
                              m.partition, m.offset, self.group_id, exc)
            except DecodeError as exc:
                decoded.append((m, exc))
        envelopes: list[Envelope] = []
        dead: list[Record] = []
        for m, result in decoded:
            if m.offset >= parked.get(m.tp, m.offset + 1):
                continue  # behind a parked record: read again, in order, after the upgrade
            if isinstance(result, DecodeError):
                dead.append(self._dead_letter(m, result))
            else:
                envelopes.append(result)
        if dead:
            # Published before the batch commits: at worst a dead letter is recorded twice,
            # never lost, and the partition still moves on.
            await self._bus.publish(dead)
            self.stats.dead_lettered += len(dead)
        offsets: dict[TopicPartition, int] = {}
        for m in messages:
            offsets[m.tp] = max(offsets.get(m.tp, 0), m.offset + 1)
        # A parked partition's stored position is the parked record itself.
        offsets.update(parked)
        applied = await self._apply_with_retry(envelopes, offsets, stop)
        if applied is None:
            return None
        self.stats.consumed += len(envelopes) + len(dead)
        self.stats.applied += applied
        self.stats.duplicates += len(envelopes) - applied
        if self._spec.after_commit is not None:
            self._spec.after_commit(envelopes)
        return offsets, parked

    async def _apply_with_retry(
        self, envelopes: list[Envelope], offsets: dict[TopicPartition, int], stop: asyncio.Event
    ) -> int | None:
        delay = 0.2
        while not stop.is_set():
            try:
                return await asyncio.to_thread(self._apply, envelopes, offsets)
            except OperationalError as exc:  # database restarting or locked: retriable
                log.warning("consumer %s: database error, retrying: %s", self.group_id, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10)
        return None

    def _apply(self, envelopes: list[Envelope], offsets: dict[TopicPartition, int]) -> int:
        with transaction(self._engine) as session:
            new_ids = self._tracking.claim_new(session, (e.id for e in envelopes))
            fresh: list[Envelope] = []
            for e in envelopes:
                if e.id in new_ids:
                    # One batch may hold the same envelope twice (a republish): apply it once.
                    new_ids.discard(e.id)
                    fresh.append(e)
            if fresh:
                self._spec.handle(session, fresh)
            self._tracking.save_positions(session, self.group_id, offsets)
            return len(fresh)

    def _dead_letter(self, m: Message, exc: DecodeError) -> Record:
        log.error("dead-lettering %s[%d]@%d: %s", m.topic, m.partition, m.offset, exc)
        reason = {
            "code": exc.code,
            "reason": str(exc)[:2000],
            "group_id": self.group_id,
            "topic": m.topic,
            "partition": m.partition,
            "offset": m.offset,
        }
        headers = (*m.headers, ("dlq_reason", orjson.dumps(reason)))
        return Record(topic=self._prefix + DEAD_LETTER_TOPIC, key=m.key, value=m.value,
                      headers=headers)

"""The one shape of every consumer: fetch a batch, apply it in one database transaction together
with the positions and processed event ids (or the handler's own record of what it applied),
commit, then acknowledge to the bus.

A record this build cannot decode goes to the dead-letter topic and the partition moves on. A
record of a newer event version than this build knows is not bad, only early: the partition is
parked at it (position stored at that record, fetching paused) until an upgraded consumer reads
it again from there. Skipping it would apply the case's later events without it, out of order
(docs/reliability.md).
"""

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from contracts import DEAD_LETTER_TOPIC, DecodeError, Envelope, UnknownVersionError, decode
from services.bus.base import Bus, Consumer, Message, Record, TopicPartition
from services.db import transaction
from services.tracking import Tracking

log = logging.getLogger(__name__)
_VALUE = operator.attrgetter("value")

# Applies the new (never seen) events of a batch; runs in a worker thread inside the transaction.
# A handler that recognises redeliveries itself (ConsumerSpec.deduplicates) is given every
# event of the batch and returns how many it applied.
BatchHandler = Callable[[Session, list[Envelope]], int | None]


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
class _Batch:
    """A fetched batch, decoded: what to apply, what to dead-letter, where it leaves each
    partition, and the partitions parked at a newer event version (partition -> offset)."""

    envelopes: list[Envelope] = field(default_factory=list)
    dead: list[Record] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    parked: dict[TopicPartition, int] = field(default_factory=dict)


# Records waiting on unparked partitions while fetches return nothing for this long: the client
# is stuck (seen once in several runs after a broker restart, aiokafka never fetching the
# last record of a partition); the runner starts a new one from the database's positions.
STALL_SECONDS = 20.0
LAG_SECONDS = 1.0


class ConsumerStalled(Exception):
    pass


class RetryBatch(Exception):
    """The batch met another consumer's write to the same state: for a moment during a
    rebalance two consumers may hold one partition, the old one finishing its batch. Rolled
    back and applied again, the batch then sees that write and skips what it applied."""


def check_stall(lag: dict[TopicPartition, int], parked: dict[TopicPartition, int],
                since: float | None, now: float, limit: float, group_id: str) -> float | None:
    """After an empty fetch: since when records have been waiting (None if none wait), or
    ConsumerStalled once that is longer than `limit`. Parked partitions wait by design."""
    waiting = sum(n for tp, n in lag.items() if tp not in parked)
    if waiting == 0:
        return None
    if since is None:
        return now
    if now - since > limit:
        raise ConsumerStalled(f"{waiting} records wait on {group_id}'s partitions, none fetched "
                              f"for {now - since:.0f}s: restarting the consumer")
    return since


@dataclass
class ConsumerSpec:
    group_id: str
    topics: Sequence[str]
    handle: BatchHandler
    # True: the handler recognises redelivered events by state it keeps anyway (the metrics
    # projection: each case's last subject sequence), so no processed id is stored for them.
    deduplicates: bool = False
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
        self.stall_seconds = STALL_SECONDS

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
        try:
            await consumer.start()
        except BaseException:
            # Half started (the broker went away between bootstrap and subscribe): its client
            # and connections are closed before the supervisor starts the next one.
            await consumer.stop()
            raise
        self.stats.running = True
        # The next batch is fetched and decoded while this one is in the database: decoding is
        # CPU in the event loop, the database work mostly waiting on the server
        # (docs/benchmarks.md). Nothing of the next batch is applied or acknowledged before
        # this one committed; a run that ends drops it, and the next run's consumer starts
        # from the positions in the database.
        ahead: asyncio.Task[_Batch | None] | None = None
        # Committed to the database, not yet to the bus. When the next batch is already
        # fetched, the bus learns this one's offsets, its partitions are parked there and its
        # after-commit hook runs while that one is in the database: between two batches,
        # they kept the database waiting for a tenth of the time (docs/benchmarks.md).
        settling: _Batch | None = None
        watching = asyncio.create_task(self._watch_lag(consumer))
        waiting_since: float | None = None
        try:
            while not stop.is_set():
                if watching.done():
                    watching.result()  # raises what ended it
                if ahead is not None:
                    batch, ahead = await ahead, None
                else:
                    batch = await self._fetch(consumer, {})
                if batch is None:
                    if settling is not None:
                        await self._settle(consumer, settling)
                        settling = None
                    waiting_since = check_stall(
                        self.stats.lag, self.stats.parked, waiting_since, time.monotonic(),
                        self.stall_seconds, self.group_id)
                    continue
                waiting_since = None
                applying = asyncio.create_task(self._process(batch, stop))
                # Until the batch before is settled, its parked partitions are not paused at
                # the consumer: the next fetch leaves their later records out too.
                parked = batch.parked if settling is None else {**settling.parked,
                                                                **batch.parked}
                ahead = asyncio.create_task(self._fetch(consumer, parked))
                try:
                    if settling is not None:
                        await self._settle(consumer, settling)
                        settling = None
                finally:
                    # Never left running behind an error: the next run would start from
                    # positions this transaction may still change.
                    applied = await applying
                if not applied:
                    break  # stopped before the batch committed: nothing applied
                if ahead.done():
                    settling = batch  # settled beside the next batch, already fetched
                else:
                    # The next fetch may wait for records: the bus and the hook (a relay to
                    # wake, the freshness to observe) do not wait with it.
                    await self._settle(consumer, batch)
            if settling is not None:
                await self._settle(consumer, settling)
        finally:
            for task in (ahead, watching):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.stats.running = False
            self.stats.parked = {}
            await consumer.stop()

    async def _settle(self, consumer: Consumer, batch: "_Batch") -> None:
        """What follows a batch's database commit: the bus learns its offsets, its parked
        partitions are paused there, its after-commit hook runs."""
        await consumer.commit(batch.offsets)
        for tp, offset in batch.parked.items():
            consumer.pause_at(tp, offset)
        self.stats.parked.update(batch.parked)
        # A partition reassigned elsewhere is parked (or not) at its new owner.
        owned = consumer.assignment()
        self.stats.parked = {tp: o for tp, o in self.stats.parked.items() if tp in owned}
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        if self._spec.after_commit is not None:
            self._spec.after_commit(batch.envelopes)

    async def _watch_lag(self, consumer: Consumer) -> None:
        # Lag costs the broker a round trip: once a second, beside the batches rather than
        # between two of them.
        while True:
            self.stats.lag = await consumer.lag()
            await asyncio.sleep(LAG_SECONDS)

    async def _fetch(
        self, consumer: Consumer, parked_before: dict[TopicPartition, int]
    ) -> "_Batch | None":
        messages = await consumer.getmany(timeout_ms=self._poll, max_records=self._batch)
        if parked_before:
            # Fetched while the batch before parked these partitions: read again after the
            # upgrade, from the parked record on.
            messages = [m for m in messages if m.offset < parked_before.get(m.tp, m.offset + 1)]
        return self._decode(messages) if messages else None

    def _decode(self, messages: list[Message]) -> "_Batch":
        try:
            # The usual batch, every record a current event: decoded with no Python step per
            # record (that loop was a tenth of decoding; docs/benchmarks.md, ninth pass).
            envelopes = list(map(decode, map(_VALUE, messages)))
        except DecodeError:
            return self._decode_each(messages)  # decoded again, one by one, to sort them out
        # A partition's records come in offset order: its last one is where it is left.
        return _Batch(envelopes=envelopes, offsets={m.tp: m.offset + 1 for m in messages})

    def _decode_each(self, messages: list[Message]) -> "_Batch":
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
        batch = _Batch(parked=parked)
        for m, result in decoded:
            if m.offset >= parked.get(m.tp, m.offset + 1):
                continue  # behind a parked record: read again, in order, after the upgrade
            if isinstance(result, DecodeError):
                batch.dead.append(self._dead_letter(m, result))
            else:
                batch.envelopes.append(result)
        for m in messages:
            batch.offsets[m.tp] = max(batch.offsets.get(m.tp, 0), m.offset + 1)
        # A parked partition's stored position is the parked record itself.
        batch.offsets.update(parked)
        return batch

    async def _process(self, batch: "_Batch", stop: asyncio.Event) -> bool:
        """Apply a batch; False if stopped before the database commit."""
        if batch.dead:
            # Published before the batch commits: at worst a dead letter is recorded twice,
            # never lost, and the partition still moves on.
            await self._bus.publish(batch.dead)
            self.stats.dead_lettered += len(batch.dead)
        applied = await self._apply_with_retry(batch.envelopes, batch.offsets, stop)
        if applied is None:
            return False
        self.stats.consumed += len(batch.envelopes) + len(batch.dead)
        self.stats.applied += applied
        self.stats.duplicates += len(batch.envelopes) - applied
        return True

    async def _apply_with_retry(
        self, envelopes: list[Envelope], offsets: dict[TopicPartition, int], stop: asyncio.Event
    ) -> int | None:
        delay = 0.2
        while not stop.is_set():
            try:
                return await asyncio.to_thread(self._apply, envelopes, offsets)
            # The database restarting or locked, or another consumer's write: retriable.
            except (OperationalError, RetryBatch) as exc:
                log.warning("consumer %s: applying the batch again: %s", self.group_id, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10)
        return None

    def _apply(self, envelopes: list[Envelope], offsets: dict[TopicPartition, int]) -> int:
        with transaction(self._engine) as session:
            applied = self._apply_new(session, envelopes)
            self._tracking.save_positions(session, self.group_id, offsets)
            return applied

    def _apply_new(self, session: Session, envelopes: list[Envelope]) -> int:
        """Apply the envelopes not applied before; how many that was."""
        if self._spec.deduplicates:
            applied = self._spec.handle(session, envelopes)
            return len(envelopes) if applied is None else applied
        new_ids = self._tracking.claim_new(session, (e.id for e in envelopes))
        fresh: list[Envelope] = []
        for e in envelopes:
            if e.id in new_ids:
                # One batch may hold the same envelope twice (a republish): apply it once.
                new_ids.discard(e.id)
                fresh.append(e)
        if fresh:
            self._spec.handle(session, fresh)
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

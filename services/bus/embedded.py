"""The embedded bus: Kafka's semantics in a local database, for the one-process default.

Records are appended to a durable log (keyed partitions chosen with Kafka's own partitioner),
consumer groups keep committed offsets, and a restart resumes where each group stopped. One
process owns the log, so offsets are allocated in memory under a lock and written with the batch.
An occasional second writer (`motcua deadletters replay` beside a running `motcua up`) is
tolerated: a clash on an offset reloads the log's ends and retries, and an idle consumer looks
for records appended by another process about once a second.
"""

import asyncio
import contextlib
import time
from collections.abc import Sequence

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from services.bus.base import Message, PositionLoader, Record, TopicPartition
from services.bus.partitioner import KeyPartitioner
from services.db import make_engine

_meta = MetaData()
bus_log = Table(
    "bus_log",
    _meta,
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", LargeBinary, nullable=False),
    # Milliseconds since the epoch overflow PostgreSQL's 32-bit INTEGER.
    Column("timestamp_ms", BigInteger, nullable=False),
)
bus_group_offsets = Table(
    "bus_group_offsets",
    _meta,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("committed", BigInteger, nullable=False),
)
# A topic's partition count, fixed when it is first used: the key -> partition mapping (and so
# per-key order) must survive a restart even if the log has records in only some partitions.
bus_topics = Table(
    "bus_topics",
    _meta,
    Column("topic", String(200), primary_key=True),
    Column("partitions", Integer, nullable=False),
)


class EmbeddedBus:
    kind = "embedded"

    def __init__(self, url: str, *, partitions: int = 6) -> None:
        self._url = url
        self._partitions = partitions
        self._engine: Engine | None = None
        self._next: dict[TopicPartition, int] = {}
        self._topics: dict[str, int] = {}
        self._stored_topics: set[str] = set()  # those with a row in bus_topics
        self._lock = asyncio.Lock()
        self._appended = asyncio.Condition()
        self._partitioner = KeyPartitioner()
        # Bumped on every append, so a consumer that found nothing knows whether to wait.
        self.generation = 0
        self._refreshed_at = 0.0

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("bus not started")
        return self._engine

    async def start(self) -> None:
        self._engine = make_engine(self._url, pool_size=4)
        await asyncio.to_thread(_meta.create_all, self._engine)
        await asyncio.to_thread(self._load_state)

    def _load_state(self) -> None:
        with self.engine.connect() as conn:
            for topic, partitions in conn.execute(select(bus_topics)):
                self._topics[topic] = partitions
        for tp, end in self._read_ends().items():
            self._next[tp] = end
            # A log written before bus_topics existed: at least the configured count.
            self._topics[tp.topic] = max(self._topics.get(tp.topic, self._partitions),
                                         tp.partition + 1)
        self._stored_topics = set(self._topics)

    def _read_ends(self) -> dict[TopicPartition, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bus_log.c.topic, bus_log.c.partition, func.max(bus_log.c.offset)).group_by(
                    bus_log.c.topic, bus_log.c.partition
                )
            )
            return {TopicPartition(t, p): last + 1 for t, p, last in rows}

    async def refresh(self, *, every_s: float = 1.0) -> None:
        """Notice records another process appended (at most every `every_s`)."""
        if time.monotonic() - self._refreshed_at < every_s:
            return
        self._refreshed_at = time.monotonic()
        async with self._lock:
            ends = await asyncio.to_thread(self._read_ends)
            grown = {tp: e for tp, e in ends.items() if e > self._next.get(tp, 0)}
            self._next.update(grown)
        if grown:
            async with self._appended:
                self.generation += 1
                self._appended.notify_all()

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        async with self._lock:
            for t in topics:
                # A topic keeps the partition count it was created with, as on Kafka.
                self.partitions_for(t)
            await asyncio.to_thread(self._store_topics)

    def partitions_for(self, topic: str) -> int:
        return self._topics.setdefault(topic, self._partitions)

    def _topic_rows(self) -> list[dict[str, object]]:
        return [
            {"topic": t, "partitions": n}
            for t, n in self._topics.items()
            if t not in self._stored_topics
        ]

    def _store_topics(self) -> None:
        rows = self._topic_rows()
        if rows:
            with self.engine.begin() as conn:
                self._insert_topics(conn, rows)
            self._stored_topics.update(str(r["topic"]) for r in rows)

    def _insert_topics(self, conn: Connection, rows: list[dict[str, object]]) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(bus_topics).on_conflict_do_nothing(), rows)

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        async with self._lock:
            try:
                allocated = await self._publish_locked(records)
            except IntegrityError:
                # Another process appended to one of these partitions: take its ends, retry.
                ends = await asyncio.to_thread(self._read_ends)
                self._next.update({tp: max(e, self._next.get(tp, 0)) for tp, e in ends.items()})
                allocated = await self._publish_locked(records)
            self._next.update(allocated)
        async with self._appended:
            self.generation += 1
            self._appended.notify_all()

    async def _publish_locked(self, records: Sequence[Record]) -> dict[TopicPartition, int]:
        now = int(time.time() * 1000)
        rows = []
        allocated: dict[TopicPartition, int] = {}
        for r in records:
            n = self.partitions_for(r.topic)
            part = self._partitioner(r.key, list(range(n)), list(range(n)))
            tp = TopicPartition(r.topic, part)
            offset = allocated.get(tp, self._next.get(tp, 0))
            allocated[tp] = offset + 1
            rows.append(
                {
                    "topic": r.topic,
                    "partition": part,
                    "offset": offset,
                    "key": r.key,
                    "value": r.value,
                    "headers": orjson.dumps([[k, v.hex()] for k, v in r.headers]),
                    "timestamp_ms": now,
                }
            )
        await asyncio.to_thread(self._append, rows)
        return allocated

    def _append(self, rows: list[dict[str, object]]) -> None:
        with self.engine.begin() as conn:
            # A topic first seen here is created with the log records, in one transaction.
            topics = self._topic_rows()
            if topics:
                self._insert_topics(conn, topics)
            conn.execute(insert(bus_log), rows)
        self._stored_topics.update(str(r["topic"]) for r in topics)

    def consumer(
        self, *, group_id: str, topics: Sequence[str], load_positions: PositionLoader
    ) -> "EmbeddedConsumer":
        return EmbeddedConsumer(self, group_id, list(topics), load_positions)

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        return {
            TopicPartition(t, p): self._next.get(TopicPartition(t, p), 0)
            for t in topics
            for p in range(self.partitions_for(t))
        }

    async def ready(self) -> bool:
        return self._engine is not None

    async def wait_for_append(self, seen_generation: int, timeout: float) -> None:
        async with self._appended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._appended.wait_for(lambda: self.generation != seen_generation), timeout
                )

    def read(self, tp: TopicPartition, start: int, limit: int) -> list[Message]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bus_log)
                .where(
                    bus_log.c.topic == tp.topic,
                    bus_log.c.partition == tp.partition,
                    bus_log.c.offset >= start,
                )
                .order_by(bus_log.c.offset)
                .limit(limit)
            ).all()
        return [
            Message(
                tp=tp,
                offset=r.offset,
                key=r.key,
                value=r.value,
                headers=tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(r.headers)),
                timestamp_ms=r.timestamp_ms,
            )
            for r in rows
        ]

    def committed(self, group_id: str) -> dict[TopicPartition, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(bus_group_offsets).where(bus_group_offsets.c.group_id == group_id)
            )
            return {TopicPartition(r.topic, r.partition): r.committed for r in rows}

    def commit(self, group_id: str, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        rows = [
            {"group_id": group_id, "topic": tp.topic, "partition": tp.partition, "committed": o}
            for tp, o in offsets.items()
        ]
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(bus_group_offsets)
        stmt = stmt.on_conflict_do_update(
            index_elements=["group_id", "topic", "partition"],
            set_={"committed": stmt.excluded.committed},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)


class EmbeddedConsumer:
    """A group's single member: in one process every partition is assigned to it."""

    def __init__(
        self, bus: EmbeddedBus, group_id: str, topics: list[str], load_positions: PositionLoader
    ) -> None:
        self._bus = bus
        self._group = group_id
        self._topics = topics
        self._load = load_positions
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()

    async def start(self) -> None:
        await self._bus.ensure_topics(self._topics)
        tps = [
            TopicPartition(t, p) for t in self._topics for p in range(self._bus.partitions_for(t))
        ]
        stored = await self._load(tps)
        committed = await asyncio.to_thread(self._bus.committed, self._group)
        for tp in tps:
            # As on Kafka: the consumer's own stored position wins, else the group's commit.
            self._positions[tp] = stored.get(tp, committed.get(tp, 0))

    async def stop(self) -> None:
        self._positions.clear()
        self._paused.clear()

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            seen = self._bus.generation
            out = await asyncio.to_thread(self._fetch, max_records)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            await self._bus.refresh()
            await self._bus.wait_for_append(seen, min(remaining, 1.0))

    def _fetch(self, max_records: int) -> list[Message]:
        out: list[Message] = []
        ends = self._bus._next
        for tp, pos in self._positions.items():
            if len(out) >= max_records:
                break
            if tp in self._paused or ends.get(tp, 0) <= pos:
                continue
            msgs = self._bus.read(tp, pos, max_records - len(out))
            if msgs:
                self._positions[tp] = msgs[-1].offset + 1
                out.extend(msgs)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.to_thread(self._bus.commit, self._group, offsets)

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def pause_at(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset
        self._paused.add(tp)

    async def lag(self) -> dict[TopicPartition, int]:
        ends = self._bus._next
        return {tp: max(0, ends.get(tp, 0) - pos) for tp, pos in self._positions.items()}

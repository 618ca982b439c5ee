"""ConsumerRunner on every bus: each event applied once, resumption from the positions stored with
the state, and dead letters for what cannot be decoded (the partition still moves on)."""

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from contracts import CASES_TOPIC, DEAD_LETTER_TOPIC, Envelope, Transferred, encode, new_envelope
from contracts.types import TransferMethod
from services.bus.base import Bus, Message, Record, TopicPartition
from services.bus.embedded import EmbeddedBus
from services.bus.kafka import KafkaBus
from services.consumer import (
    ConsumerRunner,
    ConsumerSpec,
    ConsumerStalled,
    RetryBatch,
    check_stall,
)
from services.db import make_engine
from services.tracking import Tracking
from tests.faults.upgraded import knows_next_version
from tests.services.test_bus import (
    PARTITIONS,
    BusEnv,
    consuming,
    delete_topics,
    sync,
    take,
)

GROUP = "projector"


def transferred(case_code: str, n: int, *, event_id: str | None = None) -> Envelope:
    """The n-th transfer of one case (its events share a key, so they stay in order)."""
    return new_envelope(
        Transferred(
            case_code=case_code,
            occurred_at=datetime(2025, 1, 2, 8, tzinfo=UTC) + timedelta(hours=n),
            from_office="000.00.01.H56",
            to_office=f"000.00.{n % 90 + 10:02d}.H56",
            method=TransferMethod.ELECTRONIC,
        ),
        source="/motcua/test",
        event_id=event_id,
    )


def case_code(n: int) -> str:
    return f"000.00.01.H56-250102-{n:04d}"


def record(topic: str, env: Envelope) -> Record:
    key, value, headers = encode(env)
    return Record(topic, key, value, tuple(headers))


@dataclass
class Projection:
    """The consumer's database: tracking tables plus one table the handler writes."""

    engine: Engine
    tracking: Tracking
    applied: Table

    def handle(self, session: Session, envelopes: list[Envelope]) -> None:
        session.execute(
            insert(self.applied),
            [{"event_id": e.id, "case_code": e.subject, "type": e.type} for e in envelopes],
        )

    def applied_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(self.applied.c.event_id).order_by(self.applied.c.seq)).scalars()
            )

    def positions(self, group_id: str) -> dict[TopicPartition, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.tracking.positions))
            return {
                TopicPartition(r.topic, r.partition): r.next_offset
                for r in rows
                if r.group_id == group_id
            }


@dataclass
class RunnerEnv:
    bus: BusEnv
    make_projection: Callable[[], Projection]

    @property
    def topic(self) -> str:
        return self.bus.topic(CASES_TOPIC)

    @property
    def dead_letter_topic(self) -> str:
        return self.bus.topic(DEAD_LETTER_TOPIC)

    def runner(self, bus: Bus, projection: Projection) -> ConsumerRunner:
        return ConsumerRunner(
            bus=bus,
            engine=projection.engine,
            tracking=projection.tracking,
            spec=ConsumerSpec(group_id=GROUP, topics=[CASES_TOPIC], handle=projection.handle),
            batch_size=100,
            poll_ms=50,
            topic_prefix=self.bus.prefix,
        )


@pytest.fixture(
    params=[
        "embedded-sqlite",
        pytest.param("embedded-postgres", marks=pytest.mark.postgres),
        pytest.param("kafka-postgres", marks=[pytest.mark.kafka, pytest.mark.postgres]),
    ]
)
def env(request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str) -> Iterator[RunnerEnv]:
    kind = str(request.param)
    engines: list[Engine] = []
    tables: list[Table] = []

    def database_url() -> str:
        if kind == "embedded-sqlite":
            return f"sqlite:///{tmp_path / f'consumer{len(engines)}.db'}"
        return str(request.getfixturevalue("make_pg_database")())

    def make_projection() -> Projection:
        engine = make_engine(database_url(), pool_size=2)
        engines.append(engine)
        tracking = Tracking(f"t_{uuid.uuid4().hex[:12]}")
        applied = Table(
            f"t_{uuid.uuid4().hex[:12]}_applied",
            MetaData(),
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("event_id", String(64), nullable=False),
            Column("case_code", String(64), nullable=False),
            Column("type", String(100), nullable=False),
        )
        tables.extend([tracking.positions, tracking.processed])
        SQLModel.metadata.create_all(engine, tables=[tracking.positions, tracking.processed])
        applied.create(engine)
        return Projection(engine, tracking, applied)

    if kind == "kafka-postgres":
        bootstrap = str(request.getfixturevalue("kafka_bootstrap"))
        bus_env = BusEnv(
            lambda: KafkaBus(bootstrap, client_id="motcua-test", partitions=PARTITIONS),
            topic_prefix,
        )
    else:
        bus_url = database_url() if kind == "embedded-postgres" else f"sqlite:///{tmp_path}/bus.db"
        bus_env = BusEnv(lambda: EmbeddedBus(bus_url, partitions=PARTITIONS), topic_prefix)

    yield RunnerEnv(bus_env, make_projection)

    for engine in engines:
        engine.dispose()
    for table in tables:
        SQLModel.metadata.remove(table)
    if kind == "kafka-postgres":
        asyncio.run(delete_topics(str(request.getfixturevalue("kafka_bootstrap")), topic_prefix))


async def run_until(
    runner: ConsumerRunner, done: Callable[[], bool], *, timeout_s: float = 20.0
) -> None:
    """Run the consumer loop until `done()` holds (checked in a worker thread), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await asyncio.to_thread(done):
            if task.done():
                task.result()  # the loop crashed: show why
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; stats {runner.stats}")
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


@sync
async def test_republished_event_is_applied_once(env: RunnerEnv) -> None:
    db = env.make_projection()
    a = [transferred(case_code(1), n) for n in range(3)]
    b = transferred(case_code(2), 0)
    async with env.bus.started() as bus:
        await bus.ensure_topics([env.topic, env.dead_letter_topic])
        # The same envelope twice in one batch (a producer retry) ...
        await bus.publish([record(env.topic, e) for e in (a[0], a[0], a[1], b)])
        runner = env.runner(bus, db)
        await run_until(runner, lambda: runner.stats.consumed == 4)
        # ... and again in a later batch (an outbox relay that crashed before deleting).
        await bus.publish([record(env.topic, e) for e in (a[1], a[2], b)])
        await run_until(runner, lambda: runner.stats.consumed == 7)

    ids = db.applied_ids()
    assert sorted(ids) == sorted({a[0].id, a[1].id, a[2].id, b.id})
    on_case_1 = [i for i in ids if i in {e.id for e in a}]
    assert on_case_1 == [e.id for e in a]
    assert runner.stats.duplicates == 3
    assert runner.stats.dead_lettered == 0


@sync
async def test_a_batch_that_met_another_consumers_write_is_applied_again(env: RunnerEnv) -> None:
    """A handler that recognises redeliveries itself stores no processed ids; when it meets
    another consumer's write (RetryBatch) the transaction rolls back, with what the handler
    wrote, and the batch is applied again by the same consumer, not a restarted one."""
    db = env.make_projection()
    events = [transferred(case_code(1), n) for n in range(3)]
    calls: list[int] = []

    def handle(session: Session, envelopes: list[Envelope]) -> int:
        db.handle(session, envelopes)
        calls.append(len(envelopes))
        if len(calls) == 1:
            raise RetryBatch("a case this batch changes was changed meanwhile")
        return len(envelopes)

    async with env.bus.started() as bus:
        await bus.ensure_topics([env.topic, env.dead_letter_topic])
        await bus.publish([record(env.topic, e) for e in events])
        runner = ConsumerRunner(
            bus=bus, engine=db.engine, tracking=db.tracking,
            spec=ConsumerSpec(group_id=GROUP, topics=[CASES_TOPIC], handle=handle,
                              deduplicates=True),
            batch_size=100, poll_ms=50, topic_prefix=env.bus.prefix)
        await run_until(runner, lambda: runner.stats.consumed == 3)

    assert db.applied_ids() == [e.id for e in events]  # the first attempt left nothing
    assert calls[0] > 0 and sum(calls[1:]) == 3
    assert (runner.stats.applied, runner.stats.duplicates, runner.stats.restarts) == (3, 0, 0)
    with db.engine.connect() as conn:
        assert conn.execute(select(db.tracking.processed)).all() == []
    assert sum(db.positions(runner.group_id).values()) == 3


@sync
async def test_restart_resumes_from_stored_positions(env: RunnerEnv) -> None:
    db = env.make_projection()
    first = [transferred(case_code(n % 3), n) for n in range(6)]
    later = [transferred(case_code(n % 3), n) for n in range(6, 9)]
    async with env.bus.started() as bus:
        await bus.ensure_topics([env.topic, env.dead_letter_topic])
        await bus.publish([record(env.topic, e) for e in first])
        one = env.runner(bus, db)
        await run_until(one, lambda: len(db.applied_ids()) == 6)

    # A new bus object and a new runner, as after a process restart.
    async with env.bus.started() as bus:
        await bus.publish([record(env.topic, e) for e in later])
        two = env.runner(bus, db)
        await run_until(two, lambda: len(db.applied_ids()) == 9)
        ends = await bus.end_offsets([env.topic])

    assert sorted(db.applied_ids()) == sorted(e.id for e in first + later)
    assert two.stats.consumed == len(later), "the restarted runner re-read applied events"
    assert two.stats.duplicates == 0
    assert db.positions(two.group_id) == {tp: n for tp, n in ends.items() if n}


@sync
async def test_fresh_database_replays_from_the_beginning(env: RunnerEnv) -> None:
    """The database is the source of truth: a group's commit does not skip a rebuilt one."""
    old, new = env.make_projection(), env.make_projection()
    events = [transferred(case_code(n % 2), n) for n in range(4)]
    async with env.bus.started() as bus:
        await bus.ensure_topics([env.topic, env.dead_letter_topic])
        await bus.publish([record(env.topic, e) for e in events])
        await run_until(env.runner(bus, old), lambda: len(old.applied_ids()) == 4)
        await run_until(env.runner(bus, new), lambda: len(new.applied_ids()) == 4)
    assert sorted(new.applied_ids()) == sorted(e.id for e in events)


@sync
async def test_undecodable_messages_are_dead_lettered_and_the_partition_moves_on(
    env: RunnerEnv,
) -> None:
    db = env.make_projection()
    code = case_code(7)
    before, after = transferred(code, 0), transferred(code, 2)
    key, value, headers = encode(transferred(code, 1))
    invalid = orjson.loads(value)
    invalid["data"]["method"] = "teleport"
    invalid_value = orjson.dumps(invalid)
    bad = [
        Record(env.topic, key, b"not json", (("trace", b"\x01\x02"),)),
        Record(env.topic, key, invalid_value, tuple(headers)),
    ]
    async with env.bus.started() as bus:
        await bus.ensure_topics([env.topic, env.dead_letter_topic])
        await bus.publish([record(env.topic, before), *bad, record(env.topic, after)])
        runner = env.runner(bus, db)
        await run_until(runner, lambda: len(db.applied_ids()) == 2)
        async with consuming(bus, env.bus.group("dlq-reader"), [env.dead_letter_topic]) as dlq:
            dead = await take(dlq, 2)

    assert db.applied_ids() == [before.id, after.id]
    assert runner.stats.dead_lettered == 2
    partition = next(iter(db.positions(runner.group_id)))
    assert db.positions(runner.group_id) == {partition: 4}

    by_value = {m.value: m for m in dead}
    assert set(by_value) == {b"not json", invalid_value}
    expected = {b"not json": ("undecodable", 1), invalid_value: ("undecodable", 2)}
    for value_, (code_, offset) in expected.items():
        m = by_value[value_]
        assert m.key == key
        reasons = [v for k, v in m.headers if k == "dlq_reason"]
        assert len(reasons) == 1
        reason = orjson.loads(reasons[0])
        assert reason["code"] == code_
        assert (reason["topic"], reason["partition"], reason["offset"]) == (
            env.topic,
            partition.partition,
            offset,
        )
        assert reason["group_id"] == runner.group_id
    # The original headers travel with the dead letter, before the reason.
    assert by_value[b"not json"].headers[0] == ("trace", b"\x01\x02")


def partition_of(code: str) -> int:
    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(code.encode(), every, every))


def newer_version(env: Envelope) -> bytes:
    """The same event as a build one version ahead of this one would write it."""
    raw = orjson.loads(encode(env)[1])
    raw["dataversion"] += 1
    return orjson.dumps(raw)


@sync
async def test_newer_version_parks_its_partition_until_an_upgraded_consumer_reads_it(
    env: RunnerEnv,
) -> None:
    db = env.make_projection()
    parked_code = case_code(1)
    other_code = next(case_code(n) for n in range(2, 100)
                      if partition_of(case_code(n)) != partition_of(parked_code))
    before, early, after = (transferred(parked_code, n) for n in range(3))
    others = [transferred(other_code, n) for n in range(4)]
    key = parked_code.encode()
    async with env.bus.started() as bus:
        await bus.ensure_topics([env.topic, env.dead_letter_topic])
        await bus.publish([
            record(env.topic, before),
            Record(env.topic, key, newer_version(early), tuple(encode(early)[2])),
            record(env.topic, after),
            *(record(env.topic, e) for e in others[:3]),
        ])
        parked_tp = TopicPartition(env.topic, partition_of(parked_code))
        old = env.runner(bus, db)
        await run_until(
            old, lambda: len(db.applied_ids()) == 4 and old.stats.parked == {parked_tp: 1})
        # Later batches leave the parked record and what follows it alone.
        await bus.publish([record(env.topic, others[3])])
        await run_until(
            old, lambda: len(db.applied_ids()) == 5 and old.stats.parked == {parked_tp: 1})
        assert old.stats.dead_lettered == 0
        # Neither dropped nor applied out of order: the case's later event waits too.
        case_ids = {before.id, early.id, after.id}
        assert [i for i in db.applied_ids() if i in case_ids] == [before.id]
        assert db.positions(old.group_id)[parked_tp] == 1

    with knows_next_version(Transferred):
        async with env.bus.started() as bus:
            upgraded = env.runner(bus, db)
            await run_until(upgraded, lambda: len(db.applied_ids()) == 7)
        assert upgraded.stats.parked == {}

    ids = db.applied_ids()
    assert [i for i in ids if i in case_ids] == [before.id, early.id, after.id]
    assert sorted(ids) == sorted(e.id for e in [before, early, after, *others])
    assert upgraded.stats.duplicates == 0


class ScriptedConsumer:
    """Hands out fetches in a set order, each as soon as asked, as a real consumer with records
    buffered does. A partition paused (pause_at) hands out nothing more, as on every bus; what
    matters is what the runner fetched before it paused it."""

    def __init__(self, fetches: list[list[Message]]) -> None:
        self._fetches = fetches
        self.paused: dict[TopicPartition, int] = {}
        self.empty_fetches = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        await asyncio.sleep(0 if self._fetches else timeout_ms / 1000)
        if not self._fetches:
            self.empty_fetches += 1
            return []
        return [m for m in self._fetches.pop(0) if m.tp not in self.paused]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.sleep(0.01)  # a round trip to the broker

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("t", 0), TopicPartition("t", 1)}

    def pause_at(self, tp: TopicPartition, offset: int) -> None:
        self.paused[tp] = offset

    async def lag(self) -> dict[TopicPartition, int]:
        return {}


@dataclass
class ScriptedBus:
    scripted: ScriptedConsumer

    def consumer(self, *, group_id: str, topics: object, load_positions: object
                 ) -> ScriptedConsumer:
        return self.scripted


@sync
async def test_the_two_batches_fetched_after_a_parked_record_leave_its_partition_alone(
    env: RunnerEnv,
) -> None:
    """The batch after the parked record's is fetched while that one is applied; the one after
    that while the next is applied, and before the runner pauses the partition at the consumer
    (it does so while the next batch is applied, not between the two)."""
    db = env.make_projection()
    p, q = TopicPartition("t", 0), TopicPartition("t", 1)
    before, early, after = (transferred(case_code(1), n) for n in range(3))
    other = transferred(case_code(2), 0)

    def message(tp: TopicPartition, offset: int, value: bytes) -> Message:
        return Message(tp, offset, None, value, (), 0)

    scripted = ScriptedConsumer([
        [message(p, 0, encode(before)[1]), message(p, 1, newer_version(early))],
        [message(q, 0, encode(other)[1])],
        [message(p, 2, encode(after)[1])],
    ])
    runner = ConsumerRunner(
        bus=ScriptedBus(scripted),  # type: ignore[arg-type]
        engine=db.engine, tracking=db.tracking,
        spec=ConsumerSpec(group_id=GROUP, topics=["t"], handle=db.handle),
        batch_size=100, poll_ms=20)
    # Three empty fetches after the script: every batch fetched before them is applied.
    await run_until(runner, lambda: scripted.empty_fetches >= 3 and runner.stats.parked == {p: 1})
    assert db.applied_ids() == [before.id, other.id]
    assert scripted.paused == {p: 1}
    assert db.positions(runner.group_id) == {p: 1, q: 1}


def test_a_consumer_that_fetches_nothing_while_records_wait_is_restarted() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    # Nothing waiting, or only on a parked partition: no watch.
    assert check_stall({a: 0}, {}, None, 100.0, 20.0, "g") is None
    assert check_stall({a: 3}, {a: 7}, 50.0, 100.0, 20.0, "g") is None
    # Records wait: the watch starts, keeps its start, and gives up after the limit.
    assert check_stall({a: 0, b: 2}, {}, None, 100.0, 20.0, "g") == 100.0
    assert check_stall({a: 0, b: 2}, {}, 100.0, 119.0, 20.0, "g") == 100.0
    with pytest.raises(ConsumerStalled, match="2 records wait on g's partitions"):
        check_stall({a: 0, b: 2}, {}, 100.0, 121.0, 20.0, "g")

"""The bus contract: one abstract suite, run against every implementation (as `eventsourcing`
runs one recorder suite against each of its recorders).

`BusContract` holds the tests; each concrete class only says how to open a bus. A test may open
several bus objects on the same storage (a restart), and gets its own topic and group names.
"""

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from services.bus.base import Bus, Consumer, Message, PositionLoader, Record, TopicPartition
from services.bus.embedded import EmbeddedBus
from services.bus.kafka import KafkaBus

PARTITIONS = 4
TEST_TIMEOUT_S = 60.0

T = TypeVar("T")


def sync(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an `async def` test in a fresh event loop (pytest-asyncio is not a dependency)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT_S))

    return wrapper


def stored_positions(
    positions: dict[TopicPartition, int] | None = None,
) -> tuple[PositionLoader, list[list[TopicPartition]]]:
    """A `load_positions` callback backed by a dict, and the list of calls it received."""
    calls: list[list[TopicPartition]] = []

    async def load(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        calls.append(list(tps))
        return {tp: o for tp, o in (positions or {}).items() if tp in tps}

    return load, calls


async def take(
    consumer: Consumer, n: int, *, max_records: int = 500, timeout_s: float = 20.0
) -> list[Message]:
    """Exactly `n` messages from `consumer` (a Kafka consumer may first spend a poll joining)."""
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < n:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"received {len(got)} of {n} messages: {got}")
        got += await consumer.getmany(timeout_ms=200, max_records=min(max_records, n - len(got)))
    return got


async def assert_quiet(consumer: Consumer, *, ms: int = 500) -> None:
    extra = await consumer.getmany(timeout_ms=ms, max_records=100)
    assert extra == [], f"unexpected messages: {extra}"


def next_offsets(messages: Sequence[Message]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for m in messages:
        out[m.tp] = max(out.get(m.tp, 0), m.offset + 1)
    return out


def key_in_partition(partition: int, partitions: int = PARTITIONS) -> bytes:
    """A key the default (murmur2) partitioner sends to `partition`, as both buses use it."""
    chooser = DefaultPartitioner()
    every = list(range(partitions))
    for i in range(1000):
        key = f"case-{i}".encode()
        if chooser(key, every, every) == partition:
            return key
    raise AssertionError("no key found")


@dataclass
class BusEnv:
    """Opens bus objects on one storage (one database, or one broker) for one test."""

    open: Callable[[], Bus]
    prefix: str

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @asynccontextmanager
    async def started(self) -> AsyncIterator[Bus]:
        bus = self.open()
        await bus.start()
        try:
            yield bus
        finally:
            await bus.close()


@asynccontextmanager
async def consuming(
    bus: Bus, group_id: str, topics: Sequence[str], load: PositionLoader | None = None
) -> AsyncIterator[Consumer]:
    consumer = bus.consumer(
        group_id=group_id, topics=topics, load_positions=load or stored_positions()[0]
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


class BusContract:
    """What every Bus promises. Subclasses provide the `env` fixture."""

    @pytest.fixture
    def env(self) -> BusEnv:
        raise NotImplementedError

    @sync
    async def test_same_key_same_partition_in_publish_order(self, env: BusEnv) -> None:
        topic = env.topic("cases")
        keys = [f"case-{i}".encode() for i in range(12)]
        records = [Record(topic, k, b"%s#%d" % (k, n)) for n in range(5) for k in keys]
        async with env.started() as bus:
            assert await bus.ready()
            await bus.ensure_topics([topic])
            every = {TopicPartition(topic, p) for p in range(PARTITIONS)}
            assert await bus.end_offsets([topic]) == dict.fromkeys(every, 0)
            await bus.publish(records[:25])
            await bus.publish(records[25:])
            ends = await bus.end_offsets([topic])
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                got = await take(consumer, len(records))
                assert consumer.assignment() == every
                await assert_quiet(consumer, ms=200)

        for k in keys:
            mine = [m for m in got if m.key == k]
            assert len({m.partition for m in mine}) == 1, k
            assert [m.value for m in mine] == [b"%s#%d" % (k, n) for n in range(5)]
            assert [m.offset for m in mine] == sorted(m.offset for m in mine)
        assert len({m.partition for m in got}) > 1, "twelve keys all in one partition"
        assert set(ends) == every
        for tp in every:
            offsets = sorted(m.offset for m in got if m.tp == tp)
            assert offsets == list(range(ends[tp])), tp
        assert sum(ends.values()) == len(records)

    @sync
    async def test_a_publish_bigger_than_a_record_batch_keeps_each_keys_order(
        self, env: BusEnv
    ) -> None:
        # 4,000 records of 1 KB: each partition's share fills several of the producer's
        # 256 KB record batches.
        topic = env.topic("bulk")
        keys = [f"000.00.20.H56-261126-{i:04d}".encode() for i in range(4)]
        records = [Record(topic, k, b"%s#%04d." % (k, n) + b"x" * 1000)
                   for n in range(1000) for k in keys]
        async with env.started() as bus:
            await bus.ensure_topics([topic])
            await bus.publish(records)
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                got = await take(consumer, len(records), max_records=1000)
        every = list(range(PARTITIONS))
        for k in keys:
            mine = [m for m in got if m.key == k]
            assert {m.partition for m in mine} == {DefaultPartitioner()(k, every, every)}, k
            assert [m.value for m in mine] == [r.value for r in records if r.key == k]

    @sync
    async def test_a_topic_created_after_the_consumer_starts_is_read(self, env: BusEnv) -> None:
        # A service's consumer may start while another process is still creating a topic;
        # it must not wait for a periodic metadata refresh (minutes) to read it.
        topic = env.topic("late")
        records = [Record(topic, b"k%d" % i, b"v%d" % i) for i in range(8)]
        async with env.started() as bus:

            async def create_later() -> None:
                await asyncio.sleep(1.0)
                await bus.ensure_topics([topic])
                await bus.publish(records)

            creating = asyncio.create_task(create_later())
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                await creating
                got = await take(consumer, len(records), timeout_s=20)
                await assert_quiet(consumer, ms=200)
        assert sorted(m.value for m in got) == sorted(r.value for r in records)

    @sync
    async def test_group_resumes_from_committed_offsets(self, env: BusEnv) -> None:
        topic = env.topic("cases")
        first = [Record(topic, b"k%d" % i, b"first-%d" % i) for i in range(6)]
        second = [Record(topic, b"k%d" % i, b"second-%d" % i) for i in range(4)]
        async with env.started() as bus:
            await bus.ensure_topics([topic])
            await bus.publish(first)
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                got = await take(consumer, len(first))
                await consumer.commit(next_offsets(got))
                await bus.publish(second)
                # Read but never committed: a new member of the group must see these again.
                assert len(await take(consumer, len(second))) == len(second)
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                again = await take(consumer, len(second))
                await assert_quiet(consumer)
        assert sorted(m.value for m in got) == sorted(r.value for r in first)
        assert sorted(m.value for m in again) == sorted(r.value for r in second)

    @sync
    async def test_every_group_receives_everything(self, env: BusEnv) -> None:
        topic = env.topic("cases")
        records = [Record(topic, b"k%d" % (i % 5), b"v%d" % i) for i in range(20)]
        async with env.started() as bus:
            await bus.ensure_topics([topic])
            await bus.publish(records)
            async with (
                consuming(bus, env.group("a"), [topic]) as a,
                consuming(bus, env.group("b"), [topic]) as b,
            ):
                got_a, got_b = await asyncio.gather(take(a, 20), take(b, 20))
                await a.commit(next_offsets(got_a))
                await assert_quiet(b, ms=200)
        expected = sorted(r.value for r in records)
        assert sorted(m.value for m in got_a) == expected
        assert sorted(m.value for m in got_b) == expected

    @pytest.mark.parametrize(("committed", "stored"), [(8, 3), (2, 7)], ids=["rewind", "skip"])
    @sync
    async def test_stored_position_wins_over_group_commit(
        self, env: BusEnv, committed: int, stored: int
    ) -> None:
        topic = env.topic("cases")
        key = key_in_partition(1)
        tp = TopicPartition(topic, 1)
        async with env.started() as bus:
            await bus.ensure_topics([topic])
            await bus.publish([Record(topic, key, b"v%d" % i) for i in range(10)])
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                got = await take(consumer, 10)
                assert {m.tp for m in got} == {tp}
                await consumer.commit({tp: committed})
            load, calls = stored_positions({tp: stored})
            async with consuming(bus, env.group("g"), [topic], load) as consumer:
                resumed = await take(consumer, 10 - stored)
                await assert_quiet(consumer)
        assert [m.offset for m in resumed] == list(range(stored, 10))
        assert [m.value for m in resumed] == [b"v%d" % i for i in range(stored, 10)]
        assert calls and tp in calls[-1]

    @sync
    async def test_lag_counts_unconsumed_messages_per_partition(self, env: BusEnv) -> None:
        topic = env.topic("cases")
        tp = TopicPartition(topic, 2)
        key = key_in_partition(tp.partition)
        async with env.started() as bus:
            await bus.ensure_topics([topic])
            await bus.publish([Record(topic, key, b"v%d" % i) for i in range(10)])
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                await take(consumer, 4, max_records=4)
                lag = await consumer.lag()
                assert set(lag) == consumer.assignment()
                assert lag == {t: 6 if t == tp else 0 for t in lag}

                await take(consumer, 6)
                assert set((await consumer.lag()).values()) == {0}

                await bus.publish([Record(topic, key, b"more-%d" % i) for i in range(3)])
                await bus.publish([Record(topic, key_in_partition(0), b"other")])
                lag = await consumer.lag()
                assert lag[tp] == 3
                assert lag[TopicPartition(topic, 0)] == 1
                assert sum(lag.values()) == 4

                await take(consumer, 4)
                assert set((await consumer.lag()).values()) == {0}

    @sync
    async def test_headers_binary_values_and_null_keys_round_trip(self, env: BusEnv) -> None:
        topic = env.topic("raw")
        every_byte = bytes(range(256))
        records = [
            Record(topic, None, every_byte, (("a", b"\x00\xff"), ("b", b""), ("a", b"again"))),
            Record(topic, b"\x00\xffkey", b"", (("tiếng-việt", "Hồ sơ".encode()),)),
            Record(topic, None, b'{"not": "checked"}'),
        ]
        async with env.started() as bus:
            await bus.ensure_topics([topic])
            before_ms = int(time.time() * 1000) - 5000
            await bus.publish(records)
            async with consuming(bus, env.group("g"), [topic]) as consumer:
                got = await take(consumer, len(records))
        by_value = {m.value: m for m in got}
        assert set(by_value) == {r.value for r in records}
        for r in records:
            m = by_value[r.value]
            assert (m.topic, m.key, m.value, m.headers) == (r.topic, r.key, r.value, r.headers)
            assert isinstance(m.value, bytes)
            assert before_ms <= m.timestamp_ms <= before_ms + 60_000


class TestEmbeddedBusOnSQLite(BusContract):
    @pytest.fixture
    def env(self, tmp_path: Path, topic_prefix: str) -> BusEnv:
        url = f"sqlite:///{tmp_path / 'bus.db'}"
        return BusEnv(lambda: EmbeddedBus(url, partitions=PARTITIONS), topic_prefix)

    @sync
    async def test_log_and_offsets_survive_a_restart(self, env: BusEnv) -> None:
        await _survives_restart(env)


@pytest.mark.postgres
class TestEmbeddedBusOnPostgres(BusContract):
    @pytest.fixture
    def env(self, make_pg_database: Callable[[], str], topic_prefix: str) -> BusEnv:
        url = make_pg_database()
        return BusEnv(lambda: EmbeddedBus(url, partitions=PARTITIONS), topic_prefix)

    @sync
    async def test_log_and_offsets_survive_a_restart(self, env: BusEnv) -> None:
        await _survives_restart(env)


@pytest.mark.kafka
class TestKafkaBus(BusContract):
    @pytest.fixture
    def env(self, kafka_bootstrap: str, topic_prefix: str) -> Iterator[BusEnv]:
        yield BusEnv(
            lambda: KafkaBus(kafka_bootstrap, client_id="motcua-test", partitions=PARTITIONS),
            topic_prefix,
        )
        asyncio.run(delete_topics(kafka_bootstrap, topic_prefix))


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="motcua-test")
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


async def _survives_restart(env: BusEnv) -> None:
    """Embedded only: the log is durable and a new bus object continues its offsets.

    Only partition 0 gets records before the restart, so the restarted bus must remember the
    topic's partition count from more than the partitions it finds records in.
    """
    topic = env.topic("cases")
    key = key_in_partition(0)
    tp = TopicPartition(topic, 0)
    async with env.started() as bus:
        await bus.ensure_topics([topic])
        await bus.publish(
            [Record(topic, key, b"before-%d" % i, (("h", b"%d" % i),)) for i in range(3)]
        )
        ends_before = await bus.end_offsets([topic])
        async with consuming(bus, env.group("g"), [topic]) as consumer:
            got = await take(consumer, 2, max_records=2)
            await consumer.commit(next_offsets(got))
    assert ends_before == {TopicPartition(topic, p): 3 if p == 0 else 0 for p in range(PARTITIONS)}

    async with env.started() as bus:
        assert await bus.end_offsets([topic]) == ends_before
        await bus.publish(
            [Record(topic, key, b"after-0"), Record(topic, key_in_partition(3), b"elsewhere")]
        )
        assert (await bus.end_offsets([topic]))[tp] == 4
        async with consuming(bus, env.group("fresh"), [topic]) as consumer:
            everything = await take(consumer, 5)
        async with consuming(bus, env.group("g"), [topic]) as consumer:
            rest = await take(consumer, 3)
            await assert_quiet(consumer, ms=200)

    on_key = [m for m in everything if m.key == key]
    assert [(m.partition, m.offset, m.value) for m in on_key] == [
        (0, 0, b"before-0"),
        (0, 1, b"before-1"),
        (0, 2, b"before-2"),
        (0, 3, b"after-0"),
    ]
    assert on_key[1].headers == (("h", b"1"),)
    assert sorted((m.partition, m.offset, m.value) for m in rest) == [
        (0, 2, b"before-2"),
        (0, 3, b"after-0"),
        (3, 0, b"elsewhere"),
    ]

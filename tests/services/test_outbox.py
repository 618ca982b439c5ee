"""The transactional outbox and its relay: rows published in id order and deleted only once
published, kept while the bus is down, and nothing from a rolled-back transaction ever sent."""

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import SQLModel

from contracts import CASES_TOPIC, Envelope, encode
from services.bus.base import Record
from services.bus.embedded import EmbeddedBus
from services.db import make_engine, transaction
from services.outbox import Outbox, Relay
from tests.services.test_bus import PARTITIONS, assert_quiet, consuming, sync, take
from tests.services.test_consumer import case_code, transferred


class SpyBus(EmbeddedBus):
    """The real embedded bus, noting the outbox backlog at each publish; while `failures` > 0
    a publish raises instead, as when the broker is down."""

    def __init__(self, url: str, backlog: Callable[[], int]) -> None:
        super().__init__(url, partitions=PARTITIONS)
        self._backlog = backlog
        self.failures = 0
        self.calls: list[tuple[list[bytes], int]] = []

    async def publish(self, records: Sequence[Record]) -> None:
        self.calls.append(([r.value for r in records], await asyncio.to_thread(self._backlog)))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker down")
        await super().publish(records)


@dataclass
class OutboxEnv:
    url: str
    engine: Engine
    outbox: Outbox
    bus: SpyBus
    prefix: str

    @property
    def topic(self) -> str:
        return self.prefix + CASES_TOPIC

    def add(self, envelopes: Sequence[Envelope]) -> None:
        """One committed transaction adding `envelopes` to the outbox."""
        with transaction(self.engine) as session:
            self.outbox.add(session, CASES_TOPIC, envelopes)

    def backlog(self) -> int:
        return self.outbox.backlog(self.engine)

    def relay(self, *, batch_size: int = 1000) -> Relay:
        return Relay(
            self.outbox,
            self.engine,
            self.bus,
            topic_prefix=self.prefix,
            batch_size=batch_size,
            poll_s=0.05,
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str) -> Iterator[OutboxEnv]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'intake.db'}"
    else:
        url = str(request.getfixturevalue("make_pg_database")())
    engine = make_engine(url, pool_size=2)
    outbox = Outbox(f"t_{uuid.uuid4().hex[:12]}")
    SQLModel.metadata.create_all(engine, tables=[outbox.table])
    bus = SpyBus(f"sqlite:///{tmp_path / 'bus.db'}", lambda: outbox.backlog(engine))
    yield OutboxEnv(url, engine, outbox, bus, topic_prefix)
    engine.dispose()
    SQLModel.metadata.remove(outbox.table)


def value(envelope: Envelope) -> bytes:
    return encode(envelope)[1]


@sync
async def test_relay_publishes_in_id_order_and_deletes_only_after_publishing(
    env: OutboxEnv,
) -> None:
    a = [transferred(case_code(1), n) for n in range(3)]
    b, c = transferred(case_code(2), 0), transferred(case_code(3), 0)
    env.add(a[:2])
    env.add([b])
    env.add([a[2], c])
    in_id_order = [a[0], a[1], b, a[2], c]
    await env.bus.start()
    try:
        relay = env.relay(batch_size=2)
        moved = [await relay.drain_once() for _ in range(4)]
        async with consuming(env.bus, env.prefix + "reader", [env.topic]) as consumer:
            got = await take(consumer, 5)
            await assert_quiet(consumer, ms=100)
    finally:
        await env.bus.close()

    assert moved == [2, 2, 1, 0]
    assert [v for values, _ in env.bus.calls for v in values] == [value(e) for e in in_id_order]
    # Each batch was still in the outbox while it was being published.
    assert [backlog for _, backlog in env.bus.calls] == [5, 3, 1]
    assert env.backlog() == 0
    assert relay.published == 5
    # What arrives is what the codec produced, headers included; one case's events in order.
    by_value = {m.value: m for m in got}
    for e in in_id_order:
        key, _, headers = encode(e)
        assert (by_value[value(e)].key, by_value[value(e)].headers) == (key, tuple(headers))
    assert [m.value for m in got if m.key == a[0].subject.encode()] == [value(e) for e in a]


@sync
async def test_rows_are_kept_while_publishing_fails_and_published_next_time(
    env: OutboxEnv,
) -> None:
    events = [transferred(case_code(1), n) for n in range(3)]
    env.add(events)
    await env.bus.start()
    try:
        relay = env.relay()
        env.bus.failures = 1
        assert await relay.drain_once() == 0
        assert env.backlog() == 3
        assert relay.last_error is not None and "broker down" in relay.last_error
        assert sum((await env.bus.end_offsets([env.topic])).values()) == 0

        assert await relay.drain_once() == 3
        assert relay.last_error is None
        assert env.backlog() == 0
        async with consuming(env.bus, env.prefix + "reader", [env.topic]) as consumer:
            got = await take(consumer, 3)
            await assert_quiet(consumer, ms=100)
    finally:
        await env.bus.close()
    assert [m.value for m in got] == [value(e) for e in events]
    assert len(env.bus.calls) == 2


@sync
async def test_nothing_from_a_rolled_back_transaction_is_published(env: OutboxEnv) -> None:
    doomed = [transferred(case_code(1), n) for n in range(2)]
    kept = transferred(case_code(2), 0)
    await env.bus.start()
    stop = asyncio.Event()
    relay = env.relay()
    task = asyncio.create_task(relay.run(stop))
    try:
        with pytest.raises(RuntimeError, match="refused"), transaction(env.engine) as session:
            env.outbox.add(session, CASES_TOPIC, doomed)
            raise RuntimeError("refused by the domain")
        env.add([kept])
        relay.wake()
        async with consuming(env.bus, env.prefix + "reader", [env.topic]) as consumer:
            got = await take(consumer, 1)
            await assert_quiet(consumer, ms=300)
    finally:
        stop.set()
        await task
        await env.bus.close()
    assert [m.value for m in got] == [value(kept)]
    assert relay.published == 1
    assert env.backlog() == 0
    with env.engine.connect() as conn:
        assert list(conn.execute(select(env.outbox.table))) == []


@sync
async def test_a_stopped_relay_hands_the_outbox_to_another(env: OutboxEnv) -> None:
    """On PostgreSQL one relay leads (advisory lock); once it stops, another process's relay
    must be able to take over while the first process keeps running."""
    first, second = transferred(case_code(1), 0), transferred(case_code(1), 1)
    other_engine = make_engine(env.url, pool_size=2)
    await env.bus.start()
    try:
        stop = asyncio.Event()
        one = env.relay()
        running = asyncio.create_task(one.run(stop))
        env.add([first])
        one.wake()
        async with consuming(env.bus, env.prefix + "reader", [env.topic]) as consumer:
            await take(consumer, 1)
            stop.set()
            await running

            env.add([second])
            stop_two = asyncio.Event()
            two = Relay(env.outbox, other_engine, env.bus, topic_prefix=env.prefix, poll_s=0.05)
            running = asyncio.create_task(two.run(stop_two))
            try:
                got = await take(consumer, 1, timeout_s=5)
            finally:
                stop_two.set()
                await running
    finally:
        await env.bus.close()
        other_engine.dispose()
    assert [m.value for m in got] == [value(second)]

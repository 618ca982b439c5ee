"""A consumer is stopped while the broker answers nothing: the stop must end, and the group
must hand its partitions to the next consumer, or the runner that restarts it (after a stall
or a crash) waits on the old one for ever and the service stops consuming."""

import asyncio
import time

import pytest

from services.bus import Record, TopicPartition
from services.bus.kafka import KafkaBus
from tests.faults.conftest import Infra
from tests.services.test_bus import stored_positions, take

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_a_consumer_stops_while_the_broker_answers_nothing(
    infra: Infra, topic_prefix: str
) -> None:
    asyncio.run(_stop_while_frozen(infra, topic_prefix + "frozen"))


async def _stop_while_frozen(infra: Infra, topic: str) -> None:
    nothing_stored, _ = stored_positions()
    bus = KafkaBus(infra.kafka, partitions=2)
    await bus.start()
    try:
        await bus.ensure_topics([topic])
        await bus.publish([Record(topic, b"k", b"first")])
        first = bus.consumer(group_id=topic, topics=[topic], load_positions=nothing_stored)
        await first.start()
        assert [m.value for m in await take(first, 1, timeout_s=60)] == [b"first"]
        first.stop_timeout_s = 2.0

        with infra.kafka_frozen():
            t0 = time.monotonic()
            # aiokafka on its own waits here for the leave-group request's timeout (40 s),
            # and around a broker restart its coordinator can retry without end.
            await asyncio.wait_for(first.stop(), 15)
            stopped_in = time.monotonic() - t0
        assert stopped_in < 15

        # The next consumer of the group gets the partitions once the broker evicts the one
        # that could not leave (its heartbeat stopped with it), and reads what was never
        # committed.
        second = bus.consumer(group_id=topic, topics=[topic], load_positions=nothing_stored)
        await second.start()
        try:
            assert [m.value for m in await take(second, 1, timeout_s=90)] == [b"first"]
            assert second.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        finally:
            await second.stop()
    finally:
        await bus.close()

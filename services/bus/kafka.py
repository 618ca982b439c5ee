"""The bus on Apache Kafka (aiokafka): idempotent producer, acks=all, manual offset commits."""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_lz4
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTP

from services.bus.base import Message, PositionLoader, Record, TopicPartition
from services.bus.partitioner import KeyPartitioner

log = logging.getLogger(__name__)

# aiokafka refreshes a subscription's metadata only this often once it has an answer, and a
# topic that answered "leader not available" (created a moment ago) is left out of the group's
# assignment until then: 5 minutes by default.
METADATA_MAX_AGE_MS = 30_000
TOPICS_READY_TIMEOUT_S = 30.0
# aiokafka's stop() first lets the group coordinator finish its work, and around a broker restart
# that work (finding the coordinator, rejoining) can retry without end (aio-libs/aiokafka#659):
# seen as a consumer that never came back after a broker restart, its runner waiting on stop().
STOP_TIMEOUT_S = 10.0


class KafkaBus:
    kind = "kafka"

    def __init__(
        self, bootstrap_servers: str, *, client_id: str = "motcua", partitions: int = 6,
        connection: dict[str, Any] | None = None,
    ) -> None:
        self._servers = bootstrap_servers
        self._client_id = client_id
        self._partitions = partitions
        # TLS and SASL (security_protocol, ssl_context, sasl_*): the same for every client.
        self._connection = dict(connection or {})
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            partitioner=KeyPartitioner(),
            max_batch_size=256 * 1024,
            compression_type="lz4" if _has_lz4() else None,
            request_timeout_ms=15000,
            **self._connection,
        )
        await producer.start()
        self._producer = producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, client_id=self._client_id,
                                    **self._connection)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                # Another process may create one first: that is what we wanted.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(t, self._partitions, 1) for t in missing]
                    )
        finally:
            await admin.close()

    async def publish(self, records: Sequence[Record]) -> None:
        # One send() a record, not batches built here: appending to aiokafka's own record
        # batches (create_batch / send_batch) was 3.5 x cheaper, but lost events once when the
        # broker was killed under load (tests/faults), so it is not used (docs/benchmarks.md).
        if self._producer is None:
            raise RuntimeError("bus not started")
        futures = [
            await self._producer.send(
                r.topic, r.value, key=r.key, headers=list(r.headers) or None
            )
            for r in records
        ]
        await asyncio.gather(*futures)

    def consumer(
        self, *, group_id: str, topics: Sequence[str], load_positions: PositionLoader
    ) -> "KafkaConsumer":
        return KafkaConsumer(self._servers, self._client_id, group_id, topics, load_positions,
                             self._connection)

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        if self._producer is None:
            raise RuntimeError("bus not started")
        # A fresh snapshot: a client's cached metadata may predate a topic created just now.
        cluster = await self._producer.client.fetch_all_metadata()
        tps = [
            KafkaTP(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())
        ]
        if not tps:
            return {}
        probe = AIOKafkaConsumer(bootstrap_servers=self._servers, client_id=self._client_id,
                                 **self._connection)
        await probe.start()
        try:
            ends = await probe.end_offsets(tps)
        finally:
            await probe.stop()
        return {TopicPartition(tp.topic, tp.partition): off for tp, off in ends.items()}

    async def ready(self) -> bool:
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=3)
            return True
        except (KafkaError, TimeoutError, OSError):
            return False


class _SeekToStored(ConsumerRebalanceListener):
    """Positions newly assigned partitions at the offsets the consumer stored itself.

    The partitions are paused while the positions load: aiokafka starts fetching from the
    group's committed offsets as soon as it assigns them, and records handed out before the
    seek would be delivered out of order (or twice). A partition without a stored position
    resumes from the group's commit (the earliest offset if none), as on the embedded bus.
    """

    def __init__(self, consumer: AIOKafkaConsumer, load_positions: PositionLoader) -> None:
        self._consumer = consumer
        self._load = load_positions
        self.error: BaseException | None = None

    async def on_partitions_revoked(self, revoked: object) -> None:
        # Nothing to flush: a batch is committed to the database before its offsets are.
        return None

    async def on_partitions_assigned(self, assigned: Sequence[KafkaTP]) -> None:
        assigned = list(assigned)
        self._consumer.pause(*assigned)
        ours = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
        try:
            stored = await self._load(ours)
        except Exception as exc:
            # aiokafka would log and swallow this; keep the partitions paused and let the next
            # getmany raise it, so the consumer crashes loudly instead of reading unpositioned.
            self.error = exc
            return
        for tp in assigned:
            position = stored.get(TopicPartition(tp.topic, tp.partition))
            if position is not None:
                self._consumer.seek(tp, position)
        self._consumer.resume(*assigned)
        log.info("assigned %s", sorted(ours))


class KafkaConsumer:
    def __init__(
        self,
        servers: str,
        client_id: str,
        group_id: str,
        topics: Sequence[str],
        load_positions: PositionLoader,
        connection: dict[str, Any] | None = None,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            client_id=f"{client_id}-{group_id}",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            **(connection or {}),
        )
        self._group_id = group_id
        self.stop_timeout_s = STOP_TIMEOUT_S
        self._topics = list(topics)
        self._listener = _SeekToStored(self._consumer, load_positions)

    async def start(self) -> None:
        await self._consumer.start()
        await self._topics_ready()
        self._consumer.subscribe(self._topics, listener=self._listener)

    async def _topics_ready(self) -> None:
        """Wait until the broker serves every topic, so the first assignment holds them all.

        A topic created just before (by this process's start-up or another's) may not have a
        leader yet; subscribed then, it would be read only after the next metadata refresh.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOPICS_READY_TIMEOUT_S
        while True:
            # Lists only topics whose metadata came back without error (leaders elected).
            missing = set(self._topics) - await self._consumer.topics()
            if not missing:
                return
            if loop.time() > deadline:
                log.warning("subscribing before topics %s are served; they are read from the "
                            "next metadata refresh", sorted(missing))
                return
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self._consumer.stop(), self.stop_timeout_s)
        except TimeoutError:
            log.warning("consumer %s did not stop in %.0fs; closing it without leaving the group",
                        self._group_id, self.stop_timeout_s)
            await self._abandon()

    async def _abandon(self) -> None:
        """Close what stop() did not reach. Its cancelled wait cancelled the coordination task;
        the heartbeat must stop too, or this member would keep its partitions in the group
        while the runner's next consumer waits for them."""
        consumer: Any = self._consumer  # aiokafka keeps these private; stop() is the public way
        steps = []
        if consumer._coordinator is not None:
            steps += [consumer._coordinator._stop_heartbeat_task,
                      consumer._coordinator._stop_commit_offsets_refresh_task]
        if consumer._fetcher is not None:
            steps.append(consumer._fetcher.close)
        steps.append(consumer._client.close)
        for step in steps:
            try:
                await asyncio.wait_for(step(), self.stop_timeout_s)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this stop was cancelled itself (the process is shutting down)
                # A task the step awaited was cancelled: it is closed, which is the point.
            except Exception:
                log.exception("closing an abandoned consumer: %s failed", step.__qualname__)

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        if self._listener.error is not None:
            raise RuntimeError("loading the stored positions failed") from self._listener.error
        out: list[Message] = []
        for kafka_tp, records in batches.items():
            tp = TopicPartition(kafka_tp.topic, kafka_tp.partition)
            # Positional: keywords cost a fifth more per record.
            out += [Message(tp, r.offset, r.key, r.value or b"", tuple(r.headers or ()),
                            r.timestamp) for r in records]
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._consumer.commit(
            {KafkaTP(tp.topic, tp.partition): OffsetAndMetadata(o, "") for tp, o in offsets.items()}
        )

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def pause_at(self, tp: TopicPartition, offset: int) -> None:
        ktp = KafkaTP(tp.topic, tp.partition)
        if ktp not in self._consumer.assignment():
            return  # revoked meanwhile: its next owner reads from the stored position
        # Paused before the seek: records fetched past `offset` must never be handed out.
        # A rebalance forgets the pause, and the new owner seeks to the stored position,
        # meets the same record and pauses again.
        self._consumer.pause(ktp)
        self._consumer.seek(ktp, offset)

    async def lag(self) -> dict[TopicPartition, int]:
        tps = list(self._consumer.assignment())
        if not tps:
            return {}
        ends = await self._consumer.end_offsets(tps)
        out = {}
        for tp in tps:
            try:
                pos = await self._consumer.position(tp)
            except KafkaError:
                continue
            out[TopicPartition(tp.topic, tp.partition)] = max(0, ends[tp] - pos)
        return out


def _has_lz4() -> bool:
    # aiokafka compresses with cramjam (the `aiokafka[lz4]` extra), not the `lz4` package.
    return bool(has_lz4())

"""What every bus offers: Kafka's semantics (keyed partitions, groups, committed offsets)."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

Headers = tuple[tuple[str, bytes], ...]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True)
class Record:
    """A message to publish. Key decides the partition, so one key's records stay ordered."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=tuple)


class Message(NamedTuple):
    """A fetched record. A named tuple, not a frozen dataclass: a consumer makes one per record,
    and the dataclass's construction cost 0.65 µs more a record (docs/benchmarks.md)."""

    # The partition, one object shared by a fetch's messages: a consumer looks it up several
    # times a message, and a new one each time cost a microsecond a message (docs/benchmarks.md).
    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    @property
    def topic(self) -> str:
        return self.tp.topic

    @property
    def partition(self) -> int:
        return self.tp.partition


# Called with the newly assigned partitions; returns the stored next offset of each one the
# consumer has seen before (positions live in the consumer's own database, not in the bus).
PositionLoader = Callable[[Sequence[TopicPartition]], Awaitable[dict[TopicPartition, int]]]


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, *, timeout_ms: int, max_records: int) -> list[Message]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Record `offsets` (the next offset to read) as the group's committed position."""
        ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause_at(self, tp: TopicPartition, offset: int) -> None:
        """Stop fetching `tp` and rewind it to `offset`, until the partition is reassigned or
        the consumer restarts (which then reads from its stored position again)."""
        ...

    async def lag(self) -> dict[TopicPartition, int]:
        """Messages not yet consumed, per assigned partition (end offset minus position)."""
        ...


class Bus(Protocol):
    kind: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_topics(self, topics: Sequence[str]) -> None: ...

    async def publish(self, records: Sequence[Record]) -> None:
        """Durably publish all records (acks=all) or raise; order is kept per key."""
        ...

    def consumer(
        self, *, group_id: str, topics: Sequence[str], load_positions: PositionLoader
    ) -> Consumer: ...

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]: ...

    async def ready(self) -> bool: ...

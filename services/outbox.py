"""Transactional outbox: an event is stored with the state change that caused it, and a relay
publishes it afterwards, in order. Nothing rolled back is published; nothing committed is lost.
"""

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from contracts import Envelope, encode
from services.bus.base import Bus, Record
from services.db import DriverConnection, UTCDateTime, driver, pg_array

log = logging.getLogger(__name__)
# pg advisory lock key space for relays, one key per outbox
_RELAY_LOCK_BASE = 0x6F750000
_COLUMNS = "id, topic, key, value, headers"  # what drain_once publishes


class Outbox:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.table = Table(
            f"{prefix}_outbox",
            SQLModel.metadata,
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                   autoincrement=True),
            Column("topic", String(200), nullable=False),
            Column("key", LargeBinary, nullable=True),
            Column("value", LargeBinary, nullable=False),
            Column("headers", LargeBinary, nullable=False),
            Column("created_at", UTCDateTime(), nullable=False),
        )

    def add(self, session: Session, topic: str, envelopes: Sequence[Envelope]) -> None:
        rows = self.rows(topic, envelopes)
        if rows:
            session.execute(insert(self.table), rows)

    def rows(self, topic: str, envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
        """The outbox rows for `envelopes`, for a caller that writes them its own way."""
        now = datetime.now(UTC)
        rows = []
        for env in envelopes:
            key, value, headers = encode(env)
            rows.append(
                {
                    "topic": topic,
                    "key": key,
                    "value": value,
                    "headers": orjson.dumps([[k, v.hex()] for k, v in headers]),
                    "created_at": now,
                }
            )
        return rows

    def backlog(self, engine: Engine) -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())


class Relay:
    """Publishes the outbox in id order. On PostgreSQL one process at a time holds the relay
    (advisory lock), so several intake processes never interleave one case's events."""

    def __init__(
        self, outbox: Outbox, engine: Engine, bus: Bus, *, topic_prefix: str = "",
        batch_size: int = 1000, poll_s: float = 0.5, linger_s: float = 0.005,
    ) -> None:
        self._outbox = outbox
        self._engine = engine
        self._bus = bus
        self._prefix = topic_prefix
        self._batch = batch_size
        self._poll = poll_s
        self._linger = linger_s
        self._wake = asyncio.Event()
        self.published = 0
        self.last_error: str | None = None
        self._db = (DriverConnection(engine, autocommit=True)
                    if engine.dialect.name == "postgresql" else None)

    def wake(self) -> None:
        """Called after a commit that added to the outbox; safe from the event loop thread."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncio.to_thread(self._engine.connect)
        try:
            while not stop.is_set():
                if await asyncio.to_thread(self._lead, conn):
                    break
                await _wait(stop, 1.0)
            while not stop.is_set():
                # Cleared before reading: a commit from now on wakes the wait below.
                self._wake.clear()
                try:
                    moved = await self.drain_once()
                except Exception as exc:  # database restarting: the rows wait, we retry
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("outbox relay error, retrying: %s", self.last_error)
                    await _wait(stop, 1.0)
                    continue
                if moved >= self._batch:
                    continue  # a backlog: the next batch at once
                if moved:
                    # Under load, requests keep committing: gather them a moment, so one read,
                    # publish and delete carry many requests' events, not one or two each
                    # (docs/benchmarks.md). An idle relay still publishes a commit at once.
                    await _wait(stop, self._linger)
                    continue
                await _wait_any(stop, self._wake, self._poll)
        finally:
            if self._db is not None:
                self._db.drop()
            await asyncio.to_thread(self._release, conn)

    def _lead(self, conn: Connection) -> bool:
        if conn.dialect.name != "postgresql":
            return True
        key = _RELAY_LOCK_BASE + zlib.crc32(self._outbox.prefix.encode()) % 65536
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        return got

    def _release(self, conn: Connection) -> None:
        # The advisory lock belongs to the database session, which conn.close() would hand back
        # to the pool still holding it: end the session, so another relay can lead.
        if conn.dialect.name == "postgresql":
            conn.invalidate()
        conn.close()

    async def drain_once(self) -> int:
        rows = await self._read_rows()
        if not rows:
            return 0
        records = [
            Record(
                topic=self._prefix + r.topic,
                key=r.key,
                value=r.value,
                headers=tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(r.headers)),
            )
            for r in rows
        ]
        try:
            await self._bus.publish(records)
        except Exception as exc:  # the broker may be down: keep the rows, try again later
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("outbox publish failed, will retry: %s", self.last_error)
            await asyncio.sleep(1.0)
            return 0
        self.last_error = None
        await self._delete_rows([r.id for r in rows])
        self.published += len(rows)
        return len(rows)

    # On PostgreSQL the relay reads and deletes on an asynchronous connection of its own, in
    # autocommit: a read or a delete is one round trip awaited on the event loop, where a
    # worker thread cost a hand-off of the GIL each way and the delete's transaction two more
    # round trips (docs/benchmarks.md, eighth pass).

    async def _read_rows(self) -> list[Any]:
        if self._db is None:
            return await asyncio.to_thread(self._read)
        async with self._cursor(self._db) as cur:
            await cur.execute(_READ.format(table=self._outbox.table.name), (self._batch,))
            return await cur.fetchall()

    async def _delete_rows(self, ids: list[int]) -> None:
        if self._db is None:
            await asyncio.to_thread(self._delete, ids)
            return
        async with self._cursor(self._db) as cur:
            await cur.execute(_DELETE.format(table=self._outbox.table.name), (pg_array(ids),),
                              prepare=False)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _cursor(db: DriverConnection) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        try:
            async with (await db.get()).cursor(row_factory=namedtuple_row) as cur:
                yield cur
        except psycopg.OperationalError:
            db.drop()  # the server restarted: the next drain connects again
            raise

    def _read(self) -> list[Any]:
        t = self._outbox.table
        with self._engine.connect() as conn:
            raw, pg = driver(conn)
            if not pg:
                return list(conn.execute(select(t).order_by(t.c.id).limit(self._batch)))
            # Through the driver: SQLAlchemy's row processing was a third of the relay's work
            # per event (docs/benchmarks.md).
            with contextlib.closing(raw.cursor(row_factory=namedtuple_row)) as cur:
                cur.execute(_READ.format(table=t.name), (self._batch,))
                return cur.fetchall()

    def _delete(self, ids: list[int]) -> None:
        # By id, not by range: on PostgreSQL a lower id can commit after a higher one was read.
        t = self._outbox.table
        with self._engine.begin() as conn:
            raw, pg = driver(conn)
            if not pg:
                conn.execute(delete(t).where(t.c.id.in_(ids)))
                return
            # One array parameter as one string: an IN list of a thousand parameters was
            # rendered and bound afresh for every batch, half of the relay's work per event.
            with contextlib.closing(raw.cursor()) as cur:
                cur.execute(_DELETE.format(table=t.name), (pg_array(ids),), prepare=False)


_READ = f"SELECT {_COLUMNS} FROM {{table}} ORDER BY id LIMIT %s"
_DELETE = "DELETE FROM {table} WHERE id = ANY(%s::bigint[])"


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def relay_readiness(outbox: Outbox, engine: Engine, relay: Relay) -> dict[str, Any]:
    """The readiness checks of a service that publishes through an outbox."""
    try:
        backlog = await asyncio.to_thread(outbox.backlog, engine)
        db = True
    except OperationalError:
        backlog, db = -1, False
    return {"database": db, "outbox_backlog": backlog, "relay_error": relay.last_error}

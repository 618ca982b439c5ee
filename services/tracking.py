"""Tracking records: what a consumer has processed, stored with the state it produced.

Positions (next offset per partition) let a consumer resume exactly where its last committed
transaction ended; processed event ids make a redelivered or republished event a no-op.
"""

from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Engine, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from services.bus.base import TopicPartition
from services.db import UTCDateTime, driver, pg_text_array


def upsert(session: Session, table: Table, rows: Sequence[dict[str, object]], *,
           keys: Sequence[str], update: Sequence[str] = ()) -> None:
    """INSERT … ON CONFLICT on both SQLite and PostgreSQL; `update` empty means DO NOTHING."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt, list(rows))


class Tracking:
    def __init__(self, prefix: str) -> None:
        meta = SQLModel.metadata
        self.positions = Table(
            f"{prefix}_positions",
            meta,
            Column("group_id", String(200), primary_key=True),
            Column("topic", String(200), primary_key=True),
            Column("partition", Integer, primary_key=True),
            Column("next_offset", BigInteger, nullable=False),
        )
        self.processed = Table(
            f"{prefix}_processed_events",
            meta,
            Column("event_id", String(64), primary_key=True),
            Column("processed_at", UTCDateTime(), nullable=False),
        )

    def load_positions(
        self, engine: Engine, group_id: str, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        wanted = set(tps)
        with engine.connect() as conn:
            rows = conn.execute(
                select(self.positions).where(self.positions.c.group_id == group_id)
            )
            found = {TopicPartition(r.topic, r.partition): r.next_offset for r in rows}
        return {tp: o for tp, o in found.items() if tp in wanted}

    def save_positions(
        self, session: Session, group_id: str, offsets: dict[TopicPartition, int]
    ) -> None:
        rows = [
            {"group_id": group_id, "topic": tp.topic, "partition": tp.partition, "next_offset": o}
            for tp, o in offsets.items()
        ]
        upsert(session, self.positions, rows, keys=("group_id", "topic", "partition"),
               update=("next_offset",))

    def claim_new(self, session: Session, event_ids: Iterable[str]) -> set[str]:
        """Mark ids processed and return those not seen before (in this same transaction)."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return set()
        # Through the driver, not SQLAlchemy's executemany: its per-row parameter processing
        # was a measurable share of every consumer's batch (docs/benchmarks.md).
        conn = session.connection()
        raw, pg = driver(conn)
        table = self.processed.name
        now = datetime.now(UTC)
        with closing(raw.cursor()) as cur:
            if pg:
                # One statement: an id another transaction is inserting waits for it, then
                # counts as seen, so two consumers never both claim it.
                array, param = pg_text_array(ids)
                cur.execute(
                    f"INSERT INTO {table} (event_id, processed_at) SELECT unnest({array}), %s "
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                    (param, now),
                )
                return {r[0] for r in cur.fetchall()}
            # SQLite: writers are serialised (BEGIN IMMEDIATE), so look, then insert.
            seen: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                cur.execute(f"SELECT event_id FROM {table} WHERE event_id IN ({marks})", chunk)
                seen.update(r[0] for r in cur.fetchall())
            new = [i for i in ids if i not in seen]
            stamp = self._sqlite_time(conn.dialect)(now)
            cur.executemany(f"INSERT INTO {table} (event_id, processed_at) VALUES (?, ?)",
                            [(i, stamp) for i in new])
            return set(new)

    def _sqlite_time(self, dialect: Dialect) -> Callable[[datetime], object]:
        col = self.processed.c.processed_at
        return col.type.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)

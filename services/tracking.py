"""Tracking records: what a consumer has processed, stored with the state it produced.

Positions (next offset per partition) let a consumer resume exactly where its last committed
transaction ended; processed event ids make a redelivered or republished event a no-op.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Engine, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from services.bus.base import TopicPartition
from services.db import UTCDateTime


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
        seen: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            seen.update(
                session.execute(
                    select(self.processed.c.event_id).where(self.processed.c.event_id.in_(chunk))
                ).scalars()
            )
        new = [i for i in ids if i not in seen]
        now = datetime.now(UTC)
        upsert(session, self.processed, [{"event_id": i, "processed_at": now} for i in new],
               keys=("event_id",))
        return set(new)

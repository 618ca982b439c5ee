"""Intake's group-commit transactions on PostgreSQL, written from the event loop.

The threaded writer (intake.writer.write_batch) hands the GIL to its thread and back after
each of a transaction's round trips, about fifteen; under load that hand-off cost a fifth of a
single-case request (docs/benchmarks.md, eighth pass). Here the same transaction runs on
psycopg's asynchronous connection: its waits are awaited, so the event loop serves other
requests meanwhile, and its domain work runs between them on the loop's own thread.

Only the usual batch is written here: the catalogue as last read, the cases and earlier
answers looked up up front, new case numbers, the rows. Anything else (the catalogue changed,
a case code the counter supplied already taken, a clash with another process's transaction,
the connection lost) rolls back what this transaction did and answers None, and the caller
writes the batch with the threaded writer, which handles every case. So this module adds
speed, never a behaviour: the statements are the threaded writer's (intake.batch).

New case numbers are drawn on a connection of their own, in a statement committed at once,
as a PostgreSQL sequence hands out its numbers (the threaded writer draws them apart too).
Drawn inside the transaction, the agency's daily sequence row stayed locked until the commit,
so a second transaction in flight receiving cases at the same agency waited for the first's
commit (docs/benchmarks.md, eighteenth pass). A transaction rolled back after its draw leaves
those numbers unused: a day's sequence can skip, and a number is never handed out twice.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
from sqlalchemy import Engine, Table

from intake.batch import (
    ANSWER_COLUMNS,
    CASES,
    DRAW_SESSION,
    EVENTS,
    SCRATCH,
    SEQUENCE_SQL,
    UPDATE_SQL,
    Batch,
    Detached,
    copy_columns,
    fresh_codes,
    where_in_sql,
)
from intake.service import IntakeDeps, assign_codes, codes_wanted
from intake.state import COLUMNS
from intake.writer import Item, Outcome, audit_outcomes, clash, lookups, stage, unavailable
from services.db import DriverConnection, copy_statement, interned_dict_row

log = logging.getLogger(__name__)
Cursor = psycopg.AsyncCursor[dict[str, Any]]


class _Elsewhere(Exception):
    """This batch is for the threaded writer."""


class LoopWriter:
    """One connection of its own, used by one batch at a time (the group writer's)."""

    def __init__(self, engine: Engine, deps: IntakeDeps) -> None:
        self._db = DriverConnection(engine)
        # Case numbers are drawn on a session of its own, each draw committed at once
        # (intake.batch's DRAW_SESSION says why it may skip the flush).
        self._numbers = DriverConnection(engine, autocommit=True, settings=DRAW_SESSION)
        self._engine = engine
        self._deps = deps
        self._unreachable = False

    async def write(self, items: list[Item], locked: Callable[[], None] = lambda: None
                    ) -> list[Outcome] | None:
        """The items' outcomes once committed; None if nothing was written and the batch is
        for the threaded writer. `locked` is called once this transaction holds its cases'
        rows and its case numbers: a transaction started after that waits for any of them it
        shares, so events and numbers keep the order of arrival."""
        try:
            conn = await self._db.get()
        except psycopg.Error as exc:
            # Once per outage, not once per batch: the threaded writer (503 while the database
            # is away) answers meanwhile.
            if not self._unreachable:
                log.warning("intake's loop writer cannot connect (%s); writing from a thread "
                            "until it can", exc)
            self._unreachable = True
            return None
        self._unreachable = False
        try:
            outcomes = await self._transaction(conn, items, locked)
        except (Detached, _Elsewhere):
            await self._rollback(conn)
            return None
        except psycopg.Error as exc:
            # A unique key or a lock another process took, or the server gone: the threaded
            # writer tries again and answers as it always has (a retry, or 503).
            log.info("intake's loop writer hands a batch to the thread: %s", exc)
            await self._rollback(conn)
            return None
        except BaseException:
            self.close()  # cancelled or a bug mid-transaction: the server rolls it back
            raise
        try:
            await conn.commit()
        except psycopg.Error as exc:
            self.close()
            if clash(exc):  # undone by the server: the threaded writer tries again
                return None
            # Perhaps committed, perhaps not: answered as the threaded writer answers, never
            # written twice behind the counter's back.
            return [unavailable(exc)] * len(items)
        return outcomes

    async def _rollback(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            await conn.rollback()
        except psycopg.Error:
            self.close()

    def _read_catalogue(self) -> None:
        with self._engine.connect() as conn:
            self._deps.store.catalogue(conn)  # type: ignore[arg-type]

    def close(self) -> None:
        self._db.drop()
        self._numbers.drop()

    async def _transaction(self, conn: psycopg.AsyncConnection[Any], items: list[Item],
                           locked: Callable[[], None]) -> list[Outcome]:
        """Everything but the commit."""
        deps = self._deps
        async with conn.cursor(row_factory=interned_dict_row) as cur:
            await cur.execute(deps.store.revision_sql())
            found = await cur.fetchone()
            revision = str((found or {}).get("revision") or "")
            catalogue = deps.store.cached(revision)
            if catalogue is None:  # changed since last read: read again, once, aside
                await asyncio.to_thread(self._read_catalogue)
                if (catalogue := deps.store.cached(revision)) is None:
                    raise _Elsewhere("the catalogue changed again while it was read")
            batch = Batch.detached(catalogue)
            codes, ids = batch.unread(*lookups(items))
            if codes:  # locked first, as Batch.prefetch does
                batch.take_cases(codes, await _select(cur, CASES, COLUMNS, "case_code", codes,
                                                     lock=True))
            if ids:
                batch.take_answers(ids, await _select(cur, EVENTS, ANSWER_COLUMNS,
                                                      "event_id", ids))
            staged = stage(batch, deps, items)
            wanted = codes_wanted(staged)
            outcomes = assign_codes(staged, await self._new_codes(cur, batch, wanted)
                                    if wanted else {})
            locked()
            audit_outcomes(batch, deps, items, outcomes)
            await _write(cur, batch)
        return outcomes

    async def _new_codes(self, cur: Cursor, batch: Batch, wanted: Counter[tuple[str, date]]
                         ) -> dict[tuple[str, date], list[str]]:
        """Batch.new_codes, the numbers drawn apart from the transaction (above)."""
        out: dict[tuple[str, date], list[str]] = {key: [] for key in wanted}
        need = dict(wanted)
        while need:
            groups = sorted(need.items())
            fresh = fresh_codes(groups, await self._draw(groups))
            taken = await _select(cur, CASES, ["case_code"], "case_code",
                                  [code for got in fresh.values() for code in got])
            need = batch.keep_free(wanted, out, fresh, {r["case_code"] for r in taken})
        return out

    async def _draw(self, groups: list[tuple[tuple[str, date], int]]) -> list[tuple[Any, ...]]:
        try:
            conn = await self._numbers.get()
            async with conn.cursor() as cur:
                await cur.execute(
                    SEQUENCE_SQL.format(values=", ".join(["(%s, %s, %s)"] * len(groups))),
                    [v for (agency, day), n in groups for v in (agency, day, n)])
                return await cur.fetchall()
        except psycopg.Error:
            self._numbers.drop()  # perhaps lost: the next draw connects again
            raise


async def _select(cur: Cursor, table: Table, columns: Any, key: str, values: list[str], *,
                  lock: bool = False) -> list[dict[str, Any]]:
    sql, param = where_in_sql(table, columns, key, values, lock=lock)
    await cur.execute(sql, (param,), prepare=False)
    return await cur.fetchall()


async def _write(cur: Cursor, batch: Batch) -> None:
    """Batch.write on the asynchronous connection."""
    for table, rows in batch.plan():
        if table is not None:
            await _copy(cur, table, rows)
            continue
        create, update_from, empty = UPDATE_SQL
        await cur.execute(create)
        await _copy(cur, CASES, rows, into=SCRATCH)
        await cur.execute(update_from)
        await cur.execute(empty)


async def _copy(cur: Cursor, table: Table, rows: list[dict[str, Any]],
                into: str | None = None) -> None:
    columns, types, values = copy_columns(table, rows)
    async with cur.copy(copy_statement(into or table.name, columns)) as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(values(row))

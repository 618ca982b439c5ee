"""The projection's reads and writes, straight through the database driver.

Measured (docs/benchmarks.md): building ORM objects and SQLAlchemy's per-row parameter
processing for executemany cost more than everything else a batch does. So each batch is a few
statements on the session's own connection (same transaction): on PostgreSQL whole columns go
as arrays through `unnest` (one round trip per statement whatever the batch size), on SQLite
the driver's executemany. The tables are metrics.models' ProjectedCase and Counter.
"""

from collections.abc import Sequence
from contextlib import closing
from datetime import date
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Column
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from metrics.models import Counter, ProjectedCase
from services.consumer import RetryBatch
from services.db import binary_types, copy_binary, driver, pg_array, pg_text_array

if TYPE_CHECKING:
    from metrics.projection import CaseFacts

CASES = ProjectedCase.__tablename__
COUNTERS = Counter.__tablename__
# Counter rows a statement upserts: a rebuild flushes up to 100,000 at once.
COUNTER_ROWS_A_STATEMENT = 10_000
_LOADED = ("case_code", "agency_code", "province_code", "district_code", "field_code",
           "procedure_code", "channel", "online_level", "received_at", "transfers",
           "transfers_electronic", "resolved_on", "result_digitised", "overdue", "status",
           "sequence")
_MUTABLE = ("transfers", "transfers_electronic", "resolved_on", "result_digitised", "overdue",
            "status", "sequence")
_loaded = attrgetter(*_LOADED)
_CASE_TYPES = binary_types(ProjectedCase.__table__, _LOADED)  # type: ignore[attr-defined]


def _driver(session: Session) -> tuple[Any, bool]:
    """The DBAPI connection inside the session's transaction, and whether it is PostgreSQL."""
    return driver(session.connection())


def tune_transaction(session: Session) -> None:
    """Settings for the rest of this transaction (PostgreSQL), in one round trip.

    Commit without waiting for the WAL flush: safe for a projection only. The consumer's
    positions commit in the same transaction, so a database crash that loses the last few
    hundred milliseconds of commits loses the positions with the counters, and the consumer
    reads those events again from the log (the database's positions win over the group's
    offsets). Never for intake, whose outbox rows may already be published by then.

    Read cases by their key whatever the statistics say. Every lookup here is by key, a few
    thousand keys against a table that grows by the million; but statistics lag behind (a
    new or restored database until autovacuum analyses it, and a rebuild, which empties and
    refills the tables in one transaction, throughout): the planner then read a batch's cases
    by scanning the whole table, each batch slower than the last (docs/benchmarks.md). At the
    cost that setting gives a scan, PostgreSQL would compile a statement that still has one
    (JIT), 90 ms each: off as well.
    """
    raw, pg = _driver(session)
    if pg:
        with closing(raw.cursor()) as cur:
            cur.execute("SET LOCAL synchronous_commit = off; SET LOCAL enable_seqscan = off; "
                        "SET LOCAL jit = off")


def load_cases(session: Session, codes: Sequence[str]) -> "dict[str, CaseFacts]":
    from metrics.projection import CaseFacts

    if not codes:
        return {}
    raw, pg = _driver(session)
    cols = ", ".join(_LOADED)
    rows: list[tuple[Any, ...]] = []
    with closing(raw.cursor()) as cur:
        if pg:
            array, param = pg_text_array(list(codes))
            cur.execute(f"SELECT {cols} FROM {CASES} WHERE case_code = ANY({array})", (param,),
                        prepare=False)
            rows = cur.fetchall()
        else:
            for i in range(0, len(codes), 500):
                chunk = codes[i : i + 500]
                marks = ",".join("?" * len(chunk))
                cur.execute(f"SELECT {cols} FROM {CASES} WHERE case_code IN ({marks})", chunk)
                rows.extend(cur.fetchall())
    if pg:
        # Positionally: rows come in _LOADED's order, CaseFacts' keyword order.
        return {row[0]: CaseFacts(*row) for row in rows}
    out = {}
    for row in rows:
        values = dict(zip(_LOADED, row, strict=True))
        # SQLite keeps dates as text and booleans as integers; received_at is never read back
        # by the projection (only inserted), so it may stay text here.
        if values["resolved_on"] is not None:
            values["resolved_on"] = date.fromisoformat(values["resolved_on"])
        values["result_digitised"] = bool(values["result_digitised"])
        values["overdue"] = bool(values["overdue"])
        out[values["case_code"]] = CaseFacts(**values)
    return out


def insert_cases(session: Session, cases: "Sequence[CaseFacts]") -> None:
    if not cases:
        return
    raw, pg = _driver(session)
    rows = [_loaded(c) for c in cases]
    if pg:
        # A case already there fails the batch, as a plain INSERT would: another consumer
        # received it meanwhile (the retry finds it and skips the receipt).
        try:
            copy_binary(raw, CASES, _LOADED, _CASE_TYPES, rows)
        except psycopg.errors.UniqueViolation as exc:
            raise RetryBatch(f"a case this batch receives was projected meanwhile: {exc}") \
                from exc
        return
    cols = ", ".join(_LOADED)
    bind = _sqlite_binders(session.get_bind().dialect)
    marks = ",".join("?" * len(_LOADED))
    with closing(raw.cursor()) as cur:
        cur.executemany(f"INSERT INTO {CASES} ({cols}) VALUES ({marks})",
                        [tuple(b(v) for b, v in zip(bind, r, strict=True)) for r in rows])


def update_cases(session: Session, cases: "Sequence[CaseFacts]",
                 loaded: Sequence[int | None]) -> None:
    """Write the cases' new state, each only if its sequence is still the one `loaded` (read
    by this batch): the subject sequence is what makes a redelivery a no-op, so a batch must
    not overwrite a case another consumer advanced meanwhile (RetryBatch)."""
    if not cases:
        return
    raw, pg = _driver(session)
    rows = [(*c.mutable(), seq, c.case_code) for c, seq in zip(cases, loaded, strict=True)]
    with closing(raw.cursor()) as cur:
        if pg:
            # Arrays through unnest, not COPY into a scratch table and UPDATE … FROM it: that
            # cost less CPU, but in the rebuild's one long transaction each chunk's update
            # took longer than the last (4 → 18 µs an event over two million events), where
            # this stays flat (docs/benchmarks.md). Another transaction's update of a row
            # makes this one wait, then re-check the condition against the committed row:
            # changed, the row is not updated.
            sets = ", ".join(f"{c} = u.{c}" for c in _MUTABLE)
            *columns, codes = zip(*rows, strict=True)
            code_array, code_param = pg_text_array(list(codes))
            cur.execute(
                f"UPDATE {CASES} AS c SET {sets} FROM unnest(%s::int[], %s::int[], %s::date[], "
                f"%s::bool[], %s::bool[], %s::int[], %s::int[], %s::int[], {code_array}) "
                f"AS u({', '.join(_MUTABLE)}, loaded, case_code) "
                "WHERE c.case_code = u.case_code AND c.sequence IS NOT DISTINCT FROM u.loaded",
                [*map(pg_array, columns), code_param],
            )
            updated = cur.rowcount
        else:
            sets = ", ".join(f"{c} = ?" for c in _MUTABLE)
            cur.executemany(
                f"UPDATE {CASES} SET {sets} WHERE sequence IS ? AND case_code = ?",
                [(t, te, d.isoformat() if d else None, *rest) for t, te, d, *rest in rows],
            )
            updated = cur.rowcount
    if updated != len(rows):
        raise RetryBatch(f"{len(rows) - updated} of the cases this batch changes were changed "
                         "meanwhile")


def add_to_counters(session: Session, rows: Sequence[tuple[str, str, str, int]], *,
                    per_statement: int = COUNTER_ROWS_A_STATEMENT) -> None:
    if not rows:
        return
    raw, pg = _driver(session)
    with closing(raw.cursor()) as cur:
        if pg:
            # One statement, its columns as arrays (the text ones joined into a string each,
            # split by PostgreSQL): a COPY into a scratch table, the upsert from it and
            # emptying it cost three round trips and a third more of the server's time
            # (docs/benchmarks.md, thirteenth pass). A rebuild's flush holds up to 100,000
            # rows: in slices, its arrays and strings take a tenth of the memory at once.
            # Concurrent projections (a rebuild beside the live one) must lock the counter
            # rows in one order or deadlock: the rows are sorted here and each statement
            # inserts them in code-point order (COLLATE "C", whatever the database's
            # collation), so the slices follow one order throughout.
            ordered = sorted(rows) if len(rows) > per_statement else rows
            for start in range(0, len(ordered), per_statement):
                _upsert_counters(cur, ordered[start:start + per_statement])
        else:
            cur.executemany(
                f"INSERT INTO {COUNTERS} (name, scope, period, value) VALUES (?, ?, ?, ?) "
                f"ON CONFLICT (name, scope, period) DO UPDATE SET value = {COUNTERS}.value + "
                "excluded.value",
                rows,
            )


def _upsert_counters(cur: Any, rows: Sequence[tuple[str, str, str, int]]) -> None:
    names, scopes, periods, values = zip(*rows, strict=True)
    arrays, params = zip(*map(pg_text_array, (list(names), list(scopes), list(periods))),
                         strict=True)
    cur.execute(
        f"INSERT INTO {COUNTERS} (name, scope, period, value) "
        f"SELECT * FROM unnest({arrays[0]}, {arrays[1]}, {arrays[2]}, %s::int8[]) "
        "AS u (name, scope, period, value) "
        'ORDER BY name COLLATE "C", scope COLLATE "C", period COLLATE "C" '
        "ON CONFLICT (name, scope, period) DO UPDATE SET "
        f"value = {COUNTERS}.value + excluded.value",
        [*params, pg_array(values)], prepare=False,
    )


def _sqlite_binders(dialect: Dialect) -> list[Any]:
    """Per column, what SQLAlchemy would store on SQLite (dates and timestamps as its text)."""
    table = ProjectedCase.__table__  # type: ignore[attr-defined]
    out = []
    for name in _LOADED:
        col: Column[Any] = table.c[name]
        proc = col.type.dialect_impl(dialect).bind_processor(dialect)
        out.append(proc or _same)
    return out


def _same(value: Any) -> Any:
    return value

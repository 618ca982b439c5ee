"""One transaction's worth of intake writes: what it reads once, what it writes together.

A batch reads the catalogue once, locks the cases its events touch in one statement, looks up
earlier answers for its event ids in one statement, hands out case numbers per agency and day in
one statement each, and writes every new row with one statement per table. The domain functions
(intake.service) only read from it and append to it; they check everything before they append
anything, so an item that is refused leaves nothing behind in the batch.

A detached batch (`Batch.detached`) has no connection: intake.pg_writer runs the same
statements on an asynchronous one, hands it what they read and writes the rows it plans.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import date
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, text, update

from contracts import CASES_TOPIC, Envelope
from intake.codes import format_case_code
from intake.models import OUTBOX, Applicant, AuditEntry, Case, CaseEventRecord
from intake.state import COLUMNS, CaseState
from registry.catalogue import Catalogue
from registry.store import CatalogueStore
from services.db import (
    binary_types,
    copy_binary,
    driver,
    interned_dict_row,
    pg_text_array,
)
from services.errors import Conflict
from services.security.scopes import AgencyTree

CASES = Case.__table__  # type: ignore[attr-defined]
EVENTS = CaseEventRecord.__table__  # type: ignore[attr-defined]
APPLICANTS = Applicant.__table__  # type: ignore[attr-defined]
AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
# Bind names apart from the column names: SQLAlchemy reserves those for its own SET clause.
_UPDATE = (update(CASES).where(CASES.c.case_code == bindparam("b_case_code"))
           .values({name: bindparam(f"b_{name}") for name in COLUMNS if name != "case_code"}))
def _insert(conn: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    conn.execute(insert(table), rows)


def _copy(raw: Any, table: Table, rows: list[dict[str, Any]], into: str | None = None) -> None:
    columns, types, values = copy_columns(table, rows)
    copy_binary(raw, into or table.name, columns, types, map(values, rows))


def copy_columns(table: Table, rows: list[dict[str, Any]]
                 ) -> tuple[tuple[str, ...], list[str], Callable[[dict[str, Any]], Any]]:
    """The columns of `rows` (all alike), their COPY types, and a row's values in order."""
    columns = tuple(rows[0])
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    return columns, binary_types(table, columns), values


SCRATCH = "intake_cases_scratch"
_SET = ", ".join(name for name in COLUMNS if name != "case_code")
_FROM = ", ".join(f"s.{name}" for name in COLUMNS if name != "case_code")


class Detached(Exception):
    """A detached batch (intake.pg_writer) was asked for something it did not read first."""


class Batch:
    def __init__(self, conn: Connection, store: CatalogueStore) -> None:
        self.conn: Connection | None = conn
        raw, pg = driver(conn)
        # The psycopg connection for COPY and array lookups; None on SQLite.
        self.raw: Any | None = raw if pg else None
        self._start(store.catalogue(conn))  # type: ignore[arg-type]

    @classmethod
    def detached(cls, catalogue: Catalogue) -> "Batch":
        """A batch without a connection: its reads are handed to it (`take`), its rows taken
        from it (`plan`); anything else it would read raises Detached."""
        batch = cls.__new__(cls)
        batch.conn = batch.raw = None
        batch._start(catalogue)
        return batch

    def _start(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.cases: dict[str, CaseState] = {}
        self.created: set[str] = set()
        self.changed: set[str] = set()
        self.answers: dict[str, tuple[str, dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.applicants: list[dict[str, Any]] = []
        self.envelopes: list[Envelope] = []
        self.audits: list[dict[str, Any]] = []
        self._looked_up_cases: set[str] = set()
        self._looked_up_answers: set[str] = set()

    # --- reading -------------------------------------------------------------------------------

    def tree(self) -> AgencyTree:
        """The agency tree for scope checks (one per catalogue snapshot)."""
        return AgencyTree.of(self.catalogue)

    def prefetch(self, case_codes: Iterable[str], event_ids: Iterable[str]) -> None:
        """Lock the cases, then read the earlier answers: in that order, so that a copy of an
        event committed by another process while we waited for its case is seen as a retry."""
        codes, ids = self.unread(case_codes, event_ids)
        if codes:
            # FOR UPDATE (in code order, so two batches never wait on each other in a circle)
            # serialises events on one case on PostgreSQL; SQLite's write transaction already
            # does.
            self.take_cases(codes, self._select_cases(codes))
        if ids:
            self.take_answers(ids, self._select_answers(ids))

    def unread(self, case_codes: Iterable[str], event_ids: Iterable[str]
               ) -> tuple[list[str], list[str]]:
        """The case codes and event ids not looked up yet, each sorted."""
        return (sorted(set(case_codes) - self._looked_up_cases - self.cases.keys()),
                sorted(set(event_ids) - self._looked_up_answers - self.answers.keys()))

    def take_cases(self, codes: list[str], rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.cases[row["case_code"]] = CaseState.from_row(row)
        self._looked_up_cases.update(codes)

    def take_answers(self, ids: list[str], rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.answers[row["event_id"]] = (row["fingerprint"], row["response"])
        self._looked_up_answers.update(ids)

    def _where_in(self, table: Table, columns: list[str], key: str, values: list[str], *,
                  lock: bool = False) -> list[dict[str, Any]]:
        """Rows of `table` whose `key` is one of `values` (in key order, FOR UPDATE if `lock`).
        On PostgreSQL through the driver with the values as one parameter: SQLAlchemy renders
        an IN list of n parameters afresh for every batch (docs/benchmarks.md)."""
        conn = self._connection()
        if self.raw is None:
            query = select(*(table.c[c] for c in columns)).where(table.c[key].in_(values))
            if lock:
                query = query.order_by(table.c[key]).with_for_update()
            return [dict(row) for row in conn.execute(query).mappings()]
        sql, param = where_in_sql(table, columns, key, values, lock=lock)
        with closing(self.raw.cursor(row_factory=interned_dict_row)) as cur:
            cur.execute(sql, (param,), prepare=False)
            return cur.fetchall()

    def _connection(self) -> Connection:
        if self.conn is None:
            raise Detached("a detached batch reads nothing itself")
        return self.conn

    def _select_cases(self, codes: list[str]) -> list[dict[str, Any]]:
        # Timestamps come back in UTC: SQLite's through UTCDateTime, PostgreSQL's because
        # every session runs in UTC (services.db).
        return self._where_in(CASES, list(COLUMNS), "case_code", codes, lock=True)

    def _select_answers(self, ids: list[str]) -> list[dict[str, Any]]:
        return self._where_in(EVENTS, list(ANSWER_COLUMNS), "event_id", ids)

    def case(self, case_code: str) -> CaseState | None:
        if case_code not in self.cases and case_code not in self._looked_up_cases:
            self.prefetch([case_code], [])
        return self.cases.get(case_code)

    def replay(self, event_id: str | None, fingerprint: str) -> dict[str, Any] | None:
        """The stored answer for a retried event id, or a 409 if the id came with another body."""
        if not event_id:
            return None
        if event_id not in self.answers and event_id not in self._looked_up_answers:
            self.prefetch([], [event_id])
        prior = self.answers.get(event_id)
        if prior is None:
            return None
        if prior[0] != fingerprint:
            raise Conflict(f"event_id {event_id} was already used for a different request",
                           reason="idempotency_key_reused")
        return prior[1]

    def first_event(self, case_code: str) -> tuple[str, str, dict[str, Any]] | None:
        """(type, fingerprint, answer) of a case's first event."""
        for row in self.events:
            if row["case_code"] == case_code and row["seq"] == 1:
                return row["type"], row["fingerprint"], row["response"]
        found = self._connection().execute(
            select(EVENTS.c.type, EVENTS.c.fingerprint, EVENTS.c.response)
            .where(EVENTS.c.case_code == case_code, EVENTS.c.seq == 1)).first()
        return (found[0], found[1], found[2]) if found is not None else None

    def new_codes(self, wanted: Counter[tuple[str, date]]) -> dict[tuple[str, date], list[str]]:
        """`n` fresh case codes per (agency, local day), in order, skipping any a counter
        supplied itself. The counter rows are incremented in one statement for the whole
        batch, so two processes receiving at the same instant get different numbers. On
        PostgreSQL that statement is committed at once, apart from this transaction, as the
        loop writer draws its numbers (intake.pg_writer): no transaction holds a sequence row
        while it waits for a case's, which another session's draw could then wait on unseen
        by the deadlock detector. A rollback leaves those numbers spent. On SQLite, one
        writer at a time, they are drawn in this transaction, and a rollback gives them back."""
        out: dict[tuple[str, date], list[str]] = {key: [] for key in wanted}
        need = dict(wanted)
        while need:
            groups = sorted(need.items())
            values = ", ".join(f"(:a{i}, :d{i}, :n{i})" for i in range(len(groups)))
            params: dict[str, Any] = {}
            for i, ((agency, day), n) in enumerate(groups):
                params.update({f"a{i}": agency, f"d{i}": day, f"n{i}": n})
            rows = self._draw(text(SEQUENCE_SQL.format(values=values)), params)
            fresh = fresh_codes(groups, rows)
            need = self.keep_free(wanted, out, fresh, self._taken(
                [code for codes in fresh.values() for code in codes]))
        return out

    def _draw(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        conn = self._connection()
        if self.raw is None:
            return list(conn.execute(statement, params).all())
        with conn.engine.begin() as apart:
            apart.execute(text("SELECT " + ", ".join(
                f"set_config('{name}', '{value}', true)" for name, value in DRAW_SESSION.items())))
            return list(apart.execute(statement, params).all())

    def keep_free(self, wanted: Counter[tuple[str, date]],
                  out: dict[tuple[str, date], list[str]], fresh: dict[tuple[str, date], list[str]],
                  taken: set[str]) -> dict[tuple[str, date], int]:
        """Add the fresh codes not taken to `out`; how many each key still needs."""
        taken = taken | {c for codes in fresh.values() for c in codes if c in self.cases}
        for key, codes in fresh.items():
            out[key] += [c for c in codes if c not in taken]
        return {key: n - len(out[key]) for key, n in wanted.items() if len(out[key]) < n}

    def _taken(self, codes: list[str]) -> set[str]:
        return {r["case_code"] for r in self._where_in(CASES, ["case_code"], "case_code", codes)}

    # --- writing -------------------------------------------------------------------------------

    def add_case(self, case: CaseState) -> None:
        self.cases[case.case_code] = case
        self.created.add(case.case_code)

    def put_case(self, case: CaseState) -> None:
        self.cases[case.case_code] = case
        if case.case_code not in self.created:
            self.changed.add(case.case_code)

    def add_event(self, row: dict[str, Any], envelope: Envelope) -> None:
        self.events.append(row)
        self.answers[row["event_id"]] = (row["fingerprint"], row["response"])
        self.envelopes.append(envelope)

    def _update_by_copy(self, rows: list[dict[str, Any]]) -> None:
        """COPY the changed rows into a scratch table, then one UPDATE … FROM it (in code
        order, as they were locked)."""
        raw = self.raw
        assert raw is not None, "PostgreSQL only"
        create, update_from, empty = UPDATE_SQL
        with closing(raw.cursor()) as cur:
            cur.execute(create)
            _copy(raw, CASES, rows, into=SCRATCH)
            cur.execute(update_from)
            # TRUNCATE, not DELETE: nothing vacuums a temporary table's dead rows; and a
            # consumer's transaction writes many batches.
            cur.execute(empty)

    def write(self) -> None:
        """Every row the batch added, one statement per table (cases before their events).

        On PostgreSQL the new rows go in with COPY: psycopg formats a row for COPY in C, where
        an INSERT's executemany costs a statement per row on both sides (docs/benchmarks.md).
        A duplicate key fails the COPY as it would the INSERT."""
        conn = self._connection()
        for table, rows in self.plan():
            if table is None:
                if self.raw is None:
                    conn.execute(_UPDATE, [{f"b_{k}": v for k, v in row.items()}
                                           for row in rows])
                else:
                    self._update_by_copy(rows)
            elif self.raw is None:
                _insert(conn, table, rows)
            else:
                _copy(self.raw, table, rows)

    def plan(self) -> list[tuple[Table | None, list[dict[str, Any]]]]:
        """The rows to write, table by table in order (None: the changed cases, to update),
        and the batch emptied of them."""
        steps: list[tuple[Table | None, list[dict[str, Any]]]] = []
        if self.created:
            steps.append((CASES, [self.cases[code].row() for code in sorted(self.created)]))
        if self.changed:
            steps.append((None, [self.cases[code].row() for code in sorted(self.changed)]))
        for table, rows in ((APPLICANTS, self.applicants), (EVENTS, self.events),
                            (OUTBOX.table, OUTBOX.rows(CASES_TOPIC, self.envelopes)
                             if self.envelopes else []), (AUDIT, self.audits)):
            if rows:
                steps.append((table, rows))
        self.created = set()
        self.changed = set()
        self.applicants = []
        self.events = []
        self.envelopes = []
        self.audits = []
        return steps


# --- PostgreSQL statements, shared by the batch and intake.pg_writer ------------------------

ANSWER_COLUMNS = ("event_id", "fingerprint", "response")
# A draw's commit needs no flush of its own: the WAL is flushed in order, so the commit of a
# transaction using the numbers flushes their draw's first, and a draw lost in a crash was
# used by no committed case. The lock timeout bounds a wait on a sequence row that an intake
# of an earlier version holds to its commit (a rolling upgrade), which the deadlock detector
# would not see.
DRAW_SESSION = {"synchronous_commit": "off", "lock_timeout": "5s"}
SEQUENCE_SQL = ("INSERT INTO intake_case_sequences (agency_code, day, last) VALUES {values} "
                "ON CONFLICT (agency_code, day) DO UPDATE SET "
                "last = intake_case_sequences.last + excluded.last "
                "RETURNING agency_code, day, last")


def where_in_sql(table: Table, columns: Iterable[str], key: str, values: list[str], *,
                 lock: bool = False) -> tuple[str, Any]:
    """On PostgreSQL, rows of `table` whose `key` is one of `values`, with the values as one
    parameter: SQLAlchemy renders an IN list of n parameters afresh for every batch
    (docs/benchmarks.md). FOR UPDATE in key order if `lock`."""
    array, param = pg_text_array(values)
    tail = f" ORDER BY {key} FOR UPDATE" if lock else ""
    return (f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key} = ANY({array}){tail}",
            param)


def fresh_codes(groups: list[tuple[tuple[str, date], int]], rows: Iterable[Any]
                ) -> dict[tuple[str, date], list[str]]:
    """The codes numbered for each (agency, day) wanting n, from SEQUENCE_SQL's rows."""
    last = {(agency, str(day)): int(n) for agency, day, n in rows}
    out = {}
    for key, n in groups:
        top = last[(key[0], key[1].isoformat())]
        out[key] = [format_case_code(key[0], key[1], seq) for seq in range(top - n + 1, top + 1)]
    return out


# The changed cases' update: the scratch table's creation, the UPDATE from it, its emptying.
UPDATE_SQL = (f"CREATE TEMP TABLE IF NOT EXISTS {SCRATCH} (LIKE {CASES.name})",
              f"UPDATE {CASES.name} AS c SET ({_SET}) = ({_FROM}) FROM {SCRATCH} AS s "
              "WHERE s.case_code = c.case_code",
              f"TRUNCATE {SCRATCH}")

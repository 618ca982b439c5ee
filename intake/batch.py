"""One transaction's worth of intake writes: what it reads once, what it writes together.

A batch reads the catalogue once, locks the cases its events touch in one statement, looks up
earlier answers for its event ids in one statement, hands out case numbers per agency and day in
one statement each, and writes every new row with one statement per table. The domain functions
(intake.service) only read from it and append to it; they check everything before they append
anything, so an item that is refused leaves nothing behind in the batch.
"""

from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from datetime import UTC, date
from operator import itemgetter
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy import Connection, Table, bindparam, insert, select, text, update

from contracts import CASES_TOPIC, Envelope
from intake.codes import format_case_code
from intake.models import OUTBOX, Applicant, AuditEntry, Case, CaseEventRecord
from intake.state import COLUMNS, CaseState
from registry.store import CatalogueStore
from services.db import UTCDateTime, binary_types, copy_binary, driver, pg_text_array
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
    columns = tuple(rows[0])
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    copy_binary(raw, into or table.name, columns, binary_types(table, columns),
                (values(row) for row in rows))


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    # As UTCDateTime reads them: psycopg gives timestamps in the session's time zone.
    for name in _TIMESTAMPS:
        if row[name] is not None:
            row[name] = row[name].astimezone(UTC)
    return row


_TIMESTAMPS = tuple(c.name for c in CASES.columns if isinstance(c.type, UTCDateTime))
_SCRATCH = "intake_cases_scratch"
_SET = ", ".join(name for name in COLUMNS if name != "case_code")
_FROM = ", ".join(f"s.{name}" for name in COLUMNS if name != "case_code")


class Batch:
    def __init__(self, conn: Connection, store: CatalogueStore) -> None:
        self.conn = conn
        raw, pg = driver(conn)
        # The psycopg connection for COPY and array lookups; None on SQLite.
        self.raw: Any | None = raw if pg else None
        self.catalogue = store.catalogue(conn)  # type: ignore[arg-type]
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
        codes = sorted(set(case_codes) - self._looked_up_cases - self.cases.keys())
        if codes:
            # FOR UPDATE (in code order, so two batches never wait on each other in a circle)
            # serialises events on one case on PostgreSQL; SQLite's write transaction already
            # does.
            for row in self._select_cases(codes):
                self.cases[row["case_code"]] = CaseState.from_row(row)
            self._looked_up_cases.update(codes)
        ids = sorted(set(event_ids) - self._looked_up_answers - self.answers.keys())
        if ids:
            for event_id, fingerprint, response in self._select_answers(ids):
                self.answers[event_id] = (fingerprint, response)
            self._looked_up_answers.update(ids)

    def _where_in(self, table: Table, columns: list[str], key: str, values: list[str], *,
                  lock: bool = False) -> list[dict[str, Any]]:
        """Rows of `table` whose `key` is one of `values` (in key order, FOR UPDATE if `lock`).
        On PostgreSQL through the driver with the values as one parameter: SQLAlchemy renders
        an IN list of n parameters afresh for every batch (docs/benchmarks.md)."""
        if self.raw is None:
            query = select(*(table.c[c] for c in columns)).where(table.c[key].in_(values))
            if lock:
                query = query.order_by(table.c[key]).with_for_update()
            return [dict(row) for row in self.conn.execute(query).mappings()]
        array, param = pg_text_array(values)
        tail = f" ORDER BY {key} FOR UPDATE" if lock else ""
        with closing(self.raw.cursor(row_factory=dict_row)) as cur:
            cur.execute(f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key} = "
                        f"ANY({array}){tail}", (param,), prepare=False)
            return cur.fetchall()

    def _select_cases(self, codes: list[str]) -> list[dict[str, Any]]:
        rows = self._where_in(CASES, list(COLUMNS), "case_code", codes, lock=True)
        return rows if self.raw is None else [_utc(row) for row in rows]

    def _select_answers(self, ids: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
        rows = self._where_in(EVENTS, ["event_id", "fingerprint", "response"], "event_id", ids)
        return [(r["event_id"], r["fingerprint"], r["response"]) for r in rows]

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
        found = self.conn.execute(
            select(EVENTS.c.type, EVENTS.c.fingerprint, EVENTS.c.response)
            .where(EVENTS.c.case_code == case_code, EVENTS.c.seq == 1)).first()
        return (found[0], found[1], found[2]) if found is not None else None

    def new_codes(self, wanted: Counter[tuple[str, date]]) -> dict[tuple[str, date], list[str]]:
        """`n` fresh case codes per (agency, local day), in order, skipping any a counter
        supplied itself. The counter rows are incremented in this transaction (one statement
        for the whole batch), so two processes receiving at the same instant get different
        numbers, and a rollback gives them back."""
        out: dict[tuple[str, date], list[str]] = {key: [] for key in wanted}
        need = dict(wanted)
        while need:
            groups = sorted(need.items())
            values = ", ".join(f"(:a{i}, :d{i}, :n{i})" for i in range(len(groups)))
            params: dict[str, Any] = {}
            for i, ((agency, day), n) in enumerate(groups):
                params.update({f"a{i}": agency, f"d{i}": day, f"n{i}": n})
            rows = self.conn.execute(text(
                "INSERT INTO intake_case_sequences (agency_code, day, last) "
                f"VALUES {values} ON CONFLICT (agency_code, day) DO UPDATE SET "
                "last = intake_case_sequences.last + excluded.last "
                "RETURNING agency_code, day, last"), params).all()
            last = {(agency, str(day)): int(n) for agency, day, n in rows}
            fresh = {key: [format_case_code(key[0], key[1], seq) for seq in
                           range(last[(key[0], key[1].isoformat())] - n + 1,
                                 last[(key[0], key[1].isoformat())] + 1)]
                     for key, n in groups}
            taken = self._taken([code for codes in fresh.values() for code in codes])
            for key, codes in fresh.items():
                out[key] += [c for c in codes if c not in taken]
            need = {key: n - len(out[key]) for key, n in wanted.items() if len(out[key]) < n}
        return out

    def _taken(self, codes: list[str]) -> set[str]:
        found = self._where_in(CASES, ["case_code"], "case_code", codes)
        return {c for c in codes if c in self.cases} | {r["case_code"] for r in found}

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
        with closing(raw.cursor()) as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_SCRATCH} (LIKE {CASES.name})")
            _copy(raw, CASES, rows, into=_SCRATCH)
            cur.execute(f"UPDATE {CASES.name} AS c SET ({_SET}) = ({_FROM}) FROM {_SCRATCH} "
                        "AS s WHERE s.case_code = c.case_code")
            # TRUNCATE, not DELETE: nothing vacuums a temporary table's dead rows; and a
            # consumer's transaction writes many batches.
            cur.execute(f"TRUNCATE {_SCRATCH}")

    def write(self) -> None:
        """Every row the batch added, one statement per table (cases before their events).

        On PostgreSQL the new rows go in with COPY: psycopg formats a row for COPY in C, where
        an INSERT's executemany costs a statement per row on both sides (docs/benchmarks.md).
        A duplicate key fails the COPY as it would the INSERT."""
        target, write = (self.conn, _insert) if self.raw is None else (self.raw, _copy)
        if self.created:
            write(target, CASES, [self.cases[code].row() for code in sorted(self.created)])
        if self.changed:
            changed = [self.cases[code].row() for code in sorted(self.changed)]
            if self.raw is None:
                self.conn.execute(_UPDATE, [{f"b_{k}": v for k, v in row.items()}
                                            for row in changed])
            else:
                self._update_by_copy(changed)
        if self.applicants:
            write(target, APPLICANTS, self.applicants)
        if self.events:
            write(target, EVENTS, self.events)
        if self.envelopes:
            write(target, OUTBOX.table, OUTBOX.rows(CASES_TOPIC, self.envelopes))
        if self.audits:
            write(target, AUDIT, self.audits)
        self.created.clear()
        self.changed.clear()
        self.applicants.clear()
        self.events.clear()
        self.envelopes.clear()
        self.audits.clear()

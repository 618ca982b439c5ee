"""The group writer: many requests' items in one transaction, each answered on its own, on
SQLite and PostgreSQL. A refused item leaves nothing behind and takes no case number; a
unique-key clash at commit falls back to one item per transaction; concurrent requests share
transactions."""

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import col

from contracts import CASES_TOPIC, decode
from intake import service
from intake.app import MIGRATIONS
from intake.audit import Actor, Note
from intake.batch import Batch
from intake.catalogue import seed_catalogue
from intake.models import OUTBOX, AuditEntry, Case, CaseEventRecord
from intake.pg_writer import LoopWriter
from intake.pii import PiiCipher
from intake.schemas import CaseCreate, EventCreate
from intake.service import IntakeDeps
from intake.writer import GroupWriter, Item, write_batch
from registry.calendar import WorkingCalendar, default_calendar_dir
from registry.catalogue import Catalogue
from services.db import transaction
from services.errors import Conflict, MotcuaError, NotFound, Unavailable, ValidationFailed
from tests.conftest import migrated_engine
from tests.intake.domain import Clock

NOW = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội, a Tuesday
CENTRE = "000.00.20.H56"
ACTOR = Actor(client_id="counter-1", kind="counter", request_id="r-1", client_ip="10.0.0.1")


# On PostgreSQL intake writes from the event loop (intake.pg_writer) and hands the batches it
# does not write itself to the threaded writer: every test here runs on both paths.
@pytest.fixture(params=["sqlite", "postgres", "postgres-loop"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(mode: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    kind = SimpleNamespace(param=mode.removesuffix("-loop"),
                           getfixturevalue=request.getfixturevalue)
    yield from migrated_engine(kind, tmp_path, service="intake",  # type: ignore[arg-type]
                               migrations=MIGRATIONS)


class Writes:
    """write_batch, or on "postgres-loop" the loop writer with the threaded one behind it;
    `paths` says which wrote each batch."""

    def __init__(self, engine: Engine, deps: IntakeDeps, on_loop: bool) -> None:
        self.engine, self.deps, self.on_loop = engine, deps, on_loop
        self.paths: list[str] = []

    def __call__(self, items: list[Item]) -> list[Any]:
        if self.on_loop:
            out = asyncio.run(self._loop(items))
            if out is not None:
                self.paths.append("loop")
                return out
        self.paths.append("thread")
        return write_batch(self.engine, self.deps, items)

    async def _loop(self, items: list[Item]) -> list[Any] | None:
        writer = LoopWriter(self.engine, self.deps)
        try:
            return await writer.write(items)
        finally:
            writer.close()

    def writer(self, **kwargs: Any) -> GroupWriter:
        on_loop = [LoopWriter(self.engine, self.deps)] if self.on_loop else []
        return GroupWriter(self.engine, self.deps, on_loop=on_loop, **kwargs)


@pytest.fixture
def write(mode: str, engine: Engine, deps: IntakeDeps) -> Writes:
    return Writes(engine, deps, on_loop=mode == "postgres-loop")


@pytest.fixture
def deps(engine: Engine) -> IntakeDeps:
    return seeded_deps(engine)


def seeded_deps(engine: Engine) -> IntakeDeps:
    deps = IntakeDeps(calendar=WorkingCalendar.load(default_calendar_dir()), clock=Clock(NOW),
                      pii=PiiCipher([("test", b"k" * 32)]))
    with transaction(engine) as session:
        seed_catalogue(session=session, deps=deps, source=Catalogue.load())
    return deps


def receive(note: bool = True, **body: Any) -> Item:
    data = CaseCreate.model_validate({"agency_code": CENTRE, "procedure_code": "2.000488",
                                      "channel": "counter", **body})
    return Item(service.receive, {"data": data},
                Note(ACTOR, "case.received", case_code=data.case_code) if note else None)


def record(case_code: str, **body: Any) -> Item:
    return Item(service.record, {"case_code": case_code,
                                 "data": EventCreate.model_validate(body)},
                Note(ACTOR, f"case.{body['type']}", case_code=case_code))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def published(engine: Engine) -> int:
    """Case events waiting in the outbox (the catalogue's own events are there too)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(OUTBOX.table)
                                .where(OUTBOX.table.c.topic == CASES_TOPIC)).scalar_one())


def sequences(engine: Engine) -> dict[str, list[tuple[int | None, str]]]:
    """Per case, the (subject sequence, event id) of each case event in the outbox, in the
    order the relay publishes them."""
    out: dict[str, list[tuple[int | None, str]]] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.table.c.value).where(OUTBOX.table.c.topic == CASES_TOPIC)
                            .order_by(OUTBOX.table.c.id)).scalars()
        for value in rows:
            env = decode(value)
            out.setdefault(env.subject, []).append((env.subjectsequence, env.id))
    return out


def test_a_batch_answers_each_item_and_refused_items_leave_nothing(
    engine: Engine, write: Writes
) -> None:
    reused = str(uuid.uuid4())
    first = write([receive(event_id=reused)])
    assert not isinstance(first[0], MotcuaError)
    code = first[0][0]["case_code"]
    assert code == "000.00.20.H56-260303-0001"

    items = [
        receive(),                                            # 0: new case
        receive(procedure_code="9.999999"),                   # 1: not in the catalogue
        receive(event_id=reused),                             # 2: retry: same answer
        receive(event_id=reused, return_by_post=True),        # 3: same id, other body
        record(code, type="transferred", from_office=CENTRE,  # 4: applies
               to_office="000.00.03.H56", method="electronic"),
        record(code, type="rated", rating="satisfied"),       # 5: not while in processing
        record("000.00.20.H56-260303-0999", type="resolved"),  # 6: no such case
        receive(),                                            # 7: new case
    ]
    out = write(items)

    assert write.paths == (["loop"] * 2 if write.on_loop else ["thread"] * 2)
    assert [o[1] if isinstance(o, tuple) else type(o) for o in out] == [
        True, ValidationFailed, False, Conflict, True, Conflict, NotFound, True]
    # The refused receipt took no number: the two new cases are 0002 and 0003.
    assert out[0][0]["case_code"] == "000.00.20.H56-260303-0002"  # type: ignore[index]
    assert out[7][0]["case_code"] == "000.00.20.H56-260303-0003"  # type: ignore[index]
    assert out[2] == (first[0][0], False)
    assert isinstance(out[1], ValidationFailed)
    assert out[1].errors[0]["field"] == "procedure_code"
    assert out[4][0]["status"] == 4  # type: ignore[index]
    assert isinstance(out[5], Conflict) and out[5].extra["current_status"] == 4

    assert count(engine, Case.__table__) == 3  # type: ignore[attr-defined]
    assert count(engine, CaseEventRecord.__table__) == 4  # type: ignore[attr-defined]
    assert published(engine) == 4
    # Each case's events numbered from 1; the retry (2) and the refusals took no number.
    assert {c: [n for n, _ in evs] for c, evs in sequences(engine).items()} == {
        code: [1, 2], out[0][0]["case_code"]: [1], out[7][0]["case_code"]: [1]}  # type: ignore[index]
    with engine.connect() as conn:
        audited = conn.execute(select(AuditEntry.status).order_by(AuditEntry.id)).scalars()
        # One row per audited item, refusals included, in the batch's transaction.
        assert list(audited) == [201, 201, 422, 200, 409, 201, 409, 404, 201]
        status = conn.execute(select(Case.status).where(Case.case_code == code)).scalar_one()
        assert status == 4


def test_two_events_on_one_case_in_one_batch_apply_in_order(
    engine: Engine, write: Writes
) -> None:
    [(slip, _)] = write([receive()])
    code = slip["case_code"]
    out = write([
        record(code, type="supplement_requested", reason="Thiếu giấy tờ"),
        record(code, type="supplement_received"),
        record(code, type="resolved", result_digitised=True),
    ])
    assert [o[0]["status"] for o in out] == [5, 4, 9]
    assert set(write.paths) == {"loop" if write.on_loop else "thread"}
    with engine.connect() as conn:
        seqs = conn.execute(select(CaseEventRecord.seq, CaseEventRecord.type)
                            .where(CaseEventRecord.case_code == code)
                            .order_by(CaseEventRecord.seq)).all()
        row = conn.execute(select(Case.event_count, Case.pauses, Case.status)
                           .where(Case.case_code == code)).one()
    assert [t for _, t in seqs] == ["received", "supplement_requested", "supplement_received",
                                    "resolved"]
    assert [s for s, _ in seqs] == [1, 2, 3, 4]
    assert row.event_count == 4 and row.status == 9
    # What goes on the log carries the same numbers as the history, event for event.
    with engine.connect() as conn:
        history = conn.execute(select(col(CaseEventRecord.seq), col(CaseEventRecord.event_id))
                               .where(col(CaseEventRecord.case_code) == code)
                               .order_by(col(CaseEventRecord.seq))).all()
    assert sequences(engine)[code] == [tuple(r) for r in history]
    assert row.pauses == [["2026-03-03", "2026-03-03"]]


def test_a_unique_key_clash_at_commit_falls_back_to_one_item_a_transaction(
    engine: Engine, write: Writes, mode: str
) -> None:
    # Both items wait for a case number until the batch hands them out, so neither sees the
    # other's event id: the INSERT clashes, and item by item the second becomes the retry.
    # The loop writer hands the batch to the threaded writer, which does that.
    event_id = str(uuid.uuid4())
    out = write([receive(event_id=event_id), receive(event_id=event_id)])
    assert write.paths == ["thread"]
    assert out[0][1] is True and out[1][1] is False  # type: ignore[index]
    assert out[0][0] == out[1][0]  # type: ignore[index]
    assert count(engine, Case.__table__) == 1  # type: ignore[attr-defined]
    assert published(engine) == 1
    with engine.connect() as conn:
        last = conn.execute(text("SELECT last FROM intake_case_sequences")).scalar_one()
    # On PostgreSQL the numbers are drawn apart from the transaction, as a sequence hands
    # them out: each rolled-back batch's two stay spent (the loop writer's, then the threaded
    # writer's), and the case is numbered after them. On SQLite they are drawn in the
    # transaction, and the rollback gave them back.
    expected = {"sqlite": 1, "postgres": 3, "postgres-loop": 5}[mode]
    assert last == expected
    assert out[0][0]["case_code"].endswith(f"-{expected:04d}")  # type: ignore[index]


def test_concurrent_requests_share_a_transaction_and_get_consecutive_codes(
    engine: Engine, write: Writes
) -> None:
    written: list[int] = []

    async def main() -> list[Any]:
        writer = write.writer(on_written=lambda items, _outcomes: written.append(len(items)))
        stop = asyncio.Event()
        # Submitted before the writer runs, as requests arriving during a transaction are.
        requests = [asyncio.create_task(writer.submit([receive()])) for _ in range(40)]
        await asyncio.sleep(0)
        running = asyncio.create_task(writer.run(stop))
        answers = await asyncio.gather(*requests)
        stop.set()
        await running
        with pytest.raises(Unavailable):
            await writer.submit([receive()])
        return answers

    answers = asyncio.run(main())
    assert written == [40]
    codes = [a[0][0]["case_code"] for a in answers]
    assert codes == [f"000.00.20.H56-260303-{n:04d}" for n in range(1, 41)]
    assert published(engine) == 40


def test_requests_go_whole_into_transactions_and_each_gets_its_own_answers(
    engine: Engine, write: Writes
) -> None:
    written: list[int] = []

    async def main() -> list[Any]:
        writer = write.writer(max_items=5,
                              on_written=lambda items, _outcomes: written.append(len(items)))
        stop = asyncio.Event()
        sizes = [3, 3, 1, 2]
        requests = [asyncio.create_task(writer.submit([receive() for _ in range(n)]))
                    for n in sizes]
        await asyncio.sleep(0)
        requests[2].cancel()  # its client went away while it waited: the others are answered
        running = asyncio.create_task(writer.run(stop))
        answers = await asyncio.gather(*requests, return_exceptions=True)
        stop.set()
        await running
        return answers

    first, second, gone, last = asyncio.run(main())
    assert written == [3, 4, 2]  # whole requests, at most 5 items: 3 + 3 and 4 + 2 are over
    assert isinstance(gone, asyncio.CancelledError)
    codes = [[a[0]["case_code"][-4:] for a in answer] for answer in (first, second, last)]
    assert codes == [["0001", "0002", "0003"], ["0004", "0005", "0006"], ["0008", "0009"]]
    assert published(engine) == 9  # the gone request's case was received all the same


def test_the_writer_keeps_answering_after_a_failed_transaction(
    engine: Engine, deps: IntakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def fail_once(engine: Engine, deps: IntakeDeps, items: list[Item]) -> Any:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return write_batch(engine, deps, items)

    monkeypatch.setattr("intake.writer.write_batch", fail_once)

    async def main() -> tuple[BaseException | None, Any]:
        writer = GroupWriter(engine, deps)
        stop = asyncio.Event()
        running = asyncio.create_task(writer.run(stop))
        try:
            await writer.submit([receive()])
            failed = None
        except RuntimeError as exc:
            failed = exc
        second = await writer.submit([receive()])
        stop.set()
        await running
        return failed, second

    failed, second = asyncio.run(main())
    assert isinstance(failed, RuntimeError)
    assert second[0][1] is True
    assert second[0][0]["case_code"] == "000.00.20.H56-260303-0001"


def test_run_one_raises_the_refusal_and_writes_nothing(engine: Engine, deps: IntakeDeps) -> None:
    data = CaseCreate.model_validate({"agency_code": CENTRE, "procedure_code": "2.000488",
                                      "channel": "online"})
    with pytest.raises(ValidationFailed) as caught, transaction(engine) as session:
        service.receive_case(session=session, deps=deps, data=data)
    assert caught.value.errors[0] == {
        "field": "online_level", "rule": "required_if_online",
        "message": "online_level (partial | full) is required when channel is online"}
    assert count(engine, Case.__table__) == 0  # type: ignore[attr-defined]
    assert published(engine) == 0




# --- the loop writer's hand-overs (PostgreSQL only) -------------------------------------------

@pytest.fixture
def pg_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    kind = SimpleNamespace(param="postgres", getfixturevalue=request.getfixturevalue)
    yield from migrated_engine(kind, tmp_path, service="intake",  # type: ignore[arg-type]
                               migrations=MIGRATIONS)


def test_a_retried_receipt_with_its_own_code_is_answered_by_the_threaded_writer(
    pg_engine: Engine
) -> None:
    write = Writes(pg_engine, seeded_deps(pg_engine), on_loop=True)
    code = "000.00.20.H56-260303-0100"
    first = write([receive(case_code=code)])
    again = write([receive(case_code=code)])  # the case exists: its first event is read
    other = write([receive(case_code=code, return_by_post=True)])
    assert write.paths == ["loop", "thread", "thread"]
    assert first[0][1] is True and first[0][0]["case_code"] == code
    assert again[0] == (first[0][0], False)
    assert isinstance(other[0], Conflict)
    assert count(pg_engine, Case.__table__) == 1  # type: ignore[attr-defined]
    assert published(pg_engine) == 1


def test_the_loop_writer_reads_a_changed_catalogue_and_stays_on_the_loop(
    pg_engine: Engine
) -> None:
    deps = seeded_deps(pg_engine)
    write = Writes(pg_engine, deps, on_loop=True)
    write([receive()])
    with pg_engine.begin() as conn:  # as an import of the catalogue by another process does
        conn.execute(text(f"UPDATE {deps.store.revision_table.name} SET revision = 'r-test'"))
    out = write([receive()])
    assert write.paths == ["loop", "loop"]
    assert out[0][0]["case_code"] == "000.00.20.H56-260303-0002"
    assert deps.store.cached("r-test") is not None


def test_the_loop_writer_hands_over_when_its_connection_is_lost_then_reconnects(
    pg_engine: Engine
) -> None:
    deps = seeded_deps(pg_engine)

    async def main() -> tuple[Any, Any, Any]:
        writer = LoopWriter(pg_engine, deps)
        first = await writer.write([receive()])
        with pg_engine.begin() as conn:  # the server restarted, or the connection cut
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "datname = current_database() AND pid <> pg_backend_pid()"))
        lost = await writer.write([receive()])
        back = await writer.write([receive()])
        writer.close()
        return first, lost, back

    first, lost, back = asyncio.run(main())
    assert lost is None  # nothing written: the group writer writes it from its thread
    assert first[0][0]["case_code"] == "000.00.20.H56-260303-0001"
    assert back[0][0]["case_code"] == "000.00.20.H56-260303-0002"
    assert count(pg_engine, Case.__table__) == 2  # type: ignore[attr-defined]


class Overlap:
    """A loop writer that counts the transactions in flight beside it (`flight`: in flight,
    most at once, started), and holds each until `gate` is open (only the first if `first`)."""

    def __init__(self, inner: LoopWriter, flight: list[int],
                 gate: asyncio.Event | None = None, first: bool = False) -> None:
        self.inner, self.flight, self.gate, self.first = inner, flight, gate, first

    async def write(self, items: list[Item], locked: Any) -> list[Any] | None:
        self.flight[0] += 1
        self.flight[1] = max(self.flight[1], self.flight[0])
        self.flight[2] += 1
        try:
            if self.gate is not None and (self.flight[2] == 1 or not self.first):
                await self.gate.wait()
            return await self.inner.write(items, locked)
        finally:
            self.flight[0] -= 1

    def close(self) -> None:
        self.inner.close()


def backlog(engine: Engine, deps: IntakeDeps, requests: list[list[Item]], *, max_items: int,
            hold_first: float = 0) -> tuple[list[Any], list[int], int]:
    """The requests queued at once before a group writer with two loop writers runs: their
    answers, the items of each transaction, and the most transactions in flight at once. The
    first transaction can be held `hold_first` seconds before it starts its statements."""
    flight = [0, 0, 0]
    written: list[int] = []

    async def main() -> list[Any]:
        gate = asyncio.Event()
        writer = GroupWriter(engine, deps, max_items=max_items,
                             on_loop=[Overlap(LoopWriter(engine, deps), flight, gate, first=True)
                                      for _ in range(2)],
                             on_written=lambda items, _outcomes: written.append(len(items)))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(writer.submit(items)) for items in requests]
        await asyncio.sleep(0)
        running = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(hold_first)
        gate.set()
        answers = await asyncio.gather(*tasks)
        stop.set()
        await running
        return answers

    return asyncio.run(main()), written, flight[1]


def transfer(code: str) -> Item:
    return record(code, type="transferred", from_office=CENTRE, to_office="000.00.03.H56",
                  method="electronic")


def test_a_backlog_of_full_transactions_is_written_two_at_a_time(pg_engine: Engine) -> None:
    deps = seeded_deps(pg_engine)
    write = Writes(pg_engine, deps, on_loop=True)
    codes = [answer[0]["case_code"] for answer in write([receive() for _ in range(30)])]

    answers, written, most = backlog(pg_engine, deps, [[transfer(c) for c in codes[i:i + 5]]
                                                       for i in range(0, 30, 5)], max_items=5)

    assert most == 2
    assert written == [5] * 6
    assert [[(a[0]["case_code"], a[0]["status"]) for a in answer] for answer in answers] == [
        [(c, 4) for c in codes[i:i + 5]] for i in range(0, 30, 5)]
    assert {c: [n for n, _ in evs] for c, evs in sequences(pg_engine).items()} == {
        c: [1, 2] for c in codes}


def test_events_on_one_case_in_two_transactions_in_flight_apply_in_order(
    pg_engine: Engine
) -> None:
    deps = seeded_deps(pg_engine)
    write = Writes(pg_engine, deps, on_loop=True)
    codes = [answer[0]["case_code"] for answer in write([receive() for _ in range(9)])]
    shared = codes[0]
    # Each request fills a transaction; both touch one case, so the second waits for the
    # first's lock and then reads what it committed (only a case waiting for a supplement can
    # receive one). The second does not start before the first holds its locks, however slow
    # the first is to take them.
    first = [record(shared, type="supplement_requested", reason="Thiếu giấy tờ"),
             *(transfer(c) for c in codes[1:5])]
    second = [record(shared, type="supplement_received"), *(transfer(c) for c in codes[5:9])]

    answers, written, most = backlog(pg_engine, deps, [first, second], max_items=5,
                                     hold_first=0.3)

    assert most == 2
    assert written == [5, 5]
    assert answers[0][0][0]["status"] == 5
    assert answers[1][0][0]["status"] == 4
    assert [n for n, _ in sequences(pg_engine)[shared]] == [1, 2, 3]
    with pg_engine.connect() as conn:
        types = conn.execute(select(CaseEventRecord.type).where(CaseEventRecord.case_code == shared)
                             .order_by(CaseEventRecord.seq)).scalars()
        assert list(types) == ["received", "supplement_requested", "supplement_received"]


class HeldBeforeCommit(LoopWriter):
    """A loop writer whose first transaction (counted in `calls`, shared) stops before its
    commit, its rows written and its case numbers drawn, until `gate` opens; with `fail`, it
    then fails instead of committing, as on a lost connection."""

    def __init__(self, engine: Engine, deps: IntakeDeps, calls: list[int], gate: asyncio.Event,
                 fail: bool = False) -> None:
        super().__init__(engine, deps)
        self.calls, self.gate, self.fail = calls, gate, fail

    async def _transaction(self, conn: Any, items: list[Item], locked: Any) -> Any:
        outcomes = await super()._transaction(conn, items, locked)
        self.calls[0] += 1
        if self.calls[0] == 1:
            await self.gate.wait()
            if self.fail:
                raise psycopg.OperationalError("connection lost (test)")
        return outcomes


def test_requests_arriving_during_a_transaction_are_written_beside_it(pg_engine: Engine) -> None:
    """Receipts at one agency while its first transaction is still open: they are written and
    answered by a second transaction beside it, numbered after it, without waiting for its
    commit (the numbers are drawn apart from both transactions)."""
    deps = seeded_deps(pg_engine)
    calls = [0]
    written: list[int] = []

    async def main() -> tuple[list[Any], list[Any]]:
        gate = asyncio.Event()
        writer = GroupWriter(pg_engine, deps,
                             on_loop=[HeldBeforeCommit(pg_engine, deps, calls, gate)
                                      for _ in range(2)],
                             on_written=lambda items, _outcomes: written.append(len(items)))
        stop = asyncio.Event()
        running = asyncio.create_task(writer.run(stop))
        first = asyncio.create_task(writer.submit([receive()]))
        while calls[0] == 0:  # the first transaction is open, before its commit
            await asyncio.sleep(0.01)
        later = [asyncio.create_task(writer.submit([receive()])) for _ in range(20)]
        try:
            answers = await asyncio.wait_for(asyncio.gather(*later), 10)
            assert not first.done()
        finally:
            gate.set()
        answer = await first
        stop.set()
        await running
        return [answer], answers

    first, later = asyncio.run(main())
    assert written == [20, 1]
    assert first[0][0][0]["case_code"] == "000.00.20.H56-260303-0001"
    assert [a[0][0]["case_code"][-4:] for a in later] == [f"{n:04d}" for n in range(2, 22)]
    assert count(pg_engine, Case.__table__) == 21  # type: ignore[attr-defined]


def test_a_number_drawn_by_a_transaction_that_failed_is_never_handed_out_again(
    pg_engine: Engine
) -> None:
    """The loop writer's transaction draws 0001 and then fails before its commit: the case is
    written by the threaded writer as 0002, and the next case is 0003. A day's sequence may
    skip a number; it never gives one twice."""
    deps = seeded_deps(pg_engine)
    gate = asyncio.Event()
    gate.set()

    async def main() -> list[Any]:
        writer = GroupWriter(pg_engine, deps,
                             on_loop=[HeldBeforeCommit(pg_engine, deps, [0], gate, fail=True)])
        stop = asyncio.Event()
        running = asyncio.create_task(writer.run(stop))
        answers = [await writer.submit([receive()]) for _ in range(2)]
        stop.set()
        await running
        return answers

    answers = asyncio.run(main())
    assert [a[0][0]["case_code"][-4:] for a in answers] == ["0002", "0003"]
    with pg_engine.connect() as conn:
        codes = conn.execute(select(Case.case_code).order_by(Case.case_code)).scalars()
        assert [c[-4:] for c in codes] == ["0002", "0003"]


def test_a_transaction_that_drew_case_numbers_holds_no_lock_on_the_sequence(
    pg_engine: Engine
) -> None:
    """The threaded writer's transaction, its numbers drawn and still open: another session
    draws the next numbers at once. Were the sequence row held to the commit, a draw waiting
    on it while this transaction waits on that session's case locks would be a deadlock the
    server cannot see (the two sessions of one loop writer)."""
    deps = seeded_deps(pg_engine)
    day = NOW.date()
    with transaction(pg_engine) as session:
        batch = Batch(session.connection(), deps.store)
        assert batch.new_codes(Counter({(CENTRE, day): 2})) == {
            (CENTRE, day): [f"{CENTRE}-260303-0001", f"{CENTRE}-260303-0002"]}
        with pg_engine.connect() as other:
            other.execute(text("SET lock_timeout = '500ms'"))
            (last,) = other.execute(text(
                "UPDATE intake_case_sequences SET last = last + 1 "
                "WHERE agency_code = :a AND day = :d RETURNING last"),
                {"a": CENTRE, "d": day}).one()
            other.commit()
    assert last == 3


class HandsOverFirst:
    """A loop writer that hands the first batch it is given to the threaded writer, as one
    does on a clash or a changed catalogue, and logs when each of its writes starts."""

    def __init__(self, inner: LoopWriter, log: list[str], state: list[int]) -> None:
        self.inner, self.log, self.state = inner, log, state

    async def write(self, items: list[Item], locked: Any) -> list[Any] | None:
        self.state[0] += 1
        self.log.append(f"start {self.state[0]}")
        if self.state[0] == 1:
            await asyncio.sleep(0.05)  # the second would start meanwhile if it were let
            return None
        return await self.inner.write(items, locked)

    def close(self) -> None:
        self.inner.close()


def test_a_batch_handed_to_the_thread_holds_the_next_transaction_back_until_written(
    pg_engine: Engine
) -> None:
    deps = seeded_deps(pg_engine)
    write = Writes(pg_engine, deps, on_loop=True)
    [(slip, _)] = write([receive()])
    shared = slip["case_code"]
    log: list[str] = []
    state = [0]

    async def main() -> list[Any]:
        writer = GroupWriter(
            pg_engine, deps, max_items=1,
            on_loop=[HandsOverFirst(LoopWriter(pg_engine, deps), log, state) for _ in range(2)],
            on_written=lambda items, outcomes: log.append(f"written {outcomes[0][0]['status']}"))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(writer.submit([item])) for item in (
            record(shared, type="supplement_requested", reason="Thiếu giấy tờ"),
            record(shared, type="supplement_received"))]
        await asyncio.sleep(0)
        running = asyncio.create_task(writer.run(stop))
        answers = await asyncio.gather(*tasks)
        stop.set()
        await running
        return answers

    first, second = asyncio.run(main())
    assert log == ["start 1", "written 5", "start 2", "written 4"]
    assert first[0][0]["status"] == 5 and second[0][0]["status"] == 4

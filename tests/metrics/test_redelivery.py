"""A redelivered event is counted once by the KPI projection, on SQLite and PostgreSQL: by its
case's subject sequence when it carries one (no processed id stored), by its id when it does
not, and by its id for a case projected before sequences existed, until that case adopts one."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import col

from contracts import CaseReceived, Envelope, Paid, Resolved, Transferred, new_envelope
from contracts.types import Channel, OnlineLevel, PaymentMethod, TransferMethod
from metrics.app import MIGRATIONS
from metrics.models import TRACKING, ProjectedCase
from metrics.projection import apply_batch
from services.consumer import RetryBatch
from services.db import transaction
from tests.conftest import migrated_engine

CODE = "000.00.20.H56-260303-0001"
AT = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội: day 2026-03-03


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path, service="metrics", migrations=MIGRATIONS)


def received(seq: int | None, code: str = CODE) -> Envelope:
    return new_envelope(CaseReceived(
        case_code=code, agency_code="000.00.20.H56", province_code="H56",
        field_code="dat-dai", procedure_code="2.000488", channel=Channel.ONLINE,
        online_level=OnlineLevel.FULL, return_by_post=False, processing_days=10, fee_vnd=0,
        occurred_at=AT, status=2, due_date=AT.date() + timedelta(days=14),
    ), source="/motcua/intake", sequence=seq)


def transferred(seq: int | None, code: str = CODE) -> Envelope:
    return new_envelope(Transferred(
        case_code=code, occurred_at=AT + timedelta(minutes=seq or 9), from_office="000.00.20.H56",
        to_office="000.00.03.H56", method=TransferMethod.ELECTRONIC,
        status=4), source="/motcua/intake", sequence=seq)


def paid(seq: int | None, code: str = CODE) -> Envelope:
    return new_envelope(Paid(case_code=code, occurred_at=AT + timedelta(hours=1), amount=1000,
                             method=PaymentMethod.ONLINE), source="/motcua/intake", sequence=seq)


def resolved(seq: int | None, code: str = CODE) -> Envelope:
    return new_envelope(Resolved(case_code=code, occurred_at=AT + timedelta(hours=2),
                                 on_time=True, resolution_days=3),
                        source="/motcua/intake", sequence=seq)


def apply(engine: Engine, events: list[Envelope]) -> int:
    with transaction(engine) as session:
        return apply_batch(session, events)


def counters(engine: Engine) -> dict[str, int]:
    """Every counter of the whole-country scope for the year (the sum of its months)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, SUM(value) FROM metrics_counters WHERE scope = "
                                 "'all' AND period LIKE '2026-__' GROUP BY name"))
        return {name: int(value) for name, value in rows}


def stored(engine: Engine) -> tuple[int | None, int]:
    """(the case's last applied sequence, how many processed ids are stored)."""
    with engine.connect() as conn:
        seq = conn.execute(select(col(ProjectedCase.sequence))
                           .where(col(ProjectedCase.case_code) == CODE)).scalar_one()
        ids = conn.execute(select(func.count()).select_from(TRACKING.processed)).scalar_one()
    return seq, int(ids)


# Each fact once (resolution_days is the sum of days: 3 for the one resolution).
EXPECTED = {
    "received": 1, "received_online": 1, "received_full": 1, "transfers": 1,
    "transfers_electronic": 1, "payments": 1, "payments_online": 1, "resolved": 1,
    "resolved_on_time": 1, "resolved_online": 1, "resolved_with_transfer": 1,
    "resolved_all_electronic": 1, "resolution_days": 3,
}


def test_sequenced_events_redelivered_are_recognised_without_storing_ids(engine: Engine) -> None:
    first = [received(1), transferred(2), paid(3)]
    # The same envelope twice in one batch (a producer retry): applied once.
    assert apply(engine, [first[0], first[1], first[1], first[2]]) == 3
    # An outbox relay that crashed before deleting: 2 and 3 come again before 4.
    assert apply(engine, [first[1], first[2], resolved(4), first[0]]) == 1
    assert counters(engine) == EXPECTED
    assert stored(engine) == (4, 0)
    # Redelivered alone, in a batch of its own, with nothing new: nothing changes.
    assert apply(engine, first) == 0
    assert counters(engine) == EXPECTED


def test_events_without_a_sequence_are_recognised_by_id(engine: Engine) -> None:
    events = [received(None), transferred(None), paid(None), resolved(None)]
    assert apply(engine, events[:3]) == 3
    assert apply(engine, [events[2], events[1], events[3], events[3]]) == 1
    assert counters(engine) == EXPECTED
    assert stored(engine) == (None, 4)


def test_a_case_projected_before_sequences_adopts_one_and_stays_exact(engine: Engine) -> None:
    # Projected by an older build: the receipt without a sequence, checked by id.
    receipt = received(None)
    assert apply(engine, [receipt]) == 1
    assert stored(engine) == (None, 1)
    # After the upgrade, the case's next events carry its sequence (2, 3, …); the receipt may
    # still come again, without one.
    transfer, payment = transferred(2), paid(3)
    assert apply(engine, [receipt, transfer, transfer]) == 1
    assert stored(engine) == (2, 2)  # checked by id once more, then the case has a sequence
    assert apply(engine, [transfer, payment, receipt, resolved(4)]) == 2
    assert stored(engine) == (4, 2)  # by sequence from then on: no id stored
    assert counters(engine) == EXPECTED


def test_a_sequenced_event_of_a_case_never_received_here_is_ignored(engine: Engine) -> None:
    """A case received before this projection's history began: its later events count
    nowhere, whether they come once or again."""
    other = "000.00.20.H56-260303-0002"
    assert apply(engine, [transferred(2, other), transferred(2, other), received(1)]) == 3
    assert counters(engine) == {"received": 1, "received_online": 1, "received_full": 1}


@pytest.mark.parametrize("receipt", [True, False], ids=["with-a-receipt", "updates-only"])
def test_two_consumers_applying_one_batch_at_once_count_it_once(
    engine: Engine, receipt: bool
) -> None:
    """During a rebalance the partition's old owner may still be applying a batch when the new
    owner reads it from the stored positions: the second to commit must find the first's work
    (a case it would receive already there, a case whose sequence moved) and apply nothing."""
    other = "000.00.20.H56-260303-0002"
    assert apply(engine, [received(1)]) == 1
    batch = [received(1, other)] * receipt + [transferred(2), paid(3), resolved(4)]
    holding, release = threading.Event(), threading.Event()
    retries: list[str] = []

    def first() -> None:
        with transaction(engine) as session:
            assert apply_batch(session, batch) == len(batch)
            holding.set()
            release.wait(30)

    def second() -> int:
        while True:
            try:
                return apply(engine, batch)
            except RetryBatch as exc:  # what the consumer runner retries
                retries.append(str(exc))

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(first)
        assert holding.wait(30)
        b = pool.submit(second)
        wait_until_blocked(engine)
        release.set()
        a.result(30)
        assert b.result(30) == 0
    received_twice = {"received": 2, "received_online": 2, "received_full": 2}
    assert counters(engine) == {**EXPECTED, **(received_twice if receipt else {})}
    assert stored(engine) == (4, 0)
    # PostgreSQL lets the second read and fold before it waits on the first's rows: it rolls
    # back and applies again. SQLite serialises writers: the second only begins after.
    assert bool(retries) == (engine.dialect.name == "postgresql")


def wait_until_blocked(engine: Engine) -> None:
    """Until another session waits on a lock (PostgreSQL), or a moment (SQLite, whose second
    writer waits to begin)."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.5)
        return
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited on the first")

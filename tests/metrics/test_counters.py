"""The projection's counter upsert (metrics.projection_sql.add_to_counters) on SQLite and
PostgreSQL: increments add up across batches, negative ones too, and a key is stored exactly
as given, diacritics and all, whichever way PostgreSQL receives the batch's columns (joined
strings, or a list where a value holds the separator the strings are joined with)."""

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from metrics import projection_sql
from metrics.app import MIGRATIONS
from services.db import make_engine, transaction
from services.migrations import upgrade
from tests.conftest import migrated_engine

# A province-field scope with Vietnamese text (NFC), and one holding the unit separator
# (services.db._SEP) that PostgreSQL splits the joined columns on.
FIELD = "province-field:H56/đất-đai"
ODD = "agency:000.00.20.H56\x1fx"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path, service="metrics", migrations=MIGRATIONS)


def add(engine: Engine, rows: list[tuple[str, str, str, int]]) -> None:
    with transaction(engine) as session:
        projection_sql.add_to_counters(session, rows)


def stored(engine: Engine) -> dict[tuple[str, str, str], int]:
    with engine.connect() as conn:
        result = conn.execute(text("SELECT name, scope, period, value FROM metrics_counters"))
        return {(n, s, p): v for n, s, p, v in result}


def test_increments_add_up_across_batches(engine: Engine) -> None:
    add(engine, [("received", "all", "2026-03", 3), ("received", FIELD, "2026-03-02", 2),
                 ("overdue_open", "all", "live", 4)])
    add(engine, [("received", "all", "2026-03", 5), ("received", FIELD, "2026-03-03", 1),
                 ("overdue_open", "all", "live", -3)])
    assert stored(engine) == {
        ("received", "all", "2026-03"): 8,
        ("received", FIELD, "2026-03-02"): 2,
        ("received", FIELD, "2026-03-03"): 1,
        ("overdue_open", "all", "live"): 1,
    }


def test_a_value_holding_the_separator_is_stored_as_given(engine: Engine) -> None:
    add(engine, [("received", ODD, "2026-03", 1), ("received", "all", "2026-03", 1)])
    add(engine, [("received", ODD, "2026-03", 2)])
    assert stored(engine) == {("received", ODD, "2026-03"): 3,
                              ("received", "all", "2026-03"): 1}


def test_a_flush_bigger_than_a_statement_adds_every_row_once(engine: Engine) -> None:
    rows = [("received", f"agency:000.00.{i:02d}.H56", "2026-03", i + 1) for i in range(7)]
    add(engine, rows[:2])
    with transaction(engine) as session:
        projection_sql.add_to_counters(session, rows[::-1], per_statement=3)
    assert stored(engine) == {(n, s, p): v + (v if v <= 2 else 0) for n, s, p, v in rows}


@pytest.mark.postgres
def test_two_flushes_in_slices_over_the_same_rows_never_deadlock(
        make_pg_database: Callable[[], str]) -> None:
    """A rebuild beside the live projection: two transactions upsert the same counter rows in
    slices, handed them in opposite orders. Each slice's rows stay locked until its commit, so
    slices taken in different orders would wait on each other in a circle."""
    engine = make_engine(make_pg_database())
    upgrade(engine, service="metrics", script_location=MIGRATIONS)
    rows = [("received", f"agency:{i:04d}", "2026-03", 1) for i in range(400)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def flush(given: list[tuple[str, str, str, int]]) -> None:
        try:
            with transaction(engine) as session:
                session.execute(text("SELECT 1"))
                start.wait()
                projection_sql.add_to_counters(session, given, per_statement=50)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=flush, args=(order,)) for order in (rows, rows[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert stored(engine) == {(n, s, p): 2 for n, s, p, _ in rows}
    finally:
        engine.dispose()

"""The projection reads a batch's cases by key on PostgreSQL even where the table's statistics
lag behind it (a new or restored database before autovacuum analyses it; a rebuild, which
refills the tables in one transaction): the planner, guessing, scanned the whole table for
every batch, each batch slower than the last (docs/benchmarks.md)."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from metrics import projection_sql
from metrics.app import MIGRATIONS
from metrics.projection import CaseFacts
from services.db import transaction
from tests.conftest import migrated_engine

pytestmark = pytest.mark.postgres

STORED = 20_000
AT = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    for engine in migrated_engine(request, tmp_path, service="metrics", migrations=MIGRATIONS):
        with engine.begin() as conn:
            # Never analysed during the test, as in the first minutes of a new database.
            conn.execute(text("ALTER TABLE metrics_cases SET (autovacuum_enabled = false)"))
        yield engine


def code(n: int) -> str:
    return f"000.00.20.H56-260303-{n:06d}"


def scans(engine: Engine) -> tuple[int, int]:
    """(sequential, index) scans of metrics_cases so far."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(text("SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                                "WHERE relname = 'metrics_cases'")).one()
    return int(row[0]), int(row[1])


def read(engine: Engine, codes: list[str], *, tuned: bool) -> dict[str, CaseFacts]:
    with transaction(engine) as session:
        if tuned:
            projection_sql.tune_transaction(session)
        found = projection_sql.load_cases(session, codes)
        # Counted in the statistics at this commit, not up to a second later.
        session.execute(text("SELECT pg_stat_force_next_flush()"))
    return found


def test_a_batch_reads_its_cases_by_key_before_the_table_has_statistics(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        projection_sql.insert_cases(session, [
            CaseFacts(code(n), "000.00.20.H56", "H56", None, "dat-dai", "2.000488", "counter",
                      None, AT, sequence=1) for n in range(STORED)])
        session.execute(text("SELECT pg_stat_force_next_flush()"))
    wanted = [code(n) for n in range(0, 2 * STORED, 10)]  # half of them stored

    seq_before, idx_before = scans(engine)
    found = read(engine, wanted, tuned=True)
    seq_after, idx_after = scans(engine)
    assert sorted(found) == [code(n) for n in range(0, STORED, 10)]
    assert found[code(10)].procedure_code == "2.000488"
    assert (seq_after - seq_before, idx_after - idx_before > 0) == (0, True)

    # What the setting prevents: left to the planner, the same read scans the whole table.
    read(engine, wanted, tuned=False)
    assert scans(engine)[0] > seq_after

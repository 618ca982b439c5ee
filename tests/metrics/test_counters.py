"""The projection's counter upsert (metrics.projection_sql.add_to_counters) on SQLite and
PostgreSQL: increments add up across batches, negative ones too, and a key is stored exactly
as given, diacritics and all, whichever way PostgreSQL receives the batch's columns (joined
strings, or a list where a value holds the separator the strings are joined with)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from metrics import projection_sql
from metrics.app import MIGRATIONS
from services.db import transaction
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

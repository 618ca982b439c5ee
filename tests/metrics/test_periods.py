"""Counters are stored per day and per month; a quarter or a year is the sum of its months.

On SQLite and PostgreSQL: the query's sums, and migration metrics_0004 both ways (an existing
database's quarter and year rows go; a downgrade puts them back as sums of the months).
"""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from metrics import service
from metrics.app import MIGRATIONS
from metrics.dashboard.queries import breakdown
from metrics.kpis import KPIS
from metrics.periods import periods_of, stored_periods
from services.db import make_engine
from services.migrations import downgrade, upgrade
from tests.conftest import create_pg_database, drop_pg_database

# (period, received, resolved, resolved_on_time) in scope "all", as a projection left them
# before metrics_0004: days, months, and the quarter and year rows it kept then.
MONTHS = {"2026-01": (10, 4, 3), "2026-02": (20, 8, 8), "2026-03": (30, 10, 5),
          "2026-04": (1, 1, 1), "2025-12": (7, 7, 7)}
DAYS = {"2026-03-02": (3, 1, 1)}
OLD_ROWS = {"2026-Q1": (60, 22, 16), "2026-Q2": (1, 1, 1), "2026": (61, 23, 17),
            "2025-Q4": (7, 7, 7), "2025": (7, 7, 7)}
NAMES = ("received", "resolved", "resolved_on_time")


def test_stored_periods_name_a_quarters_and_a_years_months() -> None:
    assert stored_periods("2026") == [f"2026-{m:02d}" for m in range(1, 13)]
    assert stored_periods("2026-Q1") == ["2026-01", "2026-02", "2026-03"]
    assert stored_periods("2026-Q4") == ["2026-10", "2026-11", "2026-12"]
    assert stored_periods("2026-03") == ["2026-03"]
    assert stored_periods("2026-03-02") == ["2026-03-02"]
    assert periods_of(date(2026, 3, 2)) == ("2026-03-02", "2026-03")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metrics.db'}"
        return
    made = create_pg_database(request.getfixturevalue("pg_admin_url"))
    yield made
    drop_pg_database(made)


def _insert(engine: Engine, rows: dict[str, tuple[int, int, int]], scope: str = "all") -> None:
    with engine.begin() as conn:
        for period, values in rows.items():
            for name, value in zip(NAMES, values, strict=True):
                conn.execute(text("INSERT INTO metrics_counters (name, scope, period, value) "
                                  "VALUES (:n, :s, :p, :v)"),
                             {"n": name, "s": scope, "p": period, "v": value})


def _stored(engine: Engine) -> dict[tuple[str, str, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, scope, period, value FROM metrics_counters"))
        return {(n, s, p): int(v) for n, s, p, v in rows}


def _figures(engine: Engine, period: str) -> dict[str, tuple[int, int | None]]:
    with Session(engine) as session:
        items = service.query_kpis(session=session, scope="all", period=period,
                                   kpis=[KPIS["on_time_rate"], KPIS["received"]])
    return {i["kpi"]: (i["numerator"], i["denominator"]) for i in items}


def test_quarters_and_years_add_up_months_and_the_migration_goes_both_ways(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, service="metrics", script_location=MIGRATIONS, revision="metrics_0003")
        _insert(engine, {**MONTHS, **DAYS, **OLD_ROWS})
        upgrade(engine, service="metrics", script_location=MIGRATIONS)
        after = _stored(engine)
        assert {p for _, _, p in after} == {*MONTHS, *DAYS}  # quarters and years gone
        # A year, a quarter, a month and a day, read from what is stored.
        assert _figures(engine, "2026") == {"on_time_rate": (17, 23), "received": (61, None)}
        assert _figures(engine, "2026-Q1") == {"on_time_rate": (16, 22), "received": (60, None)}
        assert _figures(engine, "2025-Q4") == {"on_time_rate": (7, 7), "received": (7, None)}
        assert _figures(engine, "2026-Q3") == {"on_time_rate": (0, 0), "received": (0, None)}
        assert _figures(engine, "2026-02") == {"on_time_rate": (8, 8), "received": (20, None)}
        assert _figures(engine, "2026-03-02") == {"on_time_rate": (1, 1), "received": (3, None)}
        # The dashboard's drill-down finds a province by its months' rows, for their year.
        _insert(engine, {"2026-02": (5, 2, 1)}, scope="province:H56")
        with Session(engine) as session:
            rows = breakdown(session=session, kpis=[KPIS["received"]], scope="all",
                             period="2026")
            assert [(r["scope"], r["items"][0]["numerator"]) for r in rows] == [
                ("province:H56", 5)]
            assert breakdown(session=session, kpis=[KPIS["received"]], scope="all",
                             period="2026-Q2") == []

        downgrade(engine, service="metrics", script_location=MIGRATIONS,
                  revision="metrics_0003")
        back = _stored(engine)
        for period, values in OLD_ROWS.items():
            for name, value in zip(NAMES, values, strict=True):
                assert back[(name, "all", period)] == value, (name, period)
        assert back[("received", "province:H56", "2026-Q1")] == 5
        assert back[("received", "province:H56", "2026")] == 5
        # Ours, and the province's month with the year and quarter it makes.
        assert len(back) == len(NAMES) * (len(MONTHS) + len(DAYS) + len(OLD_ROWS) + 3)
    finally:
        engine.dispose()

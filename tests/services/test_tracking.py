"""Processed-event claims on PostgreSQL: the batch's ids travel as one joined string, and an id
holding the separator still works (it falls back to an array parameter). Arrays of numbers,
booleans and dates travel as one string too (services.db.pg_array). Rows read as dicts have
interned keys (services.db.interned_dict_row)."""

import sys
from collections.abc import Callable
from contextlib import closing
from datetime import date

from psycopg.rows import dict_row
from sqlalchemy import Engine

from services.db import (
    driver,
    interned_dict_row,
    make_engine,
    pg_array,
    pg_text_array,
    transaction,
)
from services.tracking import Tracking

TRACKING = Tracking("trackingtest")


def test_the_joined_form_is_used_unless_a_value_holds_the_separator() -> None:
    assert pg_text_array(["a", "b-1"]) == ("string_to_array(%s, E'\\x1f')", "a\x1fb-1")
    assert pg_text_array(["a", "b\x1fc"]) == ("%s::text[]", ["a", "b\x1fc"])


def _engine(url: str) -> Engine:
    engine = make_engine(url)
    TRACKING.processed.create(engine)
    return engine


def test_claims_on_postgres_count_each_id_once(make_pg_database: Callable[[], str]) -> None:
    engine = _engine(make_pg_database())
    ids = [f"id-{n}" for n in range(2000)] + ["odd\x1fone", "id-7"]
    with transaction(engine) as session:
        first = TRACKING.claim_new(session, ids)
    assert first == set(ids)
    with transaction(engine) as session:
        again = TRACKING.claim_new(session, ["id-1", "odd\x1fone", "new-1", "new-1"])
    assert again == {"new-1"}
    engine.dispose()


def test_arrays_as_one_string_read_back_as_the_values(
        make_pg_database: Callable[[], str]) -> None:
    # The projection's update passes its columns so (metrics.projection_sql.update_cases).
    ints, flags, days = [3, None, -1, 0], [True, False, None, True], [date(2026, 2, 28), None]
    engine = make_engine(make_pg_database())
    with engine.connect() as conn:
        raw, _ = driver(conn)
        with closing(raw.cursor()) as cur:
            cur.execute("SELECT %s::int[], %s::bool[], %s::date[]",
                        [pg_array(ints), pg_array(flags), pg_array(days)])
            assert cur.fetchone() == (ints, flags, days)
    assert pg_array([]) == "{}"
    engine.dispose()


def test_rows_as_dicts_are_psycopgs_with_the_names_a_class_takes(
        make_pg_database: Callable[[], str]) -> None:
    # intake builds a CaseState(**row) of each case it reads: keywords whose names are the
    # interned identifiers bind by identity, not by comparing strings.
    engine = make_engine(make_pg_database())
    query = ("SELECT 'H56-1' AS case_code, 2 AS status, NULL::date AS due_date "
             "UNION ALL SELECT 'H56-2', 9, DATE '2026-03-02' ORDER BY 1")
    with engine.connect() as conn:
        raw, _ = driver(conn)
        with closing(raw.cursor(row_factory=dict_row)) as cur:
            expected = cur.execute(query).fetchall()
        with closing(raw.cursor(row_factory=interned_dict_row)) as cur:
            rows = cur.execute(query).fetchall()
            assert cur.execute("SELECT 1 WHERE false").fetchall() == []
            # A COPY's result has columns but no names: intake's writer copies on this cursor.
            cur.execute("CREATE TEMP TABLE copied (code text)")
            with cur.copy("COPY copied (code) FROM STDIN") as copy:
                copy.write_row(["H56-3"])
            assert cur.execute("SELECT code FROM copied").fetchall() == [{"code": "H56-3"}]
    assert rows == expected == [{"case_code": "H56-1", "status": 2, "due_date": None},
                                {"case_code": "H56-2", "status": 9,
                                 "due_date": date(2026, 3, 2)}]
    assert all(sys.intern(key) is key for row in rows for key in row)
    engine.dispose()

"""motcua's PostgreSQL sessions run in UTC whatever the server's TimeZone: timestamps read back
are the instants written, in datetime.UTC, on pooled and on the event loop's own connections,
and options given in the database URL are kept."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import text

from services.db import DriverConnection, make_engine

pytestmark = pytest.mark.postgres
WRITTEN = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Hà Nội


def _local_server(make_pg_database: Callable[[], str]) -> str:
    """A database whose own default zone is Vietnam's, as a provincial server may be set."""
    url = make_pg_database()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET TimeZone = 'Asia/Ho_Chi_Minh'")
    return url


def test_pooled_sessions_read_utc_instants(make_pg_database: Callable[[], str]) -> None:
    url = _local_server(make_pg_database)
    with psycopg.connect(url.replace("+psycopg", "")) as plain:  # without motcua's options
        assert plain.execute("SHOW TimeZone").fetchone() == ("Asia/Ho_Chi_Minh",)
    engine = make_engine(url + "?options=-c%20statement_timeout%3D5000")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar() == "UTC"
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "5s"
            read = conn.execute(text("SELECT CAST(:t AS timestamptz)"), {"t": WRITTEN}).scalar()
        assert read == WRITTEN and read.tzinfo is UTC
    finally:
        engine.dispose()


def test_the_loops_own_connection_reads_utc_instants(
        make_pg_database: Callable[[], str]) -> None:
    engine = make_engine(_local_server(make_pg_database))
    db = DriverConnection(engine)

    async def read() -> tuple[str, datetime]:
        conn = await db.get()
        zone = await (await conn.execute("SHOW TimeZone")).fetchone()
        at = await (await conn.execute("SELECT %s::timestamptz", (WRITTEN,))).fetchone()
        assert zone is not None and at is not None
        return zone[0], at[0]

    try:
        zone, at = asyncio.run(read())
    finally:
        db.drop()
        engine.dispose()
    assert zone == "UTC"
    assert at == WRITTEN and at.tzinfo is UTC

"""Database engine and sessions (SQLite for the embedded default, PostgreSQL to scale)."""

import asyncio
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import pq
from psycopg.types.json import set_json_dumps
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session
from sqlmodel.sql.sqltypes import AutoString


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                         connect_args={"options": session_options(parsed.query)})


# Every PostgreSQL session in UTC, whatever the server's TimeZone: psycopg then reads a
# timestamptz as a datetime in datetime.UTC, where under a named zone ('Etc/UTC' on Debian's
# default) each value was built in that zone and converted again by the reader (intake read
# its cases 1.25 µs a row slower; docs/benchmarks.md, fourteenth pass). Local dates are
# always worked out in Python (Asia/Ho_Chi_Minh), never by the session's zone.
_UTC_SESSION = "-c TimeZone=UTC"


def session_options(query: Mapping[str, Any]) -> str:
    """libpq `options` for a motcua session: the URL's own, then the UTC time zone."""
    given = query.get("options")
    given = given[-1] if isinstance(given, tuple) else given
    return f"{given} {_UTC_SESSION}" if given else _UTC_SESSION


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers proceed during a write; FULL sync keeps every acknowledged commit.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class DriverConnection:
    """A component's own asynchronous psycopg connection to `engine`'s PostgreSQL, for work
    awaited on the event loop (intake's writer, the outbox relay): opened on first use, and
    again after it was dropped or lost."""

    # An unreachable server must not hold the caller for TCP's minutes.
    CONNECT_TIMEOUT_SECONDS = 5

    def __init__(self, engine: Engine, *, autocommit: bool = False,
                 settings: Mapping[str, str] | None = None) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        # `settings`: the session's own server settings (`-c name=value`).
        self._options = " ".join([session_options(engine.url.query),
                                  *(f"-c {k}={v}" for k, v in (settings or {}).items())])
        self._autocommit = autocommit
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def get(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=self._autocommit, options=self._options,
                connect_timeout=self.CONNECT_TIMEOUT_SECONDS)
            # JSON parameters and COPY values dumped by orjson, as copy_binary's: set once on
            # the connection, which its cursors inherit, not again for every COPY.
            set_json_dumps(orjson.dumps, context=self._conn)
        return self._conn

    def drop(self) -> None:
        """Close at once, without a round trip: an open transaction is rolled back by the
        server; the next `get` connects again."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.pgconn.finish()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime on both databases: SQLite would otherwise drop the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: motcua stores only aware timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


T = TypeVar("T")


async def read_in_thread(engine: Engine, fn: Callable[..., T], **kwargs: Any) -> T:
    """Run a read-only domain function on its own session, off the event loop."""

    def run() -> T:
        with Session(engine) as session:
            return fn(session=session, **kwargs)

    return await asyncio.to_thread(run)


def driver(conn: Connection) -> tuple[Any, bool]:
    """The DBAPI connection under `conn` (inside its transaction), and whether it is
    PostgreSQL: for COPY and array parameters, where SQLAlchemy's per-row work is the cost."""
    return conn.connection.driver_connection, conn.dialect.name == "postgresql"


# The unit separator: cannot be typed into a counter's form, and is checked for anyway.
_SEP = "\x1f"


def copy_binary(raw: Any, target: str, columns: Sequence[str], types: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> None:
    """COPY `rows` into `target` (PostgreSQL) in the binary format: a bytea is copied, not
    escaped to hex (intake's outbox rows went in 4 times cheaper), and nothing is formatted as
    text for the server to parse again (docs/benchmarks.md). psycopg dumps each value by the
    PostgreSQL type named for its column in `types`, JSON with orjson."""
    with closing(raw.cursor()) as cur:
        set_json_dumps(orjson.dumps, context=cur)
        with cur.copy(copy_statement(target, columns)) as copy:
            copy.set_types(list(types))
            write = copy.write_row
            for row in rows:
                write(row)


def copy_statement(target: str, columns: Sequence[str]) -> str:
    return f"COPY {target} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


# The PostgreSQL type of each kind of column copied in. Subclasses before their bases.
_BINARY = ((UTCDateTime, "timestamptz"), (LargeBinary, "bytea"), (Boolean, "bool"),
           (BigInteger, "int8"), (Integer, "int4"), (Date, "date"), (String, "varchar"),
           (AutoString, "varchar"), (JSON, "json"))


@cache
def binary_types(table: Table, columns: tuple[str, ...]) -> list[str]:
    """The binary COPY type of each of `table`'s `columns`; a TypeError for a column type
    without one (a slower text path would hide it)."""
    types = []
    for name in columns:
        kind = table.c[name].type
        found = next((pg for cls, pg in _BINARY if isinstance(kind, cls)), None)
        if found is None:
            raise TypeError(f"{table.name}.{name}: no binary COPY type for {kind!r}")
        types.append(found)
    return types


_ROWS = frozenset({pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE,
                   pq.ExecStatus.TUPLES_CHUNK})


def interned_dict_row(cursor: Any) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """psycopg's `dict_row`, its keys interned: the names a class's keyword parameters are
    interned, and Python matches `Class(**row)`'s keywords to them by identity first, then by
    comparing strings one parameter after another. psycopg's column names are fresh strings
    for every query: a 30-column CaseState was built in 10 µs instead of 4 (docs/benchmarks.md,
    tenth pass)."""
    # From the result itself, as dict_row does: `description` builds an object per column. A
    # result of no rows (a COPY, a command) has no names.
    result = cursor.pgresult
    names: list[str] = []
    if result is not None and result.status in _ROWS:
        encoding = cursor.connection.info.encoding
        names = [sys.intern((result.fname(i) or b"").decode(encoding))
                 for i in range(result.nfields)]

    def row(values: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(names, values, strict=True))

    return row


def pg_array(values: Iterable[int | bool | date | None]) -> str:
    """The text form of an array of numbers, booleans or dates (never strings: those would need
    quoting; see pg_text_array), the parameter of a `%s::int[]`: psycopg dumps a list element
    by element in Python, about 2.5 times the cost of this string (docs/benchmarks.md, ninth
    pass)."""
    return "{" + ",".join("NULL" if v is None else str(v) for v in values) + "}"


def pg_text_array(values: list[str]) -> tuple[str, Any]:
    """SQL for a text[] of `values` and its parameter. psycopg dumps a list parameter element
    by element in Python; one joined string split by PostgreSQL costs a fraction of that
    (docs/benchmarks.md). Falls back to the list if a value holds the separator.

    Execute a lookup with it `prepare=False`: a prepared statement's generic plan cannot tell
    how many values the string holds and scans the whole table (measured: a lookup of 64 codes
    in 5,000 cases went from 0.1 to 4 ms once psycopg had prepared it)."""
    joined = _SEP.join(values)
    if joined.count(_SEP) == len(values) - 1:
        return "string_to_array(%s, E'\\x1f')", joined
    return "%s::text[]", values

"""Shared fixtures: the real Kafka broker and PostgreSQL started by scripts/, and a running
motcua stack on any combination of bus (embedded, kafka) and database (sqlite, postgres)."""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from services.db import make_engine
from services.migrations import upgrade
from tests.harness import Stack, StackFactory, start_stack


def _required(var: str, script: str) -> str:
    value = os.environ.get(var)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{var} is not set: .ci/run must start {script}")
    pytest.skip(f"{var} not set; run the suite with scripts/test.sh (starts {script})")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _required("MOTCUA_TEST_KAFKA", "scripts/kafka.sh")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return _required("MOTCUA_TEST_DATABASE_URL", "scripts/postgres.sh")


def _admin_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="motcua").render_as_string(
        hide_password=False)


def create_pg_database(admin_url: str) -> str:
    """A fresh PostgreSQL database (own schema per test); returns its SQLAlchemy URL."""
    name = f"motcua_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_admin_dsn(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_pg_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Each call creates a fresh PostgreSQL database for this test; all dropped afterwards.
    Request it before any fixture that uses the databases, so it is torn down after them."""
    created: list[str] = []

    def make() -> str:
        created.append(create_pg_database(pg_admin_url))
        return created[-1]

    yield make
    for url in created:
        drop_pg_database(url)


def migrated_engine(request: pytest.FixtureRequest, tmp_path: Path, *, service: str,
                    migrations: Path) -> Iterator[Engine]:
    """For an engine fixture parametrized ["sqlite", "postgres"]: a file database or a fresh
    PostgreSQL one, with `service`'s migrations applied; disposed afterwards."""
    if request.param == "postgres":
        url = request.getfixturevalue("make_pg_database")()
    else:
        url = f"sqlite:///{tmp_path / f'{service}.db'}"
    engine = make_engine(url)
    upgrade(engine, service=service, script_location=migrations)
    yield engine
    engine.dispose()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(params=["embedded", "kafka"])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack_factory(
    request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str
) -> Iterator[StackFactory]:
    """Starts stacks for this test; every one is shut down (gracefully) at the end, before
    the databases they used are dropped."""
    started: list[Stack] = []
    databases: list[str] = []

    def factory(bus: str, db: str, **kwargs: object) -> Stack:
        kafka = request.getfixturevalue("kafka_bootstrap") if bus == "kafka" else None
        db_url = None
        if db == "postgres":
            db_url = create_pg_database(request.getfixturevalue("pg_admin_url"))
            databases.append(db_url)
        stack = start_stack(data_dir=tmp_path / f"stack{len(started)}", kafka=kafka,
                            database_url=db_url, topic_prefix=topic_prefix, **kwargs)
        started.append(stack)
        return stack

    yield factory
    for s in reversed(started):
        s.close()
    for url in databases:
        drop_pg_database(url)


@pytest.fixture
def stack(stack_factory: StackFactory, bus_kind: str, db_kind: str) -> Stack:
    return stack_factory(bus_kind, db_kind)


@pytest.fixture
def embedded_stack(stack_factory: StackFactory) -> Stack:
    """The default: embedded bus and SQLite, as `motcua up` runs with no configuration."""
    return stack_factory("embedded", "sqlite")

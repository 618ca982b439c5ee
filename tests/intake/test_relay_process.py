"""`motcua intake` with its outbox relay in a child process (MOTCUA_INTAKE_RELAY_PROCESS), on
the real broker and PostgreSQL: commits wake the child by NOTIFY, a killed child is started
again and publishes what was committed meanwhile, and the child never outlives its parent."""

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from contracts import CASES_TOPIC, decode
from intake.settings import IntakeSettings
from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.test_three_processes import _probe, free_port
from tests.harness import RoleAuth, auth_env, wait_ready

REPO = Path(__file__).resolve().parents[2]
CASE = {"agency_code": "000.00.20.H56", "procedure_code": "2.000488", "channel": "counter"}


def test_relay_process_needs_kafka_and_postgres() -> None:
    with pytest.raises(ValidationError, match="relay_process") as info:
        IntakeSettings(relay_process=True, environment="development",
                       kafka_bootstrap_servers="127.0.0.1:9092")
    assert "PostgreSQL" in str(info.value)
    with pytest.raises(ValidationError, match="relay_process"):
        IntakeSettings(relay_process=True, environment="development",
                       database_url="postgresql+psycopg://u:p@127.0.0.1/db")


class Intake:
    """`motcua intake` as a process, restartable on the same database and topics."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.port = free_port()
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                   auth=RoleAuth(env["MOTCUA_AUTH_SIGNING_KEY"]))

    def start(self) -> None:
        self.starts += 1
        with open(self.log_dir / f"intake.{self.starts}.log", "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "motcua.cli", "intake", "--port", str(self.port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        wait_ready(lambda: _probe(self.client), timeout=90)

    def child(self, not_pid: int | None = None, timeout: float = 30) -> int:
        """The relay process's pid (another than `not_pid`), once it is running."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in _children(self.proc.pid):
                if pid != not_pid and "relay" in _cmdline(pid):
                    return pid
            time.sleep(0.1)
        raise AssertionError(f"no relay process under intake after {timeout}s")

    def receive(self, n: int) -> list[str]:
        codes = []
        for _ in range(n):
            r = self.client.post("/v1/cases", json=CASE)
            assert r.status_code == 201, r.text
            codes.append(r.json()["case_code"])
        return codes

    def metric(self, name: str) -> float:
        text = self.client.get("/metrics").text
        found = re.search(rf'^{name}{{service="intake"}} (\S+)$', text, re.M)
        assert found, name
        return float(found.group(1))


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    assert not _running(pid), f"process {pid} still running after {timeout}s"


async def _published(bootstrap: str, topic: str, codes: set[str], timeout: float) -> set[str]:
    """The case codes among `codes` whose received event is on `topic` within `timeout`."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                group_id=f"reader-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + timeout
        while not codes <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.update(decode(r.value or b"").subject for r in records)
    finally:
        await consumer.stop()
    return seen & codes


def settled(intake: Intake, timeout: float = 15) -> float:
    """The parent's count of events published, once the outbox is empty and the count is
    what the child last reported."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        count = intake.metric("motcua_outbox_published_events_total")
        if intake.metric("motcua_outbox_backlog_events") == 0 and count == last:
            return count
        last = count
        time.sleep(0.5)
    raise AssertionError(f"the outbox did not settle in {timeout}s")


@pytest.fixture
def intake(tmp_path: Path, kafka_bootstrap: str, pg_admin_url: str,
           topic_prefix: str) -> Iterator[Intake]:
    db = create_pg_database(pg_admin_url)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({
        **auth_env(secrets.token_urlsafe(32)),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MOTCUA_TOPIC_PREFIX": topic_prefix,
        "MOTCUA_DATA_DIR": str(tmp_path),
        "INTAKE_DATABASE_URL": db,
        "MOTCUA_INTAKE_RELAY_PROCESS": "true",
        # A minute between looks at the outbox: what is published sooner was woken by NOTIFY.
        "MOTCUA_INTAKE_RELAY_POLL_SECONDS": "60",
    })
    proc = Intake(env, tmp_path)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)
        proc.client.close()
        drop_pg_database(db)


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.slow
def test_the_relay_process_publishes_restarts_and_never_outlives_intake(
    intake: Intake, kafka_bootstrap: str, topic_prefix: str,
) -> None:
    topic = topic_prefix + CASES_TOPIC

    def published(codes: list[str], timeout: float = 20) -> set[str]:
        return asyncio.run(_published(kafka_bootstrap, topic, set(codes), timeout))

    intake.start()
    first = intake.child()
    time.sleep(1.0)  # the child listening, its first look at the outbox done
    codes = intake.receive(3)
    # Well inside the child's minute between looks: each commit woke it.
    assert published(codes, timeout=20) == set(codes)
    # Besides the cases, the catalogue intake seeded at its start.
    before = settled(intake)

    # A relay process killed outright is started again, and publishes what was committed
    # while it was down; the parent's count carries on across children.
    os.kill(first, signal.SIGKILL)
    more = intake.receive(2)
    second = intake.child(not_pid=first)
    assert published(more, timeout=20) == set(more)
    assert settled(intake) == before + 2
    ready: dict[str, Any] = intake.client.get("/readyz").json()
    assert ready["checks"]["intake.relay_error"] is None

    # SIGTERM: intake stops gracefully and takes its relay process with it.
    assert intake.proc is not None
    intake.proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down gracefully.
    assert intake.proc.wait(30) in (0, -signal.SIGTERM)
    log = (intake.log_dir / "intake.1.log").read_text()
    assert "Application shutdown complete" in log and "Traceback" not in log, log[-3000:]
    _wait_gone(second, 15)

    # Intake killed outright: its relay process sees the end of its stdin and exits.
    intake.start()
    third = intake.child()
    last = intake.receive(1)
    assert published(last, timeout=20) == set(last)
    settled(intake)  # the child has nothing more to tell: only its stdin's end can stop it
    intake.proc.kill()
    intake.proc.wait(10)
    _wait_gone(third, 15)

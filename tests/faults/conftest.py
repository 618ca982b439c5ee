"""The fault suite's own Kafka broker and PostgreSQL: it kills and restarts them, so it never
touches the shared instances other test runs use (scripts/kafka.sh and scripts/postgres.sh on
other ports, data under this session's temporary directories; stopped and removed at the end).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import free_ports

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "faults.json"


@dataclass
class Infra:
    kafka_env: dict[str, str]
    pg_env: dict[str, str]
    kafka: str
    pg_admin_url: str
    pg_root: Path

    def _script(self, script: str, action: str, env: dict[str, str], timeout: float = 180) -> None:
        run = subprocess.run(["bash", str(REPO / "scripts" / script), action],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=timeout, check=False)
        if run.returncode != 0:
            raise AssertionError(f"{script} {action} failed:\n{run.stdout}\n{run.stderr}")

    def kafka_kill(self) -> None:
        self._script("kafka.sh", "kill", self.kafka_env)

    def kafka_start(self) -> None:
        self._script("kafka.sh", "start", self.kafka_env)

    @contextlib.contextmanager
    def kafka_frozen(self) -> Iterator[None]:
        """The broker alive but answering nothing (SIGSTOP): connections stay open, requests
        wait for their timeouts, as with a broker stuck in a long GC pause or a dead network."""
        pid = self._kafka_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def _kafka_pid(self) -> int:
        run = subprocess.run(["bash", str(REPO / "scripts" / "kafka.sh"), "pid"],
                             env={**os.environ, **self.kafka_env}, capture_output=True,
                             text=True, timeout=30, check=False)
        if run.returncode != 0:
            raise AssertionError(f"kafka.sh pid failed:\n{run.stderr}")
        return int(run.stdout.strip())

    def postgres_restart(self) -> None:
        self._script("postgres.sh", "restart", self.pg_env)


# Package scope: the broker and the cluster stop as soon as the fault tests are done, not at
# the end of a whole-suite session.
@pytest.fixture(scope="package")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    if os.environ.get("MOTCUA_SKIP_FAULTS"):
        pytest.skip("MOTCUA_SKIP_FAULTS is set")
    base = tmp_path_factory.mktemp("faults-infra")
    kafka_port, controller_port, pg_port = free_ports(3)
    kafka_env = {"KAFKA_PORT": str(kafka_port), "KAFKA_CONTROLLER_PORT": str(controller_port),
                 "KAFKA_RUN_DIR": str(base / "kafka"),
                 "KAFKA_DATA_DIR": str(base / "kafka" / "data"),
                 "KAFKA_HEAP_OPTS": "-Xmx384m -Xms128m"}
    # The cluster owner (postgres, when tests run as root) must reach its directory: not
    # under pytest's 0700 temporary root.
    pg_root = Path("/var/tmp") / f"motcua-faults-pg-{uuid.uuid4().hex[:10]}"
    pg_env = {"PGPORT": str(pg_port), "PG_ROOT_DIR": str(pg_root)}
    infra = Infra(kafka_env, pg_env, f"127.0.0.1:{kafka_port}",
                  f"postgresql+psycopg://motcua:motcua@127.0.0.1:{pg_port}/motcua", pg_root)
    # Both start at once: the broker's JVM and initdb overlap.
    starts = [
        subprocess.Popen(["bash", str(REPO / "scripts" / s), "start"], env={**os.environ, **e},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for s, e in (("kafka.sh", kafka_env), ("postgres.sh", pg_env))
    ]
    try:
        for p in starts:
            out, _ = p.communicate(timeout=240)
            if p.returncode != 0:
                raise AssertionError(f"starting the fault suite's infrastructure failed:\n{out}")
        yield infra
    finally:
        for p in starts:
            if p.poll() is None:
                p.kill()
        subprocess.run(["bash", str(REPO / "scripts" / "kafka.sh"), "kill"],
                       env={**os.environ, **kafka_env}, capture_output=True, check=False)
        subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "stop"],
                       env={**os.environ, **pg_env}, capture_output=True, check=False)
        shutil.rmtree(pg_root, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.when == "call":
        item.stash[FAILED] = rep.failed


FAILED = pytest.StashKey[bool]()
LOGS = REPO / "test-artifacts" / "faults-logs"


# Scenario -> figures; printed in pytest's terminal summary (test output is captured, the
# summary is not) and written to test-artifacts/faults.json.
FIGURES: dict[str, dict[str, Any]] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault injection: events sent, accepted, lost, duplicated")
    for name, row in FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(FIGURES, indent=2, sort_keys=True))
    terminalreporter.write_line(f"(also in {ARTIFACT.relative_to(REPO)})")


@pytest.fixture
def report() -> Callable[..., None]:
    def write(name: str, row: dict[str, Any]) -> None:
        FIGURES[name] = row

    return write

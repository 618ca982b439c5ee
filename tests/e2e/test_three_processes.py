"""`motcua intake`, `motcua routing` and `motcua metrics` as three processes on real Kafka,
each with its own PostgreSQL database, so they can only talk through Kafka topics."""

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.test_scenario import assert_kpis_match, run_scenario
from tests.harness import RoleAuth, auth_env, start_processes

SERVICES = ("intake", "routing", "metrics")


class Routed:
    """Counters talk to intake; KPI reads go to metrics."""

    def __init__(self, clients: dict[str, httpx.Client]) -> None:
        self.clients = clients

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.clients["intake"].post(url, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        target = "metrics" if url.startswith("/v1/kpis") else "intake"
        return self.clients[target].get(url, **kw)


def consumer_lag(metrics_text: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("motcua_consumer_lag_messages{"):
            total += float(line.rsplit(" ", 1)[1])
        if line.startswith("motcua_consumer_up{") and float(line.rsplit(" ", 1)[1]) != 1.0:
            total += 1
    return total


@pytest.fixture
def processes(
    tmp_path: Path, kafka_bootstrap: str, pg_admin_url: str, topic_prefix: str
) -> Iterator[dict[str, Any]]:
    databases = {name: create_pg_database(pg_admin_url) for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    signing_key = secrets.token_urlsafe(32)  # one deployment: every process verifies tokens
    env.update({
        **auth_env(signing_key),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MOTCUA_TOPIC_PREFIX": topic_prefix,
        "MOTCUA_CONSUMER_POLL_MS": "50",
        "MOTCUA_DATA_DIR": str(tmp_path),
        **{f"{n.upper()}_DATABASE_URL": url for n, url in databases.items()},
    })
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started = start_processes(
            SERVICES, lambda name, port: [sys.executable, "-m", "motcua.cli", name,
                                          "--port", str(port)], env, tmp_path)
        procs = {name: proc for name, (proc, _) in started.items()}
        clients = {n: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                   auth=RoleAuth(signing_key)) for n, (_, port) in started.items()}
        yield {"procs": procs, "clients": clients, "logs": tmp_path, "env": env,
               "signing_key": signing_key}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for url in databases.values():
            drop_pg_database(url)


def test_three_processes_on_kafka_and_postgres(processes: dict[str, Any]) -> None:
    clients: dict[str, httpx.Client] = processes["clients"]

    def settle(timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            backlog = sum(
                v for n in ("intake", "routing")
                for k, v in clients[n].get("/readyz").json()["checks"].items()
                if k.endswith("outbox_backlog")
            )
            lag = sum(consumer_lag(c.get("/metrics").text) for c in clients.values())
            quiet = quiet + 1 if backlog == 0 and lag == 0 else 0
            if quiet >= 3:
                return
            time.sleep(0.3)
        raise AssertionError("three-process stack did not settle")

    router = Routed(clients)
    facts = run_scenario(router, settle, n=100, seed=7)
    assert_kpis_match(router, facts)
    # The KPI endpoint lives on metrics only; intake does not serve it.
    assert clients["intake"].get("/v1/kpis").status_code == 404
    # SIGTERM: each process finishes its in-flight work and exits cleanly.
    for proc in processes["procs"].values():
        proc.send_signal(signal.SIGTERM)
    for name, proc in processes["procs"].items():
        code = proc.wait(60)
        log = (processes["logs"] / f"{name}.log").read_text()
        # uvicorn re-raises the signal once the lifespan shutdown has completed.
        assert code in (0, -signal.SIGTERM), log
        assert "Application shutdown complete" in log, log
        assert "Traceback" not in log, log

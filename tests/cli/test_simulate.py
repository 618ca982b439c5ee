"""`motcua up`, `motcua simulate` and `motcua kpis` as an operator runs them."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import start_processes


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    # `motcua up` writes its first clients' credentials there; the commands below use them.
    monkeypatch.setenv("MOTCUA_CREDENTIALS", str(tmp_path / "data" / "credentials.json"))
    started = start_processes(
        ["up"], lambda _, port: [sys.executable, "-m", "motcua.cli", "up", "--port", str(port),
                                 "--data-dir", str(tmp_path / "data")],
        env, tmp_path, timeout=60, component={"up": "metrics"})
    proc, port = started["up"]
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
    banner = (tmp_path / "up.log").read_text()
    assert f"API docs: {url}/docs" in banner and f"metrics:  {url}/metrics" in banner


def run(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "motcua.cli", *args], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_simulate_then_kpis(running: str) -> None:
    out = run("simulate", "--plan", "H05", "--days", "2", "--cases-per-day", "40",
              "--rate", "400", "--url", running)
    outcomes = dict(re.findall(r"^\s*(\d{3})\s+(\d+)$", out, re.M))
    assert set(outcomes) == {"201"}, out  # every request accepted, nothing refused
    assert "KPIs — scope province:H05" in out
    months = re.findall(r"period (\d{4}-\d{2})\n", out)
    received = re.findall(r"^received\s+(\d+)", out, re.M)
    assert months and len(months) == len(received) and sum(map(int, received)) > 0
    for month, count in zip(months, received, strict=True):
        table = run("kpis", "--url", running, "--scope", "province:H05", "--period", month)
        assert "online_share" in table and "numerator" in table
        assert re.findall(r"^received\s+(\d+)", table, re.M) == [count]

"""A revocation reaches every process: intake, routing and metrics as three processes on
Kafka, each with its own database. Revoked with the CLI on intake's database (and with the
admin API), the client's unexpired tokens are refused by all three within seconds, and by a
process started afterwards from its first answer."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_three_processes import processes  # noqa: F401
from tests.harness import start_processes
from tests.security.support import CENTRE_H56

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _token(intake: httpx.Client, record: dict[str, Any]) -> str:
    r = intake.post("/v1/auth/token", data={"grant_type": "client_credentials"},
                    auth=(record["client_id"], record["client_secret"]))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _status(client: httpx.Client, path: str, token: str) -> int:
    return client.get(path, headers={"Authorization": f"Bearer {token}"}, auth=None).status_code


def test_revocation_reaches_every_process(processes: dict[str, Any],  # noqa: F811
                                          tmp_path: Path) -> None:
    clients: dict[str, httpx.Client] = processes["clients"]
    intake = clients["intake"]
    made = {kind: intake.post("/v1/admin/clients", json=body).json() for kind, body in {
        "counter": {"name": "Quầy 1", "kind": "counter", "agency_code": CENTRE_H56},
        "portal": {"name": "Cổng tỉnh", "kind": "portal", "province_code": "H56"},
    }.items()}
    tokens = {kind: _token(intake, record) for kind, record in made.items()}
    checks = [  # (service, path, kind): one per process the token is good for
        ("intake", "/v1/agencies?limit=1", "counter"),
        ("routing", f"/v1/routing/cases/{CENTRE_H56}-260101-0001", "counter"),
        ("metrics", "/v1/kpis?scope=province:H56", "portal"),
        ("metrics", "/v1/plans", "counter"),
        ("intake", "/v1/procedures?limit=1", "portal"),
    ]
    before = [_status(clients[s], path, tokens[k]) for s, path, k in checks]
    assert before == [200, 404, 200, 200, 200]  # 404: authenticated, no such case

    cli = subprocess.run([sys.executable, "-m", "motcua.cli", "clients", "revoke",
                          made["counter"]["client_id"]], env=processes["env"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=False)
    assert cli.returncode == 0 and "revoked" in cli.stdout, cli.stderr
    r = intake.post(f"/v1/admin/clients/{made['portal']['client_id']}/revoke")
    assert r.status_code == 200 and r.json()["changed"]

    deadline = time.monotonic() + 60
    while True:
        after = [_status(clients[s], path, tokens[k]) for s, path, k in checks]
        if after == [401] * len(checks) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert after == [401] * len(checks)
    # Nor do they get new tokens.
    r = intake.post("/v1/auth/token", data={"grant_type": "client_credentials"},
                    auth=(made["counter"]["client_id"], made["counter"]["client_secret"]))
    assert r.status_code == 401

    # A metrics process started now has read the revocations before it answers anything.
    late_dir = tmp_path / "late"
    late_dir.mkdir()
    (late, port), = start_processes(
        ["metrics"], lambda name, port: [sys.executable, "-m", "motcua.cli", name,
                                         "--port", str(port)],
        processes["env"], late_dir).values()
    try:
        fresh = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        assert _status(fresh, "/v1/kpis?scope=province:H56", tokens["portal"]) == 401
        still = {"Authorization": f"Bearer {_token(intake, _new_portal(intake))}"}
        assert fresh.get("/v1/kpis", params={"scope": "province:H56"}, headers=still,
                         auth=None).status_code == 200
    finally:
        late.terminate()
        late.wait(30)


def _new_portal(intake: httpx.Client) -> dict[str, Any]:
    r = intake.post("/v1/admin/clients", json={"name": "Cổng mới", "kind": "portal",
                                               "province_code": "H56"})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created

"""Case codes stay unique and gap-free per agency per local day when several intake processes
(separate apps, engines and connection pools) receive on one PostgreSQL database at once."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from intake.app import create_app
from intake.settings import IntakeSettings
from tests.factories import CENTRE, case_body
from tests.harness import RoleAuth, auth_settings, wait_ready

OTHER = "000.00.02.H56"


@pytest.fixture
def two_intakes(
    make_pg_database: Callable[[], str], tmp_path: Path, topic_prefix: str
) -> Iterator[list[TestClient]]:
    url = make_pg_database()
    clients = []
    auth = auth_settings()  # one deployment: the two processes share the signing key
    for name in ("a", "b"):
        settings = IntakeSettings(database_url=url, data_dir=tmp_path / name,
                                  kafka_bootstrap_servers=None, topic_prefix=topic_prefix,
                                  **auth)
        client = TestClient(create_app(settings))
        client.auth = RoleAuth(auth["auth_signing_key"])
        client.__enter__()
        clients.append(client)
    for client in clients:
        wait_ready(lambda: client.get("/readyz"))  # noqa: B023 (called at once)
    yield clients
    for client in clients:
        client.__exit__(None, None, None)


def test_two_intake_processes_share_one_gap_free_sequence(
    two_intakes: list[TestClient]
) -> None:
    def receive(i: int) -> str:
        client = two_intakes[i % 2]
        agency = CENTRE if i % 3 else OTHER
        if i % 5 == 0:  # online submissions take their code from the same sequence
            body = case_body(agency_code=agency)
            del body["channel"], body["received_at"]
            r = client.post("/v1/submissions", json={
                **body, "online_level": "full", "submitted_at": "2026-03-02T10:00:00+07:00"})
        else:
            r = client.post("/v1/cases", json=case_body(agency_code=agency))
        assert r.status_code == 201, r.text
        return str(r.json()["case_code"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(receive, range(90)))
    assert len(set(codes)) == 90
    for agency in (CENTRE, OTHER):
        mine = [c for c in codes if c.startswith(agency + "-260302-")]
        assert sorted(int(c.rsplit("-", 1)[1]) for c in mine) == list(range(1, len(mine) + 1))
    # Both processes saw one catalogue, seeded once.
    listed = [c.get("/v1/procedures", params={"limit": 1000}).json()["total"]
              for c in two_intakes]
    assert listed[0] == listed[1] > 0
    versions = two_intakes[1].get("/v1/admin/procedures/2.000488/versions").json()
    assert [v["version"] for v in versions["items"]] == [1]

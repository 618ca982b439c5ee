"""Generated requests against the OpenAPI document of the running one-process app (every
service's endpoints on one port), each authenticated as the kind of client its path is for:
no answer is a server error, every error is problem+json, and a refused request stores
nothing (no case, no case event, no catalogue version, no client)."""

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import Engine, func, select, text

from intake.models import Case, CaseEventRecord, Client
from tests.dashboard.support import LiveServer, live_server
from tests.harness import RoleAuth

pytestmark = pytest.mark.slow
EXAMPLES = 120  # per operation (half valid, half not); about thirty operations


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz") / "data",
                     f"f{uuid.uuid4().hex[:8]}.") as running:
        yield running


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def stored(engine: Engine) -> tuple[int, ...]:
    """What a refused request must not change. Events are counted without the ones routing
    reports (transfers, overdue notices arrive in the background)."""
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(Case)).scalar_one(),
            conn.execute(select(func.count()).select_from(CaseEventRecord).where(
                CaseEventRecord.source != "/motcua/routing")).scalar_one(),  # type: ignore[arg-type]
            conn.execute(select(func.count()).select_from(Client)).scalar_one(),
            conn.execute(text("SELECT count(*) FROM intake_agency_versions")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM intake_procedure_versions")).scalar_one(),
            conn.execute(select(func.count()).select_from(Client).where(
                Client.revoked_at.is_not(None))).scalar_one(),  # type: ignore[union-attr]
        )


def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error, whichever layer answers it (body limit, auth, validation, domain)."""
    if response.status_code >= 400:
        media = response.headers.get("content-type", [""])
        media = media[0] if isinstance(media, list) else media
        if not str(media).startswith("application/problem+json"):
            raise AssertionError(f"{response.status_code} answered as {media!r}, not problem+json")
    return None


def test_generated_requests(server: LiveServer, api: Any) -> None:
    auth = server.client.auth
    assert isinstance(auth, RoleAuth)
    engine = server.component("intake").engine
    sent: Counter[str] = Counter()
    failures: list[str] = []

    def check(case: Any) -> None:
        before = stored(engine)
        response = case.call_and_validate(
            base_url=server.url, headers=auth.headers(RoleAuth.kind_for(case.path)),
            checks=[not_a_server_error, problem_json], timeout=30)
        sent[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 400:
            assert stored(engine) == before, (case.method, case.path, response.status_code)

    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # No shrinking: a failure is reported with the request that caused it.
            run = settings(max_examples=EXAMPLES // 2, deadline=None, derandomize=True,
                           phases=[Phase.explicit, Phase.generate], database=None,
                           suppress_health_check=list(HealthCheck))(
                given(operation.as_strategy(generation_mode=mode))(check))
            try:
                run()
            except Unsatisfiable:
                continue  # nothing to make invalid (an operation without parameters)
            except Exception as exc:  # collect, so one run reports every operation's failure
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): "
                                f"{exc}"[:2000])
    assert not failures, "\n\n".join(failures)
    total = sum(sent.values())
    assert total >= 2500 and sent["5xx"] == 0, sent
    print(f"schemathesis: {total} requests over {len(operations)} operations: {dict(sent)}")


def test_the_document_covers_every_endpoint(server: LiveServer, tmp_path: Path) -> None:
    paths = server.client.get("/openapi.json", auth=None).json()["paths"]
    assert {"/v1/cases", "/v1/auth/token", "/v1/kpis", "/v1/routing/cases/{case_code}",
            "/v1/audit", "/v1/admin/clients"} <= set(paths)
    assert "bearer" in server.client.get("/openapi.json").json()["components"][
        "securitySchemes"]

"""The dashboard without a token in its address: the page asks for a portal client's id and
secret, gets a token, and shows the portal's figures; the token stays in the tab only."""

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.support import live_server
from tests.dashboard.test_browser import browser, wait_scope  # noqa: F401

pytestmark = pytest.mark.slow


def test_the_dashboard_signs_in_as_a_portal(browser: Any, tmp_path: Path,  # noqa: F811
                                            topic_prefix: str) -> None:
    with live_server(tmp_path / "data", topic_prefix) as server:
        record = server.client.post("/v1/admin/clients", json={
            "name": "Cổng tỉnh Thanh Hóa", "kind": "portal", "province_code": "H56"}).json()
        answers = iter([record["client_id"], record["client_secret"]])
        asked: list[str] = []

        def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept(next(answers))

        page = browser.new_page()
        page.on("dialog", answer)
        page.goto(f"{server.url}/dashboard?refresh=1&scope=province:H56")
        wait_scope(page, "province:H56")
        assert len(asked) == 2 and "client id" in asked[0]
        token = page.evaluate("sessionStorage.getItem('motcua.token')")
        r = server.client.get("/v1/kpis", params={"scope": "province:H56"},
                              headers={"Authorization": f"Bearer {token}"}, auth=None)
        assert r.status_code == 200
        assert "token" not in page.url
        page.close()

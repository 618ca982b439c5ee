"""The dashboard's page, its files, and the two read-only views it adds to metrics' API."""

import re
import unicodedata
from datetime import UTC, datetime

import pytest

from metrics.dashboard.router import STATIC
from metrics.kpis import KPIS
from tests.dashboard.support import (
    BAC_NINH,
    JUSTICE,
    Posted,
    overdue_records,
    post_province_cases,
    record,
)
from tests.factories import CENTRE
from tests.harness import Stack, StackFactory


@pytest.fixture(params=["sqlite", "postgres"])
def province(request: pytest.FixtureRequest, stack_factory: StackFactory) -> tuple[Stack, Posted]:
    stack = stack_factory("embedded", str(request.param))
    posted = post_province_cases(stack.client, stack.settled, datetime.now(UTC))
    records = overdue_records(stack.client, posted.late,
                              stack.settings["intake"].topic_prefix)
    portal = stack.client.portal
    assert portal is not None
    portal.call(stack.client.app.state.bus.publish, records)  # type: ignore[attr-defined]
    stack.settled()
    return stack, posted


def kpis(stack: Stack, scope: str, period: str, names: list[str]) -> list[dict[str, object]]:
    r = stack.client.get("/v1/kpis", params={"scope": scope, "period": period, "kpi": names})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_breakdown_rows_are_the_kpis_of_each_child(province: tuple[Stack, Posted]) -> None:
    stack, _ = province
    r = stack.client.get("/v1/breakdown")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["by"] == "province"
    assert [c["scope"] for c in body["children"]] == ["province:H05", "province:H56"]
    names = [i["kpi"] for i in body["children"][0]["items"]]
    assert names == ["received", "online_share", "on_time_rate", "digitisation_rate",
                     "overdue_open"]
    for child in body["children"]:
        assert child["items"] == kpis(stack, child["scope"], body["period"], names)

    r = stack.client.get("/v1/breakdown", params={"scope": "province:H56",
                                                  "period": body["period"],
                                                  "kpi": ["received", "overdue_open"]})
    agencies = {c["code"]: {i["kpi"]: i["value"] for i in c["items"]}
                for c in r.json()["children"]}
    # Bắc Ninh's agency is not a child of Thanh Hóa; the centre holds both overdue cases.
    assert agencies == {CENTRE: {"received": 5, "overdue_open": 2},
                        JUSTICE: {"received": 2, "overdue_open": 0}}
    assert BAC_NINH not in agencies


def test_overdue_backlog_case_by_case(province: tuple[Stack, Posted]) -> None:
    stack, posted = province
    r = stack.client.get("/v1/overdue", params={"scope": "province:H56"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2
    assert sorted(c["case_code"] for c in body["items"]) == sorted(posted.late)
    first = body["items"][0]
    assert set(first) == {"case_code", "agency_code", "procedure_code", "field_code",
                          "channel", "status", "received_at", "received_on"}
    assert first["agency_code"] == CENTRE and first["procedure_code"] == "1.004873"
    # The same backlog as the overdue_open KPI, in every scope.
    for scope in ("all", "province:H56", f"agency:{CENTRE}", f"agency:{JUSTICE}",
                  "province:H05", "procedure:1.004873", "field:civil_status",
                  "province-field:H56/civil_status", "province-field:H05/civil_status"):
        listed = stack.client.get("/v1/overdue", params={"scope": scope}).json()["total"]
        count = stack.client.get("/v1/kpis", params={"scope": scope, "kpi": "overdue_open"})
        assert listed == count.json()["items"][0]["value"], scope
    field_in_province = {"scope": "province-field:H56/civil_status"}
    assert stack.client.get("/v1/overdue", params=field_in_province).json()["total"] == 2

    pages = [stack.client.get("/v1/overdue", params={"scope": "all", "limit": 1,
                                                     "offset": n}).json() for n in (0, 1, 2)]
    assert [len(p["items"]) for p in pages] == [1, 1, 0]
    assert [p["items"][0]["case_code"] for p in pages[:2]] == [c["case_code"]
                                                               for c in body["items"]]

    # Resolving a case takes it off the list at once.
    record(stack.client, posted.late[0], "resolved", datetime.now(UTC), result_digitised=False)
    stack.settled()
    left = stack.client.get("/v1/overdue", params={"scope": "province:H56"}).json()
    assert [c["case_code"] for c in left["items"]] == [posted.late[1]]


@pytest.mark.parametrize(("url", "params", "field", "rule"), [
    ("/v1/overdue", {"scope": "county:1"}, "scope", "format"),
    ("/v1/overdue", {"limit": 0}, "limit", None),
    ("/v1/overdue", {"offset": -1}, "offset", None),
    ("/v1/breakdown", {"scope": f"agency:{CENTRE}"}, "scope", "drillable"),
    ("/v1/breakdown", {"period": "2026-13"}, "period", "format"),
    ("/v1/breakdown", {"kpi": "speed"}, "kpi", "enum"),
])
def test_bad_queries_are_named_problems(
    embedded_stack: Stack, url: str, params: dict[str, object], field: str, rule: str | None
) -> None:
    r = embedded_stack.client.get(url, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [field]
    if rule:
        assert errors[0]["rule"] == rule


def test_page_loads_only_its_own_files(embedded_stack: Stack) -> None:
    r = embedded_stack.client.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/dashboard/static/") for a in assets), assets
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for asset in assets:
        f = embedded_stack.client.get(asset)
        assert f.status_code == 200, asset
        assert f.headers["content-type"].startswith(types[asset[asset.rfind("."):]])
    for missing in ("/dashboard/static/nope.js", "/dashboard/static/index.html",
                    "/dashboard/static/..%2Frouter.py"):
        assert embedded_stack.client.get(missing).status_code == 404, missing


def test_intake_url_is_configurable(
    stack_factory: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTCUA_DASHBOARD_INTAKE_URL", "https://intake.example/\"x")
    monkeypatch.setenv("MOTCUA_DASHBOARD_REFRESH_SECONDS", "30")
    page = stack_factory("embedded", "sqlite").client.get("/dashboard").text
    # Escaped into the attribute, never able to break out of it.
    assert 'data-intake-url="https://intake.example/&quot;x"' in page
    assert 'data-refresh="30"' in page


def test_texts_are_utf8_nfc_and_every_kpi_has_both_labels() -> None:
    for path in STATIC.iterdir():
        text = path.read_bytes().decode("utf-8")
        assert unicodedata.normalize("NFC", text) == text, path.name
    i18n = (STATIC / "i18n.js").read_text(encoding="utf-8")
    vi, en = i18n.split("\n  en: {", 1)
    for kpi in KPIS:
        assert re.search(rf"^\s+{kpi}: \"[^\"]+\",$", vi, re.M), f"no Vietnamese label: {kpi}"
        assert re.search(rf"^\s+{kpi}: \"[^\"]+\",$", en, re.M), f"no English label: {kpi}"
    assert 'on_time_rate: "Tỷ lệ giải quyết đúng hạn"' in vi

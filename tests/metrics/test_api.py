"""GET /v1/kpis as a portal uses it: CSV, ETag / 304, targets from plan files beside each
figure; GET /v1/plans; GET /v1/kpis/index (Decision 766 style score)."""

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from metrics.targets import BUILT_IN, PlanError, Plans
from tests.factories import FEE_PROCEDURE, case_body, event_body
from tests.harness import Stack, StackFactory

MARCH = "2026-03"


def plan_file(directory: Path, targets: list[dict[str, Any]], plan_id: str = "thanh-hoa-2026",
              province: str = "H56") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{plan_id}.json"
    path.write_text(json.dumps({
        "id": plan_id, "title": "Kế hoạch cải cách hành chính tỉnh Thanh Hóa năm 2026",
        "province": province, "province_name": "Thanh Hóa",
        "source": {"document": "Kế hoạch số 1/KH-UBND (test)"}, "targets": targets,
    }, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def stack(stack_factory: StackFactory, tmp_path: Path) -> Stack:
    plan_file(tmp_path / "plans", [
        {"kpi": "online_share", "scope": "province:H56", "years": [2026], "threshold": 0.5},
        {"kpi": "online_payment_rate", "scope": "province:H56", "years": [2026],
         "threshold": 0.9, "comparison": ">"},
        {"kpi": "on_time_rate", "scope": "province:H56", "years": [2026], "threshold": 0.5},
    ])
    return stack_factory("embedded", "sqlite", plans_dir=tmp_path / "plans")


def receive(stack: Stack, **overrides: Any) -> str:
    r = stack.client.post("/v1/cases", json=case_body(**overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["case_code"])


def event(stack: Stack, code: str, type_: str, **fields: Any) -> None:
    r = stack.client.post(f"/v1/cases/{code}/events", json=event_body(type_, **fields))
    assert r.status_code == 201, r.text


def march_cases(stack: Stack) -> None:
    """Three Thanh Hóa cases in March 2026: two online, one paid at the counter, one resolved
    on time and digitised, one rated satisfied."""
    online = receive(stack, channel="online", online_level="full")
    receive(stack, channel="online", online_level="partial")
    fee = receive(stack, procedure_code=FEE_PROCEDURE)
    event(stack, fee, "paid", amount=200_000, method="counter",
          occurred_at="2026-03-03T08:00:00+07:00")
    event(stack, online, "resolved", result_digitised=True)
    event(stack, online, "rated", rating="satisfied", occurred_at="2026-03-05T08:00:00+07:00")
    stack.settled()


def items(stack: Stack, **params: Any) -> dict[str, dict[str, Any]]:
    r = stack.client.get("/v1/kpis", params=params)
    assert r.status_code == 200, r.text
    return {i["kpi"]: i for i in r.json()["items"]}


def test_figures_carry_the_plan_target_gap_and_status(stack: Stack) -> None:
    march_cases(stack)
    got = items(stack, scope="province:H56", period=MARCH)
    share = got["online_share"]
    assert (share["numerator"], share["denominator"]) == (2, 3)
    assert share["target"] == 0.5 and share["status"] == "met"
    assert share["gap"] == pytest.approx(2 / 3 - 0.5)
    assert share["plan"] == {"id": "thanh-hoa-2026", "document": "Kế hoạch số 1/KH-UBND (test)"}
    payment = got["online_payment_rate"]
    assert (payment["numerator"], payment["denominator"]) == (0, 1)
    assert payment["status"] == "behind" and payment["gap"] == pytest.approx(-0.9)
    assert got["on_time_rate"]["status"] == "met"
    # No plan sets one: no target keys at all, rather than a made-up default.
    assert "target" not in got["digitisation_rate"]
    # A yearly target applies to every period of its year; a year without one has none.
    assert items(stack, scope="province:H56", period="2026-Q1")["online_share"]["target"] == 0.5
    assert "target" not in items(stack, scope="province:H56", period="2025")["online_share"]
    # A target, but nothing to measure yet: gap and status are null, never "met".
    empty = items(stack, scope="province:H56", period="2026-11-02")["online_share"]
    assert (empty["target"], empty["gap"], empty["status"]) == (0.5, None, None)


def test_csv_has_the_same_figures_as_json(stack: Stack) -> None:
    march_cases(stack)
    params = {"scope": "province:H56", "period": MARCH}
    r = stack.client.get("/v1/kpis", params=params, headers={"Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    by_json = items(stack, **params)
    assert [row["kpi"] for row in rows] == list(by_json)
    for row in rows:
        j = by_json[row["kpi"]]
        assert row["numerator"] == str(j["numerator"])
        assert row["denominator"] == ("" if j["denominator"] is None else str(j["denominator"]))
        assert row["status"] == (j.get("status") or "")
        assert row["plan"] == (j.get("plan") or {}).get("id", "")
    # JSON stays the default, and wins a tie.
    tie = stack.client.get("/v1/kpis", params=params,
                           headers={"Accept": "text/csv, application/json"})
    assert tie.headers["content-type"].startswith("application/json")
    low = stack.client.get("/v1/kpis", params=params,
                           headers={"Accept": "application/json;q=0.5, text/csv"})
    assert low.headers["content-type"].startswith("text/csv")


def test_etag_and_if_none_match(stack: Stack) -> None:
    march_cases(stack)
    params = {"scope": "province:H56", "period": MARCH}
    first = stack.client.get("/v1/kpis", params=params)
    tag = first.headers["etag"]
    assert tag.startswith('"') and first.headers["vary"] == "Accept"
    again = stack.client.get("/v1/kpis", params=params, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    weak = stack.client.get("/v1/kpis", params=params,
                            headers={"If-None-Match": f'"other", W/{tag}'})
    assert weak.status_code == 304
    as_csv = stack.client.get("/v1/kpis", params=params,
                              headers={"Accept": "text/csv", "If-None-Match": tag})
    assert as_csv.status_code == 200 and as_csv.headers["etag"] != tag
    # A new fact in the period changes the figures, so the old tag no longer matches.
    receive(stack, received_at="2026-03-20T10:00:00+07:00")
    stack.settled()
    changed = stack.client.get("/v1/kpis", params=params, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_a_field_within_a_province_is_a_scope(stack: Stack) -> None:
    march_cases(stack)
    got = items(stack, scope="province-field:H56/civil_status", period=MARCH)
    assert got["received"]["numerator"] == 2
    assert items(stack, scope="province-field:H56/justice", period=MARCH)["received"][
        "numerator"] == 1
    bad = stack.client.get("/v1/kpis", params={"scope": "province-field:H56"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["field"] == "scope"


def test_plans_lists_the_shipped_and_loaded_plans(stack: Stack) -> None:
    body = stack.client.get("/v1/plans").json()
    by_id = {p["id"]: p for p in body["plans"]}
    assert {"bac-ninh-2021-2025", "lai-chau-2022", "bac-giang-2021", "dak-nong-2025-2030",
            "thanh-hoa-2026"} <= set(by_id)
    assert {p["province"] for p in body["plans"]} >= {"H05", "H35", "H03", "H17", "H56"}
    bac_ninh = by_id["bac-ninh-2021-2025"]
    payment = [t for t in bac_ninh["targets"] if t["kpi"] == "online_payment_rate"]
    assert payment[0]["threshold"] == 0.3 and 2023 in payment[0]["years"]
    assert bac_ninh["not_measurable"][0]["why"]
    only = stack.client.get("/v1/plans", params={"province": "H35"}).json()["plans"]
    assert [p["id"] for p in only] == ["lai-chau-2022"]


def test_shipped_plans_apply_to_their_provinces(stack: Stack) -> None:
    """Bắc Ninh 2021-2025: at least 30% of payments online; two of three in 2025 is met."""
    for method in ("online", "online", "counter"):
        code = receive(stack, agency_code="000.00.02.H05", procedure_code=FEE_PROCEDURE,
                       received_at="2025-03-03T09:00:00+07:00")
        extra = {"portal": "national"} if method == "online" else {}
        event(stack, code, "paid", amount=200_000, method=method,
              occurred_at="2025-03-04T09:00:00+07:00", **extra)
    stack.settled()
    got = items(stack, scope="province:H05", period="2025")["online_payment_rate"]
    assert (got["numerator"], got["denominator"], got["target"]) == (2, 3, 0.3)
    assert got["status"] == "met" and got["plan"]["id"] == "bac-ninh-2021-2025"


def test_index_scores_the_measurable_groups(stack: Stack) -> None:
    march_cases(stack)
    r = stack.client.get("/v1/kpis/index", params={"scope": "province:H56", "period": MARCH})
    assert r.status_code == 200, r.text
    assert r.headers["etag"]
    body = r.json()
    groups = {g["code"]: g for g in body["groups"]}
    assert groups["CKMB"]["measurable"] is False and groups["CKMB"]["points"] is None
    # Progress: one resolved case, on time; the plan's 50% target is met: full 20 points.
    assert groups["TDGQ"]["points"] == 20 and groups["TDGQ"]["target_source"] == "thanh-hoa-2026"
    # Online service: 2 of 3 online against the plan's 50%: full 12 points.
    assert groups["CLGQ"]["points"] == 12
    # Online payment: 0 of 1, behind the plan's 90%: no points.
    assert groups["TTTT"]["points"] == 0
    # Digitisation: 1 of 1 against the default 100%: full 22.
    assert groups["MDSH"]["points"] == 22 and groups["MDSH"]["target_source"] == "default"
    assert groups["MDHL"]["points"] == 18
    assert body["fields"]["TONG_SCORE"] == body["total"] == 20 + 12 + 0 + 22 + 18
    assert body["max_measured"] == 82 and body["max_points"] == 100
    assert "R x 20 / T" in groups["TDGQ"]["formula"]
    # Partial credit: 1 of 2 online against 100% (the default, a period without a plan).
    receive(stack, channel="online", online_level="full", received_at="2025-05-05T09:00:00+07:00")
    receive(stack, received_at="2025-05-06T09:00:00+07:00")
    stack.settled()
    may = stack.client.get("/v1/kpis/index", params={"scope": "province:H56",
                                                     "period": "2025-05"}).json()
    online = next(g for g in may["groups"] if g["code"] == "CLGQ")
    assert online["points"] == 6 and online["target_source"] == "default"
    # Groups without cases in the period are not scored, and the total says out of what.
    assert may["max_measured"] == 12 and may["total"] == 6


def test_shipped_plan_files_load() -> None:
    plans = Plans.load(BUILT_IN)
    assert len(plans.plans) == 4
    target = plans.target("online_share", "province:H17", "2030-06")
    assert target is not None and float(target.threshold) == 0.8
    assert plans.target("online_share", "province:H17", "2027") is None


@pytest.mark.parametrize(("change", "message"), [
    ({"kpi": "received"}, "not a ratio KPI"),
    ({"kpi": "speed"}, "not a ratio KPI"),
    ({"scope": "province H56"}, "not a scope"),
    ({"threshold": 1.5}, "between 0 and 1"),
    ({"comparison": "<"}, "comparison"),
    ({"years": []}, "years"),
])
def test_a_bad_plan_file_is_refused_naming_the_rule(
    tmp_path: Path, change: dict[str, Any], message: str,
) -> None:
    target = {"kpi": "online_share", "scope": "province:H56", "years": [2026],
              "threshold": 0.5, **change}
    plan_file(tmp_path, [target])
    with pytest.raises(PlanError, match=message):
        Plans.load(tmp_path)


def test_strictest_target_wins_when_plans_overlap(tmp_path: Path) -> None:
    plan_file(tmp_path, [{"kpi": "online_share", "scope": "province:H56", "years": [2026],
                          "threshold": 0.3}], plan_id="a")
    plan_file(tmp_path, [{"kpi": "online_share", "scope": "province:H56", "years": [2026],
                          "threshold": 0.4}], plan_id="b")
    target = Plans.load(tmp_path).target("online_share", "province:H56", "2026-02")
    assert target is not None and target.plan == "b"

"""Bad input gets a problem+json naming the field and the rule, and changes nothing."""

from typing import Any

import pytest
from sqlalchemy import func, select

from contracts import CASES_TOPIC
from intake.models import OUTBOX, Case
from tests.factories import CENTRE, case_body
from tests.harness import Stack

BAD_CASES: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("unknown agency", {"agency_code": "000.00.99.H56"}, 422, "agency_code", "registered"),
    ("malformed agency", {"agency_code": "H56"}, 422, "agency_code", "string_pattern_mismatch"),
    ("unknown procedure", {"procedure_code": "9.999999"}, 422, "procedure_code", "in_catalogue"),
    ("bad channel", {"channel": "fax"}, 422, "channel", "enum"),
    ("online without level", {"channel": "online"}, 422, "online_level", "required_if_online"),
    ("level without online", {"online_level": "full"}, 422, "online_level", "only_if_online"),
    ("timestamp without offset", {"received_at": "2026-03-02T09:15:00"}, 422, "received_at",
     "timezone_aware"),
    ("future timestamp", {"received_at": "2099-01-01T08:00:00+07:00"}, 422, "received_at",
     "not_in_future"),
    ("unknown field", {"colour": "red"}, 422, "colour", "extra_forbidden"),
    ("bad id number", {"applicant": {"kind": "citizen", "id_number": "12ab"}}, 422,
     "applicant.id_number", "string_pattern_mismatch"),
    ("case code of another agency", {"case_code": "000.00.01.H56-260302-0001"}, 422,
     "case_code", "agency_prefix"),
    ("agency merged away", {"agency_code": "000.00.30.H56",
                            "received_at": "2026-03-02T09:15:00+07:00"}, 422, "agency_code",
     "active"),
]


def assert_nothing_changed(stack: Stack) -> None:
    engine = stack.component("intake").engine
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Case)).scalar_one() == 0
        # Only case events count: the catalogue seeded at start may still be in the outbox.
        assert conn.execute(select(func.count()).select_from(OUTBOX.table).where(
            OUTBOX.table.c.topic == CASES_TOPIC)).scalar_one() == 0
    kpis = stack.client.get("/v1/kpis", params={"kpi": "received", "period": "2026"}).json()
    assert kpis["items"][0]["numerator"] == 0


@pytest.mark.parametrize(("name", "change", "status", "field", "rule"), BAD_CASES,
                         ids=[c[0] for c in BAD_CASES])
def test_bad_case_is_refused_with_problem_json(
    embedded_stack: Stack, name: str, change: dict[str, Any], status: int, field: str, rule: str
) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(**change))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    assert any(e["field"] == field and e["rule"] == rule for e in problem["errors"]), problem
    assert field.split(".")[0] in problem["detail"] or field in str(problem["errors"])
    assert_nothing_changed(embedded_stack)


def test_oversized_body_is_413_and_changes_nothing(embedded_stack: Stack) -> None:
    body = case_body(applicant={"kind": "citizen", "name": "x" * 150,
                                "address": "y" * 3_000_000})
    r = embedded_stack.client.post("/v1/cases", json=body)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "payload_too_large"
    assert_nothing_changed(embedded_stack)


def test_invalid_json_is_422(embedded_stack: Stack) -> None:
    r = embedded_stack.client.post("/v1/cases", content=b"{not json",
                                   headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert_nothing_changed(embedded_stack)


def test_bad_kpi_query_names_the_parameter(embedded_stack: Stack) -> None:
    for params, field in (({"period": "2026-13"}, "period"), ({"scope": "planet:x"}, "scope"),
                          ({"kpi": "happiness"}, "kpi")):
        r = embedded_stack.client.get("/v1/kpis", params=params)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field


def test_valid_case_is_received_with_slip(embedded_stack: Stack) -> None:
    r = embedded_stack.client.post("/v1/cases", json=case_body(
        received_at="2026-03-06T16:00:00+07:00", procedure_code="2.000488"))
    assert r.status_code == 201, r.text
    slip = r.json()
    assert slip["case_code"] == f"{CENTRE}-260306-0001"
    assert slip["status"] == 2 and slip["status_name"] == "Được tiếp nhận"
    assert slip["receipt_date"] == "2026-03-06"
    assert slip["fee_required"] is True and slip["fee_vnd"] > 0
    # Received Friday: the N-th working day strictly after it, weekends skipped.
    assert slip["processing_days"] == 10
    assert slip["due_date"] == "2026-03-20"

"""The agency registry and procedure catalogue with history: the admin API appends versions,
cases keep the terms they were received under, new cases get the new ones, routing follows."""

from typing import Any

from tests.factories import CENTRE, FEE_PROCEDURE, case_body
from tests.harness import Stack

JUSTICE, POLICE = "000.00.02.H56", "000.00.92.H56"


def procedure_version(**changes: Any) -> dict[str, Any]:
    return {
        "name": "Cấp Phiếu lý lịch tư pháp cho công dân Việt Nam, người nước ngoài đang cư trú "
                "tại Việt Nam", "field_code": "justice",
        "field_name": "Tư pháp (chứng thực, lý lịch tư pháp)", "processing_days": 10,
        "fee_vnd": 200000, "online_levels": ["partial", "full"], "handling_level": "province",
        "handling_chain": ["so-tp"], **changes,
    }


def test_a_catalogue_change_applies_to_new_cases_only(embedded_stack: Stack) -> None:
    client = embedded_stack.client
    old = client.post("/v1/cases", json=case_body(procedure_code=FEE_PROCEDURE))
    assert old.status_code == 201
    march = client.post("/v1/cases", json=case_body(
        procedure_code=FEE_PROCEDURE, received_at="2026-03-02T09:00:00+07:00")).json()

    # From 1 April 2026: a higher fee, a shorter time, and police vetting (liên thông).
    change = procedure_version(fee_vnd=250000, processing_days=7,
                               handling_chain=["so-tp", "cong-an"], effective_from="2026-04-01")
    r = client.post(f"/v1/admin/procedures/{FEE_PROCEDURE}/versions", json=change)
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["effective_from"]) == (2, "2026-04-01")
    assert client.post(f"/v1/admin/procedures/{FEE_PROCEDURE}/versions",
                       json=change).status_code == 200  # the same version again: a retry
    history = client.get(f"/v1/admin/procedures/{FEE_PROCEDURE}/versions").json()["items"]
    assert [(v["version"], v["fee_vnd"], v["effective_from"]) for v in history] == [
        (2, 250000, "2026-04-01"), (1, 200000, None)]

    # Cases received before the change keep their terms, whenever they are read.
    for slip in (old.json(), march):
        case = client.get(f"/v1/cases/{slip['case_code']}").json()
        assert (case["fee_vnd"], case["processing_days"]) == (200000, 10)
        assert case["due_date"] == slip["due_date"]
    # A case received on the March date, after the change was recorded, still gets version 1.
    late_entry = client.post("/v1/cases", json=case_body(
        procedure_code=FEE_PROCEDURE, received_at="2026-03-31T16:00:00+07:00")).json()
    assert (late_entry["fee_vnd"], late_entry["processing_days"]) == (200000, 10)
    april = client.post("/v1/cases", json=case_body(
        procedure_code=FEE_PROCEDURE, received_at="2026-04-01T08:00:00+07:00")).json()
    assert (april["fee_vnd"], april["processing_days"], april["due_date"]) == (
        250000, 7, "2026-04-10")
    listed = client.get("/v1/procedures", params={"on": "2026-03-31", "field": "justice"})
    by_code = {p["code"]: p for p in listed.json()["items"]}
    assert by_code[FEE_PROCEDURE]["fee_vnd"] == 200000
    assert {p["code"]: p for p in client.get("/v1/procedures", params={
        "field": "justice"}).json()["items"]}[FEE_PROCEDURE]["fee_vnd"] == 250000

    # Routing received the version over the catalogue topic and plans April cases with it.
    embedded_stack.settled()
    chains = {code: client.get(f"/v1/routing/cases/{code}").json()["chain"]
              for code in (march["case_code"], april["case_code"])}
    assert chains == {march["case_code"]: [JUSTICE], april["case_code"]: [JUSTICE, POLICE]}


def test_bad_versions_are_refused_and_change_nothing(embedded_stack: Stack) -> None:
    client = embedded_stack.client
    url = f"/v1/admin/procedures/{FEE_PROCEDURE}/versions"
    r = client.post(url, json=procedure_version(handling_chain=["so-khong-co"]))
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "known_kind"
    ok = client.post(url, json=procedure_version(fee_vnd=1, effective_from="2026-05-01"))
    assert ok.status_code == 201
    earlier = client.post(url, json=procedure_version(fee_vnd=2, effective_from="2026-04-01"))
    assert earlier.status_code == 422
    assert earlier.json()["errors"][0] == {
        "field": "effective_from", "rule": "not_before_latest",
        "message": earlier.json()["errors"][0]["message"]}
    r = client.post(url, json=procedure_version(processing_days=-1))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "processing_days"
    assert len(client.get(url).json()["items"]) == 2
    assert client.get("/v1/admin/procedures/9.999999/versions").status_code == 404


def test_registry_holds_both_structures_and_successors(embedded_stack: Stack) -> None:
    client = embedded_stack.client

    def agencies(**params: Any) -> dict[str, dict[str, Any]]:
        r = client.get("/v1/agencies", params={"province": "H56", "limit": 1000, **params})
        return {a["code"]: a for a in r.json()["items"]}

    before, after = agencies(on="2025-06-30"), agencies(on="2025-07-01")
    assert {a["level"] for a in before.values() if a["kind"].startswith("ubnd")} == {
        "province", "district", "commune"}
    assert not [a for a in after.values() if a["kind"] == "ubnd-huyen"]
    assert all(a["parent"] == "000.00.00.H56" for a in after.values() if a["kind"] == "ubnd-xa")
    district = before["000.00.30.H56"]
    assert (district["level"], district["valid_to"], district["successor"]) == (
        "district", "2025-06-30", "000.00.60.H56")
    assert before["000.01.30.H56"]["parent"] == "000.00.30.H56"
    assert "000.00.60.H56" not in before and "000.00.60.H56" in after

    # Register a commune merged from 1 January 2027 and retire one into it.
    new = client.post("/v1/admin/agencies/000.00.64.H56/versions", json={
        "name": "Ủy ban nhân dân xã Hoằng Phú", "level": "commune", "kind": "ubnd-xa",
        "parent": "000.00.00.H56", "reception": True, "valid_from": "2027-01-01"})
    assert new.status_code == 201, new.text
    merged = client.post("/v1/admin/agencies/000.00.61.H56/versions", json={
        "name": "Ủy ban nhân dân xã Hoằng Tiến", "level": "commune", "kind": "ubnd-xa",
        "parent": "000.00.00.H56", "reception": True, "valid_from": "2025-07-01",
        "valid_to": "2026-12-31", "successor": "000.00.64.H56"})
    assert merged.status_code == 201 and merged.json()["version"] == 2
    history = client.get("/v1/admin/agencies/000.00.61.H56/versions").json()["items"]
    assert [(v["version"], v["successor"]) for v in history] == [(2, "000.00.64.H56"),
                                                                  (1, None)]
    r = client.post("/v1/cases", json=case_body(agency_code="000.00.61.H56"))
    assert r.status_code == 201  # still exists today
    bad = client.post("/v1/admin/agencies/000.00.65.H56/versions", json={
        "name": "Xã thiếu cấp trên", "level": "commune", "kind": "ubnd-xa"})
    assert bad.status_code == 422 and bad.json()["errors"][0] == {
        "field": "parent", "rule": "required", "message": "a commune unit needs a parent"}
    assert client.get("/v1/admin/agencies/000.00.65.H56/versions").status_code == 404
    assert CENTRE in agencies()

"""The audit trail: who did what to which case, when, from where, with the request id; and
nobody, the application included, can change or delete a row of it."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.factories import FEE_PROCEDURE, case_body, event_body
from tests.harness import StackFactory
from tests.security.support import CENTRE_H05, CENTRE_H56, create, token_of


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_audit_trail_records_and_refuses_changes(stack_factory: StackFactory, db: str) -> None:
    stack = stack_factory("embedded", db)
    mine = create(stack, kind="counter", agency_code=CENTRE_H56)
    other = create(stack, kind="counter", agency_code=CENTRE_H05)
    as_mine = {"Authorization": "Bearer " + token_of(stack.client, mine["client_id"],
                                                     mine["client_secret"])}
    as_other = {"Authorization": "Bearer " + token_of(stack.client, other["client_id"],
                                                      other["client_secret"])}
    now = datetime.now(UTC).isoformat()
    r = stack.client.post("/v1/cases", auth=None, headers={**as_mine, "X-Request-ID": "slip-1"},
                          json=case_body(agency_code=CENTRE_H56, procedure_code=FEE_PROCEDURE,
                                         received_at=now))
    code = r.json()["case_code"]
    event = event_body("supplement_requested", reason="Thiếu bản sao", occurred_at=now)
    assert stack.client.post(f"/v1/cases/{code}/events", json=event, auth=None,
                             headers={**as_other, "X-Request-ID": "probe-1"}).status_code == 403
    assert stack.client.post(f"/v1/cases/{code}/events", json=event, auth=None,
                             headers={**as_mine, "X-Request-ID": "slip-2"}).status_code == 201
    assert stack.client.get(f"/v1/cases/{code}", auth=None, headers=as_mine).status_code == 200

    trail = stack.client.get("/v1/audit", params={"case_code": code}).json()
    rows = [(i["client_id"], i["action"], i["status"], i["request_id"])
            for i in reversed(trail["items"])]
    assert rows[:3] == [
        (mine["client_id"], "case.received", 201, "slip-1"),
        (other["client_id"], "case.supplement_requested", 403, "probe-1"),
        (mine["client_id"], "case.supplement_requested", 201, "slip-2"),
    ]
    assert rows[3][:3] == (mine["client_id"], "case.read", 200)
    assert trail["total"] == 4
    assert all(i["client_ip"] == "testclient" and i["case_code"] == code
               for i in trail["items"])
    assert all(datetime.fromisoformat(i["at"]) <= datetime.now(UTC) for i in trail["items"])
    assert stack.client.get("/v1/audit", params={"client_id": other["client_id"],
                                                 "action": "case.supplement_requested"}
                            ).json()["total"] == 1

    engine = stack.component("intake").engine
    for statement in ("UPDATE intake_audit SET status = 200 WHERE status = 403",
                      "DELETE FROM intake_audit"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert stack.client.get("/v1/audit", params={"case_code": code}).json()["total"] == 4

"""What survives a restart: cases, history, KPIs, and every consumer's position (no event is
counted twice, none is skipped), on every bus and database."""

from tests.factories import case_body
from tests.harness import Stack


def received(stack: Stack) -> tuple[int, int, int]:
    items = stack.client.get("/v1/kpis", params={
        "period": "2026-03", "kpi": ["received", "e_transfer_rate"]}).json()["items"]
    by = {i["kpi"]: i for i in items}
    return (by["received"]["numerator"], by["e_transfer_rate"]["numerator"],
            by["e_transfer_rate"]["denominator"])


def test_restart_keeps_state_and_positions(stack: Stack) -> None:
    codes, bodies = [], []
    for i in range(12):
        bodies.append(case_body(procedure_code="2.000488",
                                received_at=f"2026-03-{2 + i % 5:02d}T09:00:00+07:00"))
        r = stack.client.post("/v1/cases", json=bodies[-1])
        assert r.status_code == 201
        codes.append(r.json()["case_code"])
    stack.settled()
    before = received(stack)
    assert before[0] == 12
    stack.restart()
    stack.settled()
    assert received(stack) == before  # nothing re-applied on resume
    r = stack.client.post("/v1/cases", json=case_body(received_at="2026-03-09T09:00:00+07:00"))
    assert r.status_code == 201
    stack.settled()
    assert received(stack)[0] == 13
    case = stack.client.get(f"/v1/cases/{codes[0]}").json()
    # Received in March: routing's deadline watch has also raised `overdue` by now.
    assert [h["type"] for h in case["history"] if h["type"] != "overdue"] == [
        "received", "transferred"]
    # A retry after the restart is still recognised and changes nothing.
    again = stack.client.post("/v1/cases", json=bodies[0])
    assert (again.status_code, again.json()["case_code"]) == (200, codes[0])
    stack.settled()
    assert received(stack)[0] == 13

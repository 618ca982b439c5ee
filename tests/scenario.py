"""A deterministic scenario of cases and events, posted through the HTTP API."""

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from registry.catalogue import Catalogue

VN = ZoneInfo("Asia/Ho_Chi_Minh")


class Client(Protocol):
    def post(self, url: str, **kwargs: Any) -> Any: ...

    def get(self, url: str, **kwargs: Any) -> Any: ...


@dataclass
class PlannedCase:
    body: dict[str, Any]
    province: str
    field_code: str
    fee: int
    later: list[dict[str, Any]] = field(default_factory=list)
    code: str | None = None


def plan(n: int, *, seed: int, now: datetime, days: int = 70) -> list[PlannedCase]:
    rng = random.Random(seed)
    cat = Catalogue.load()
    start = now - timedelta(days=days)
    cases: list[PlannedCase] = []
    for i in range(n):
        if i % 10 == 0:
            # Around local midnight, where UTC and local dates differ.
            day = (start + timedelta(days=rng.randrange(days - 1))).astimezone(VN)
            received = day.replace(hour=23 if i % 20 else 0, minute=rng.randrange(50, 59)
                                   if i % 20 else rng.randrange(0, 10), second=0, microsecond=0)
        else:
            received = (start + timedelta(seconds=rng.randrange(int((now - start).total_seconds()
                                                                    - 7200)))).astimezone(VN)
        received = min(received, now - timedelta(hours=2))
        on = received.date()
        agencies = [a for a in cat.agencies.values() if a.reception and a.active_on(on)]
        agency = rng.choice(sorted(agencies, key=lambda a: a.code))
        procedure = rng.choice(sorted(cat.procedures.values(), key=lambda p: p.code))
        r = rng.random()
        channel, level = "counter", None
        if r < 0.35 and procedure.online_levels:
            channel, level = "online", rng.choice(list(procedure.online_levels))
        elif r > 0.85:
            channel = "postal"
        by_post = rng.random() < 0.3
        body = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "agency_code": agency.code,
            "procedure_code": procedure.code,
            "channel": channel,
            "online_level": level,
            "received_at": received.isoformat(),
            "return_by_post": by_post,
            "applicant": {"kind": "citizen", "id_number": f"{rng.randrange(10**11, 10**12)}",
                          "name": "Nguyễn Thị Hương"},
        }
        pc = PlannedCase(body=body, province=agency.province, field_code=procedure.field_code,
                         fee=procedure.fee_vnd)
        t = received
        remaining = now - timedelta(minutes=5) - received

        def step(t: datetime, remaining: timedelta = remaining) -> datetime:
            return min(t + remaining / 8 * rng.random(), now - timedelta(minutes=5))

        same_province = sorted(
            a.code for a in cat.agencies.values()
            if a.province == agency.province and a.active_on(on) and a.code != agency.code
        )
        if rng.random() < 0.3 and same_province:
            t = step(t)
            pc.later.append({"type": "transferred", "occurred_at": t,
                             "from_office": agency.code, "to_office": rng.choice(same_province),
                             "method": rng.choice(["electronic", "paper"])})
        if pc.fee and rng.random() < 0.8:
            t = step(t)
            method = rng.choice(["online", "online", "counter", "counter", "post"])
            ev: dict[str, Any] = {"type": "paid", "occurred_at": t, "amount": pc.fee,
                                  "method": method}
            if method == "online":
                ev["portal"] = rng.choice(["national", "provincial"])
            pc.later.append(ev)
        if rng.random() < 0.7:
            t = step(t)
            pc.later.append({"type": "resolved", "occurred_at": t,
                             "result_digitised": rng.random() < 0.5})
            if rng.random() < 0.8:
                t = step(t)
                method = "post" if by_post else rng.choice(["counter", "online"])
                pc.later.append({"type": "returned", "occurred_at": t, "method": method})
        for e in pc.later:
            e["event_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
            e["occurred_at"] = e["occurred_at"].isoformat()
        cases.append(pc)
    return cases


def post_receipts(client: Client, cases: list[PlannedCase]) -> None:
    for pc in cases:
        r = client.post("/v1/cases", json=pc.body)
        assert r.status_code == 201, r.text
        pc.code = r.json()["case_code"]


def post_later_events(client: Client, cases: list[PlannedCase]) -> None:
    for pc in cases:
        for e in pc.later:
            r = client.post(f"/v1/cases/{pc.code}/events", json=e)
            assert r.status_code == 201, (pc.code, e, r.text)


def facts(client: Client, cases: list[PlannedCase]) -> list[dict[str, Any]]:
    """Each case with its full recorded history, for the reference calculator."""
    out = []
    for pc in cases:
        detail = client.get(f"/v1/cases/{pc.code}").json()
        out.append({
            "agency_code": pc.body["agency_code"],
            "province": pc.province,
            "field_code": pc.field_code,
            "procedure_code": pc.body["procedure_code"],
            "channel": pc.body["channel"],
            "online_level": pc.body["online_level"],
            "received_at": datetime.fromisoformat(pc.body["received_at"]),
            "events": [
                {"type": h["type"], "occurred_at": datetime.fromisoformat(h["occurred_at"]),
                 "method": h["details"].get("method"), "source": h["source"]}
                for h in detail["history"][1:]
            ],
        })
    return out

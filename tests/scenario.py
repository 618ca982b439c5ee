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
    # Indexes into `later` of events posted only if the case is then in the given status (a
    # refusal is only possible before routing moved the case into processing).
    only_in_status: dict[int, int] = field(default_factory=dict)


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
            "case_code": pc.code,
            "agency_code": pc.body["agency_code"],
            "province": pc.province,
            "field_code": pc.field_code,
            "procedure_code": pc.body["procedure_code"],
            "channel": pc.body["channel"],
            "online_level": pc.body["online_level"],
            "received_at": datetime.fromisoformat(pc.body["received_at"]),
            "events": [
                {"type": h["type"], "occurred_at": datetime.fromisoformat(h["occurred_at"]),
                 "method": h["details"].get("method"), "source": h["source"],
                 "details": h["details"]}
                for h in detail["history"][1:]
            ],
        })
    return out


# --- whole lifecycles --------------------------------------------------------------------------

RATINGS = ("very_satisfied", "satisfied", "neutral", "dissatisfied")
DISTRICTS_ABOLISHED = datetime(2025, 7, 1, tzinfo=VN)


class _OutOfTime(Exception):
    """The case's next fact would be in the future: its story stops here, still open."""


class _Cursor:
    """A case's clock: each fact a random while after the previous one, some of them placed in
    the minutes around local midnight (where the UTC date differs from the local one)."""

    def __init__(self, rng: random.Random, start: datetime, limit: datetime, pace: float):
        self.rng, self.t, self.limit, self.pace = rng, start, limit, pace

    def next(self, *, days: float | None = None) -> datetime:
        gap = days if days is not None else self.rng.uniform(0.01, self.pace)
        t = self.t + timedelta(days=gap)
        if self.rng.random() < 0.15:
            t = _near_midnight(self.rng, t)
        t = max(t, self.t + timedelta(seconds=1))
        if t > self.limit:
            raise _OutOfTime
        self.t = t
        return t


def _near_midnight(rng: random.Random, t: datetime) -> datetime:
    day = t.astimezone(VN).replace(second=rng.randrange(60), microsecond=0)
    if rng.random() < 0.5:
        return day.replace(hour=23, minute=rng.randrange(50, 60))
    return day.replace(hour=0, minute=rng.randrange(0, 10))


def _receipt(rng: random.Random, i: int, now: datetime, days: int, early: float) -> datetime:
    limit = now - timedelta(hours=2)
    if rng.random() < early:
        # Around the abolition of districts (2025-07-01): a quarter, half-year and month end,
        # and the last days with district attribution.
        t = datetime(2025, 6, 20, 8, tzinfo=VN) + timedelta(minutes=rng.randrange(20 * 24 * 60))
    elif i % 25 == 0:
        # The last minutes of a month and the first of the next, in local time.
        month_start = (now - timedelta(days=rng.randrange(20, days))).astimezone(VN).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0)
        t = month_start + timedelta(minutes=rng.choice([-9, -4, -1, 0, 2, 7]))
    else:
        t = now - timedelta(seconds=rng.randrange(int(timedelta(days=days).total_seconds())))
        if rng.random() < 0.1:
            t = _near_midnight(rng, t)
    return min(t, limit).astimezone(VN)


def plan_lifecycles(
    n: int, *, seed: int, now: datetime, days: int = 75, early: float = 0.04
) -> list[PlannedCase]:
    """Cases with whole, varied lifecycles: transfers, one or two supplement pauses, fee
    requests and payments, apologies, withdrawals, stops, refusals, resolutions with and without
    a digitised result, results digitised weeks later (in a later month), returns and ratings.
    Many cases stay open (some past their due date, some waiting for supplements)."""
    from registry.calendar import WorkingCalendar, default_calendar_dir, due_date

    rng = random.Random(seed)
    cat = Catalogue.load()
    calendar = WorkingCalendar.load(default_calendar_dir())
    limit = now - timedelta(minutes=5)
    procedures = sorted(cat.procedures.values(), key=lambda p: p.code)
    cases: list[PlannedCase] = []
    for i in range(n):
        received = _receipt(rng, i, now, days, early)
        on = received.date()
        agencies = sorted((a for a in cat.agencies.values() if a.reception and a.active_on(on)),
                          key=lambda a: a.code)
        agency = rng.choice(agencies)
        procedure = rng.choice(procedures)
        r = rng.random()
        channel, level = "counter", None
        if r < 0.4 and procedure.online_levels:
            channel, level = "online", rng.choice(list(procedure.online_levels))
        elif r > 0.85:
            channel = "postal"
        by_post = rng.random() < 0.3
        pc = PlannedCase(
            body={
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "agency_code": agency.code, "procedure_code": procedure.code,
                "channel": channel, "online_level": level, "received_at": received.isoformat(),
                "return_by_post": by_post,
                "applicant": {"kind": "citizen", "id_number": f"{rng.randrange(10**11, 10**12)}",
                              "name": "Trần Thị Thủy"},
            },
            province=agency.province, field_code=procedure.field_code, fee=procedure.fee_vnd)
        cursor = _Cursor(rng, received, limit, pace=rng.choice([0.3, 2.0, 5.0, 12.0]))
        others = sorted(a.code for a in cat.agencies.values()
                        if a.province == agency.province and a.active_on(on)
                        and a.code != agency.code)
        pauses: list[tuple[Any, Any]] = []

        def emit(type_: str, at: datetime | None = None, pc: PlannedCase = pc,
                 cursor: _Cursor = cursor, **fields: Any) -> None:
            pc.later.append({"type": type_, "occurred_at": at or cursor.next(), **fields})

        try:
            if rng.random() < 0.03:
                emit("refused", reason="Hồ sơ không thuộc thẩm quyền")
                pc.only_in_status[len(pc.later) - 1] = 2
                raise _OutOfTime
            if others and rng.random() < 0.25:
                emit("transferred", from_office=agency.code, to_office=rng.choice(others),
                     method=rng.choice(["electronic", "electronic", "paper"]))
            cycles = (2 if rng.random() < 0.3 else 1) if rng.random() < 0.25 else 0
            for _ in range(cycles):
                emit("supplement_requested", reason="Thiếu bản sao giấy khai sinh")
                asked = cursor.t
                if rng.random() < 0.06:
                    raise _OutOfTime  # left waiting for the documents
                if rng.random() < 0.06:
                    emit("withdrawn", reason="Công dân rút hồ sơ")
                    raise _OutOfTime
                emit("supplement_received")
                pauses.append((asked.astimezone(VN).date(), cursor.t.astimezone(VN).date()))
            owed = procedure.fee_vnd
            requested = rng.random() < (0.15 if owed else 0.05)
            if requested:
                owed = owed or 50_000
                emit("payment_requested", amount=owed)
                if rng.random() < 0.1:
                    raise _OutOfTime  # waiting for the fee
            if owed and (requested or rng.random() < 0.9):
                method = rng.choice(["online", "online", "counter", "post"])
                extra: dict[str, Any] = {"portal": rng.choice(["national", "provincial"])} \
                    if method == "online" else {}
                emit("paid", amount=owed, method=method, **extra)
            if rng.random() < 0.05:
                emit(rng.choice(["withdrawn", "stopped"]), reason="Dừng theo đề nghị")
                raise _OutOfTime
            if rng.random() < 0.4:
                due = due_date(calendar=calendar, received_on=on,
                               processing_days=procedure.processing_days, pauses=pauses)
                at = cursor.next()
                if at.astimezone(VN).date() > due:
                    emit("apology_issued", at=at, new_due_date=(due + timedelta(days=20))
                         .isoformat(), reason="Chậm do xác minh")
            if rng.random() < 0.18:
                raise _OutOfTime  # still in processing
            digitised = rng.random() < 0.45
            emit("resolved", result_digitised=digitised)
            resolved_at = cursor.t
            late_digitisation = not digitised and rng.random() < 0.45
            if rng.random() < 0.8:
                method = "post" if by_post else rng.choice(["counter", "online"])
                emit("returned", method=method)
            if rng.random() < 0.45:
                emit("rated", rating=rng.choices(RATINGS, weights=[3, 4, 2, 1])[0])
            if late_digitisation:
                # Weeks after the resolution, usually in a later month than it.
                at = max(cursor.t, resolved_at) + timedelta(days=rng.uniform(15, 40))
                if at <= limit:
                    emit("result_digitised", at=at)
        except _OutOfTime:
            pass
        for e in pc.later:
            e["event_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
            e["occurred_at"] = e["occurred_at"].isoformat()
        cases.append(pc)
    return cases


def post_lifecycles(client: Client, cases: list[PlannedCase], *, batch: int = 500) -> None:
    """Post the planned events through `POST /v1/events:batch`, each case's in its order.

    Call after the receipts settled (routing has moved routed cases into processing): a planned
    refusal is dropped from the plan when its case is no longer in the status it needs."""
    for pc in cases:
        for index, status in sorted(pc.only_in_status.items(), reverse=True):
            if client.get(f"/v1/cases/{pc.code}").json()["status"] != status:
                del pc.later[index]
        pc.only_in_status.clear()
    # Round-robin over cases: a batch holds at most one event of each case per round, so a
    # case's events keep their order across batches.
    rounds = max((len(pc.later) for pc in cases), default=0)
    items = [{"case_code": pc.code, **pc.later[k]}
             for k in range(rounds) for pc in cases if k < len(pc.later)]
    for i in range(0, len(items), batch):
        r = client.post("/v1/events:batch", json={"events": items[i : i + batch]})
        assert r.status_code == 200, r.text
        failed = [res for res in r.json()["results"] if res["status"] != 201]
        assert not failed, failed[:5]

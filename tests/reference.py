"""An independent reference calculator: KPIs computed straight from the facts, per DOMAIN.md.

It shares no code with the services: it walks every case's history (as posted, plus routing's
transfers) and counts, for each scope and local period, what the KPI table says. Deadlines are
recomputed here day by day from the raw data files (calendar, procedures, agencies), never taken
from what intake put on the events (`on_time`, `resolution_days`, `due_date`).
"""

import json
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DATA = Path(__file__).resolve().parent.parent / "registry" / "data"
DISTRICTS_ABOLISHED = date(2025, 7, 1)
CLOSED = frozenset({"refused", "withdrawn", "stopped", "resolved", "returned"})
SATISFIED = frozenset({"satisfied", "very_satisfied"})

# kpi -> (numerator counter, denominator counter or None for a count)
RATIOS: dict[str, tuple[str, str | None]] = {
    "received": ("received", None),
    "resolved": ("resolved", None),
    "returned": ("returned", None),
    "online_share": ("received_online", "received"),
    "full_online_share": ("received_full", "received"),
    "online_resolution_share": ("resolved_online", "resolved"),
    "e_transfer_rate": ("transfers_electronic", "transfers"),
    "e_transfer_case_rate": ("resolved_all_electronic", "resolved_with_transfer"),
    "online_payment_rate": ("payments_online", "payments"),
    "postal_intake_share": ("received_postal", "received"),
    "postal_return_share": ("returned_post", "returned"),
    "on_time_rate": ("resolved_on_time", "resolved"),
    "digitisation_rate": ("resolved_digitised", "resolved"),
    "satisfaction_rate": ("ratings_satisfied", "ratings"),
    "mean_resolution_days": ("resolution_days", "resolved"),
}


# --- raw data, read straight from the files --------------------------------------------------


@cache
def _calendar() -> tuple[frozenset[date], frozenset[date]]:
    holidays: set[date] = set()
    make_ups: set[date] = set()
    for path in sorted((DATA / "calendar").glob("*.json")):
        raw = json.loads(path.read_text("utf-8"))
        holidays |= {date.fromisoformat(h["date"]) for h in raw.get("holidays", [])}
        make_ups |= {date.fromisoformat(h["date"]) for h in raw.get("make_up_working_days", [])}
    return frozenset(holidays), frozenset(make_ups)


@cache
def _procedures() -> dict[str, dict[str, Any]]:
    raw = json.loads((DATA / "procedures.json").read_text("utf-8"))
    return {p["code"]: p for p in raw["procedures"]}


@cache
def _agencies() -> dict[str, dict[str, Any]]:
    raw = json.loads((DATA / "agencies.json").read_text("utf-8"))
    return {a["code"]: a for a in raw["agencies"]}


def working(d: date) -> bool:
    holidays, make_ups = _calendar()
    return d in make_ups or (d.weekday() < 5 and d not in holidays)


def working_days_after(start: date, end: date) -> list[date]:
    """Working days d with start < d <= end, one by one."""
    days = []
    d = start + timedelta(days=1)
    while d <= end:
        if working(d):
            days.append(d)
        d += timedelta(days=1)
    return days


def nth_working_day_after(start: date, n: int) -> date:
    d = start
    while n > 0:
        d += timedelta(days=1)
        if working(d):
            n -= 1
    return d


def local(ts: datetime) -> date:
    return ts.astimezone(VN).date()


def district_of(agency_code: str) -> str | None:
    agencies = _agencies()
    current = agencies.get(agency_code)
    while current is not None:
        if current["level"] == "district":
            return str(current["code"])
        current = agencies.get(current["parent"]) if current.get("parent") else None
    return None


# --- one case --------------------------------------------------------------------------------


def pauses(case: dict[str, Any]) -> list[tuple[date, date]]:
    """(requested on, received on) local dates of every completed supplement pause."""
    out, opened = [], None
    for e in case["events"]:
        if e["type"] == "supplement_requested":
            opened = local(e["occurred_at"])
        elif e["type"] == "supplement_received" and opened is not None:
            out.append((opened, local(e["occurred_at"])))
            opened = None
    return out


def paused_days(case: dict[str, Any]) -> set[date]:
    return {d for a, b in pauses(case) for d in working_days_after(a, b)}


def due_date(case: dict[str, Any], upto: datetime | None = None) -> date:
    """The appointment date: N working days after receipt, plus the paused working days of the
    pauses completed by `upto` (all of them when None)."""
    received_on = local(case["received_at"])
    n = _procedures()[case["procedure_code"]]["processing_days"]
    facts = case if upto is None else {
        **case, "events": [e for e in case["events"] if e["occurred_at"] <= upto]}
    return nth_working_day_after(nth_working_day_after(received_on, n), len(paused_days(facts)))


def resolution(case: dict[str, Any]) -> tuple[datetime, bool, int] | None:
    """(resolved at, on time, working days taken) for a resolved case."""
    at = next((i for i, e in enumerate(case["events"]) if e["type"] == "resolved"), None)
    if at is None:
        return None
    resolved = case["events"][at]
    # What was recorded on the case before its resolution (routing's transfers carry the time
    # routing sent them, which may be later than a back-dated resolution posted after them).
    before = case["events"][:at]
    requests = sum(1 for e in before if e["type"] == "supplement_requested")
    apologised = any(e["type"] == "apology_issued" for e in before)
    resolved_on = local(resolved["occurred_at"])
    # One supplement request is allowed; a second one, or an apology for missing the date,
    # makes the case late whatever its dates.
    on_time = requests <= 1 and not apologised and resolved_on <= due_date(case)
    received_on = local(case["received_at"])
    taken = [d for d in working_days_after(received_on, resolved_on)
             if d not in paused_days(case)]
    return resolved["occurred_at"], on_time, len(taken)


def is_overdue(case: dict[str, Any], now: datetime) -> bool:
    """Open, not waiting for supplements, and its (extended) due date is before today."""
    state = "open"
    for e in case["events"]:
        if e["occurred_at"] > now:
            break
        if e["type"] in CLOSED:
            state = "closed"
        elif e["type"] == "supplement_requested":
            state = "paused"
        elif e["type"] == "supplement_received":
            state = "open"
    return state == "open" and due_date(case, upto=now) < local(now)


# --- every KPI -------------------------------------------------------------------------------


def _periods(ts: datetime) -> list[str]:
    d = local(ts)
    return [d.isoformat(), f"{d:%Y-%m}", f"{d.year}-Q{(d.month - 1) // 3 + 1}", str(d.year)]


def scopes(case: dict[str, Any]) -> list[str]:
    out = ["all", f"province:{case['province']}", f"agency:{case['agency_code']}",
           f"field:{case['field_code']}", f"procedure:{case['procedure_code']}"]
    district = district_of(case["agency_code"])
    if district and local(case["received_at"]) < DISTRICTS_ABOLISHED:
        out.append(f"district:{district}")
    out.append(f"province-field:{case['province']}/{case['field_code']}")
    return out


def counters(cases: Iterable[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(counter, scope, period) -> value, for every counter a KPI is made of."""
    c: Counter[tuple[str, str, str]] = Counter()

    def add(case: dict[str, Any], ts: datetime, name: str, n: int = 1) -> None:
        for scope in scopes(case):
            for period in _periods(ts):
                c[(name, scope, period)] += n

    for case in cases:
        received_at = case["received_at"]
        add(case, received_at, "received")
        if case["channel"] == "online":
            add(case, received_at, "received_online")
            if case["online_level"] == "full":
                add(case, received_at, "received_full")
        if case["channel"] == "postal":
            add(case, received_at, "received_postal")
        for e in case["events"]:
            details = e.get("details") or {}
            if e["type"] == "transferred":
                add(case, e["occurred_at"], "transfers")
                if e["method"] == "electronic":
                    add(case, e["occurred_at"], "transfers_electronic")
            elif e["type"] == "paid":
                add(case, e["occurred_at"], "payments")
                if e["method"] == "online":
                    add(case, e["occurred_at"], "payments_online")
            elif e["type"] == "returned":
                add(case, e["occurred_at"], "returned")
                if e["method"] == "post":
                    add(case, e["occurred_at"], "returned_post")
            elif e["type"] == "rated":
                add(case, e["occurred_at"], "ratings")
                if details.get("rating") in SATISFIED:
                    add(case, e["occurred_at"], "ratings_satisfied")
        res = resolution(case)
        if res is None:
            continue
        resolved_at, on_time, days = res
        add(case, resolved_at, "resolved")
        add(case, resolved_at, "resolution_days", days)
        if case["channel"] == "online":
            add(case, resolved_at, "resolved_online")
        if on_time:
            add(case, resolved_at, "resolved_on_time")
        # A result digitised later still counts for the period of the resolution.
        if any(e["type"] == "result_digitised"
               or (e["type"] == "resolved" and (e.get("details") or {}).get("result_digitised"))
               for e in case["events"]):
            add(case, resolved_at, "resolved_digitised")
        upto = next(i for i, e in enumerate(case["events"]) if e["type"] == "resolved")
        transfers = [e for e in case["events"][:upto] if e["type"] == "transferred"]
        if transfers:
            add(case, resolved_at, "resolved_with_transfer")
            if all(e["method"] == "electronic" for e in transfers):
                add(case, resolved_at, "resolved_all_electronic")
    return c


def compute(cases: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[int, int | None]]:
    """(kpi, scope, period) -> (numerator, denominator) for every period KPI (all but the live
    overdue backlog, see `overdue_open`).

    Each case: agency_code, province, field_code, procedure_code, channel, online_level,
    received_at, and `events`: [{type, occurred_at, method?, details?}] in order.
    """
    c = counters(cases)
    keys = {(scope, period) for (_, scope, period) in c}
    out: dict[tuple[str, str, str], tuple[int, int | None]] = {}
    for scope, period in keys:
        for kpi, (num, den) in RATIOS.items():
            out[(kpi, scope, period)] = (
                c[(num, scope, period)], c[(den, scope, period)] if den else None
            )
    return out


def overdue_open(cases: list[dict[str, Any]], now: datetime) -> Counter[str]:
    """scope -> open cases past their due date at `now` (the live backlog)."""
    out: Counter[str] = Counter()
    for case in cases:
        if is_overdue(case, now):
            for scope in scopes(case):
                out[scope] += 1
    return out

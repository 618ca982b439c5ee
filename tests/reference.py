"""An independent reference calculator: KPIs computed straight from the facts, per DOMAIN.md.

It shares no code with the metrics service: it walks every case's history (as posted, plus
routing's transfers) and counts, for each scope and local period, what the KPI table says.
"""

from collections import Counter
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _periods(ts: datetime) -> list[str]:
    d: date = ts.astimezone(VN).date()
    return [d.isoformat(), f"{d:%Y-%m}", f"{d.year}-Q{(d.month - 1) // 3 + 1}", str(d.year)]


def _scopes(case: dict[str, Any]) -> list[str]:
    return ["all", f"province:{case['province']}", f"agency:{case['agency_code']}",
            f"field:{case['field_code']}", f"procedure:{case['procedure_code']}"]


def compute(cases: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[int, int | None]]:
    """(kpi, scope, period) -> (numerator, denominator) for the KPIs of the scenario.

    Each case: agency_code, province, field_code, procedure_code, channel, online_level,
    received_at, and `events`: [{type, occurred_at, method?}] in order.
    """
    c: Counter[tuple[str, str, str]] = Counter()

    def add(case: dict[str, Any], ts: datetime, name: str) -> None:
        for scope in _scopes(case):
            for period in _periods(ts):
                c[(name, scope, period)] += 1

    for case in cases:
        add(case, case["received_at"], "received")
        if case["channel"] == "online":
            add(case, case["received_at"], "received_online")
            if case["online_level"] == "full":
                add(case, case["received_at"], "received_full")
        if case["channel"] == "postal":
            add(case, case["received_at"], "received_postal")
        for e in case["events"]:
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
            elif e["type"] == "resolved":
                add(case, e["occurred_at"], "resolved")
                if case["channel"] == "online":
                    add(case, e["occurred_at"], "resolved_online")

    ratios = {
        "received": ("received", None),
        "resolved": ("resolved", None),
        "returned": ("returned", None),
        "online_share": ("received_online", "received"),
        "full_online_share": ("received_full", "received"),
        "online_resolution_share": ("resolved_online", "resolved"),
        "e_transfer_rate": ("transfers_electronic", "transfers"),
        "online_payment_rate": ("payments_online", "payments"),
        "postal_intake_share": ("received_postal", "received"),
        "postal_return_share": ("returned_post", "returned"),
    }
    keys = {(scope, period) for (_, scope, period) in c}
    out: dict[tuple[str, str, str], tuple[int, int | None]] = {}
    for scope, period in keys:
        for kpi, (num, den) in ratios.items():
            out[(kpi, scope, period)] = (
                c[(num, scope, period)], c[(den, scope, period)] if den else None
            )
    return out

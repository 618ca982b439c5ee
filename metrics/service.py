"""KPI queries: figures come from the maintained counters, never from scanning cases."""

import csv
import hashlib
import io
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlmodel import Session, col, select

from metrics.kpis import KPIS, Kpi
from metrics.models import Counter
from metrics.periods import LIVE, current_month, is_valid_period, stored_periods
from metrics.targets import SCOPE, Plans
from services.errors import ValidationFailed

CSV_COLUMNS = ("kpi", "scope", "period", "numerator", "denominator", "value", "unit", "target",
               "comparison", "gap", "status", "plan")


def _invalid(field: str, rule: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": field, "rule": rule, "message": message}])


def validate_query(
    kpis: Sequence[str] | None, scope: str, period: str | None, now: datetime
) -> tuple[list[Kpi], str, str]:
    names = list(kpis) if kpis else list(KPIS)
    unknown = [k for k in names if k not in KPIS]
    if unknown:
        raise _invalid("kpi", "enum", f"unknown KPI(s) {', '.join(unknown)}; known: "
                       f"{', '.join(KPIS)}")
    if not SCOPE.match(scope):
        raise _invalid("scope", "format", "scope must be all, kind:code with kind one of "
                       "province, agency, district, field, procedure, or "
                       "province-field:H56/land (a field within a province)")
    period = period or current_month(now)
    if not is_valid_period(period):
        raise _invalid("period", "format",
                       "period must be YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD (local time)")
    return [KPIS[k] for k in names], scope, period


def query_kpis(
    *, session: Session, kpis: Sequence[Kpi], scope: str, period: str
) -> list[dict[str, Any]]:
    wanted = {k.numerator for k in kpis} | {k.denominator for k in kpis if k.denominator}
    stored = stored_periods(period)
    # Columns, not mapped objects: the answer needs three values a row.
    rows = session.execute(
        select(col(Counter.name), col(Counter.period), col(Counter.value)).where(
            col(Counter.scope) == scope,
            col(Counter.period).in_([*stored, LIVE]),
            col(Counter.name).in_(wanted),
        )
    )
    # A quarter's or a year's rows (its months) add up under the period asked for.
    values: dict[tuple[str, str], int] = {}
    for name, p, value in rows:
        key = (name, LIVE if p == LIVE else period)
        values[key] = values.get(key, 0) + value
    items = []
    for k in kpis:
        p = LIVE if k.name == "overdue_open" else period
        num = values.get((k.numerator, p), 0)
        if k.denominator is None:
            items.append(_item(k, scope, p, num, None, num))
            continue
        den = values.get((k.denominator, p), 0)
        items.append(_item(k, scope, p, num, den, num / den if den else None))
    return items


def _item(k: Kpi, scope: str, period: str, num: int, den: int | None,
          value: float | None) -> dict[str, Any]:
    return {"kpi": k.name, "scope": scope, "period": period, "numerator": num,
            "denominator": den, "value": value, "unit": k.unit}


def with_targets(items: list[dict[str, Any]], plans: Plans) -> list[dict[str, Any]]:
    """Each figure with the target a plan sets for it in the period's year, the gap (value
    minus target; negative is behind) and whether it is met. No target: the keys are absent;
    a target but no cases yet: gap and status are null."""
    out = []
    for item in items:
        target = None if item["period"] == LIVE else plans.target(
            item["kpi"], item["scope"], item["period"])
        if target is None:
            out.append(item)
            continue
        num, den = item["numerator"], item["denominator"]
        measured = den is not None and den > 0
        out.append({
            **item,
            "target": float(target.threshold),
            "comparison": target.comparison,
            "gap": float(Fraction(num, den) - target.threshold) if measured else None,
            "status": ("met" if target.met(num, den) else "behind") if measured else None,
            "plan": {"id": target.plan, "document": target.document},
        })
    return out


def to_csv(items: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerow(CSV_COLUMNS)
    for item in items:
        row = {**item, "plan": (item.get("plan") or {}).get("id")}
        writer.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    return buffer.getvalue()


def etag(body: bytes) -> str:
    """A strong validator of the exact representation: the figures, their targets and the
    format all go into the hash, so any change to any of them changes it."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return "*" in candidates or tag in {c.removeprefix("W/") for c in candidates}

"""KPI queries: figures come from the maintained counters, never from scanning cases."""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from metrics.kpis import KPIS, Kpi
from metrics.models import Counter
from metrics.periods import LIVE, current_month, is_valid_period
from services.errors import ValidationFailed

_SCOPE = re.compile(r"^(all|(province|agency|district|field|procedure):[0-9A-Za-z._\-]{1,40})$")


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
    if not _SCOPE.match(scope):
        raise _invalid("scope", "format", "scope must be all or kind:code with kind one of "
                       "province, agency, district, field, procedure")
    period = period or current_month(now)
    if not is_valid_period(period):
        raise _invalid("period", "format",
                       "period must be YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD (local time)")
    return [KPIS[k] for k in names], scope, period


def query_kpis(
    *, session: Session, kpis: Sequence[Kpi], scope: str, period: str
) -> list[dict[str, Any]]:
    wanted = {k.numerator for k in kpis} | {k.denominator for k in kpis if k.denominator}
    periods = {period, LIVE}
    rows = session.exec(
        select(Counter).where(
            Counter.scope == scope,
            Counter.period.in_(periods),  # type: ignore[attr-defined]
            Counter.name.in_(wanted),  # type: ignore[attr-defined]
        )
    )
    values = {(r.name, r.period): r.value for r in rows}
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

"""Read-only views of metrics' projection that the dashboard needs and a portal does not.

Breakdown figures come from the same counters and the same `query_kpis` as `GET /v1/kpis`, so a
row in the drill-down table and the tiles of the scope it opens can never disagree.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from metrics import service
from metrics.kpis import Kpi
from metrics.models import Counter, ProjectedCase
from metrics.periods import LIVE, local_date, stored_periods
from services.errors import ValidationFailed

# The column of a projected case that each scope kind selects on.
_SCOPE_COLUMNS = {
    "province": ProjectedCase.province_code,
    "agency": ProjectedCase.agency_code,
    "district": ProjectedCase.district_code,
    "field": ProjectedCase.field_code,
    "procedure": ProjectedCase.procedure_code,
}


def child_kind(scope: str) -> str:
    """What a scope drills down into: all → provinces, a province → its agencies."""
    if scope == "all":
        return "province"
    if scope.startswith("province:"):
        return "agency"
    message = "breakdown is by province for scope all and by agency for a province scope"
    raise ValidationFailed(message, errors=[{"field": "scope", "rule": "drillable",
                                             "message": message}])


def _is_child(parent: str, child_code: str) -> bool:
    if parent == "all":
        return True
    # An agency code's rightmost group is its province (Decision 20/2020/QĐ-TTg):
    # 000.00.06.H56 belongs to H56.
    return child_code.rsplit(".", 1)[-1] == parent.split(":", 1)[1]


def breakdown(
    *, session: Session, kpis: Sequence[Kpi], scope: str, period: str
) -> list[dict[str, Any]]:
    """The KPIs of every child of `scope` that has a figure in `period` (or a live backlog)."""
    kind = child_kind(scope)
    names = {k.numerator for k in kpis} | {k.denominator for k in kpis if k.denominator}
    rows = session.exec(
        select(Counter.scope).distinct().where(
            col(Counter.name).in_(names),
            col(Counter.period).in_([*stored_periods(period), LIVE]),
            col(Counter.scope).startswith(f"{kind}:"),
            Counter.value != 0,
        )
    ).all()
    children = sorted(s for s in rows if _is_child(scope, s.split(":", 1)[1]))
    return [
        {"scope": child, "code": child.split(":", 1)[1],
         "items": service.query_kpis(session=session, kpis=kpis, scope=child, period=period)}
        for child in children
    ]


def overdue_cases(*, session: Session, scope: str, limit: int, offset: int) -> dict[str, Any]:
    """The live overdue backlog of `scope`, oldest receipt first. Codes only: metrics holds no
    personal data."""
    where: list[ColumnElement[bool]] = [col(ProjectedCase.overdue).is_(True)]
    kind, _, code = scope.partition(":")
    if kind == "province-field":
        # A field within a province, e.g. land in Thanh Hóa (plans set targets per field).
        province, field = code.split("/", 1)
        where += [col(ProjectedCase.province_code) == province,
                  col(ProjectedCase.field_code) == field]
    elif kind != "all":
        where.append(col(_SCOPE_COLUMNS[kind]) == code)
    total = session.exec(select(func.count()).select_from(ProjectedCase).where(*where)).one()
    rows = session.exec(
        select(ProjectedCase).where(*where)
        .order_by(col(ProjectedCase.received_at), col(ProjectedCase.case_code))
        .offset(offset).limit(limit)
    ).all()
    items = [
        {"case_code": c.case_code, "agency_code": c.agency_code,
         "procedure_code": c.procedure_code, "field_code": c.field_code,
         "channel": c.channel, "status": c.status,
         "received_at": c.received_at.isoformat(),
         "received_on": local_date(c.received_at).isoformat()}
        for c in rows
    ]
    return {"scope": scope, "total": total, "limit": limit, "offset": offset, "items": items}

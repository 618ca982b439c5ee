"""A Decision 766/QĐ-TTg style score for a unit and period (DOMAIN.md).

Six groups, 100 points. An indicator with ratio R and target T scores the group's full points
when R >= T, otherwise R x max / T. Case events measure five groups; publicity (CKMB) is about
what a unit publishes, not what happens to cases, so it is reported as not measurable and left
out of the total rather than guessed. T is the target a loaded plan sets for the KPI, scope
and year, else 100% (the index rewards every case on time, online, digitised, …).

The national portal names the groups CKMB, TDGQ, TTTT, CLGQ, MDHL, MDSH and the total
TONG_SCORE; CLGQ is the only name left for the online-service group, so it is used for it.
"""

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlmodel import Session

from metrics import service
from metrics.kpis import KPIS
from metrics.targets import Plans

DEFAULT_TARGET = Fraction(1)


@dataclass(frozen=True)
class Group:
    code: str
    group: str
    name: str
    max_points: int
    kpi: str | None
    why_not: str = ""


GROUPS: tuple[Group, ...] = (
    Group("CKMB", "publicity", "Công khai, minh bạch", 18, None,
          "Publicity of procedures, fees and results on the portals is not a fact recorded on "
          "cases; no case event measures it."),
    Group("TDGQ", "progress", "Tiến độ giải quyết", 20, "on_time_rate"),
    Group("CLGQ", "online_service", "Cung cấp dịch vụ công trực tuyến", 12, "online_share"),
    Group("TTTT", "online_payment", "Thanh toán trực tuyến", 10, "online_payment_rate"),
    Group("MDSH", "digitisation", "Số hóa hồ sơ, kết quả", 22, "digitisation_rate"),
    Group("MDHL", "satisfaction", "Mức độ hài lòng", 18, "satisfaction_rate"),
)


def points(numerator: int, denominator: int, target: Fraction, max_points: int) -> Fraction:
    ratio = Fraction(numerator, denominator)
    if ratio >= target:
        return Fraction(max_points)
    return ratio * max_points / target


def score(*, session: Session, plans: Plans, scope: str, period: str) -> dict[str, Any]:
    kpis = [KPIS[g.kpi] for g in GROUPS if g.kpi]
    figures = {i["kpi"]: i for i in service.query_kpis(session=session, kpis=kpis, scope=scope,
                                                       period=period)}
    groups: list[dict[str, Any]] = []
    total, reachable = Fraction(0), 0
    for g in GROUPS:
        entry: dict[str, Any] = {"code": g.code, "group": g.group, "name": g.name,
                                 "max_points": g.max_points}
        if g.kpi is None:
            groups.append({**entry, "measurable": False, "points": None, "why": g.why_not})
            continue
        item = figures[g.kpi]
        plan_target = plans.target(g.kpi, scope, period)
        target = plan_target.threshold if plan_target else DEFAULT_TARGET
        num, den = item["numerator"], item["denominator"]
        got = points(num, den, target, g.max_points) if den else None
        if got is not None:
            total += got
            reachable += g.max_points
        groups.append({
            **entry, "measurable": True, "kpi": g.kpi, "numerator": num, "denominator": den,
            "ratio": item["value"], "target": float(target),
            "target_source": plan_target.plan if plan_target else "default",
            "points": None if got is None else round(float(got), 2),
            "formula": f"{g.max_points} if R >= T else R x {g.max_points} / T "
                       f"(R = {g.kpi}, T = {float(target):g})",
        })
    fields: dict[str, float | None] = {g["code"]: g["points"] for g in groups}
    fields["TONG_SCORE"] = round(float(total), 2) if reachable else None
    return {
        "scope": scope, "period": period, "groups": groups, "fields": fields,
        "total": fields["TONG_SCORE"],
        "max_points": sum(g.max_points for g in GROUPS),
        # What the total is out of: the groups measured and with cases in the period.
        "max_measured": reachable,
    }

"""Provincial reform plans as data: which KPI, for which scope and years, must reach what.

A plan is a JSON file (`metrics/plans/*.json`, more from `MOTCUA_METRICS_PLANS_DIR`): the
province, the source document, and its targets. A target applies to every period of its years
(a yearly target read against a month is the running figure, not a pro-rated one). Indicators
a plan sets that case events cannot measure are kept in the file under `not_measurable`, with
the reason, so nobody mistakes their absence for an oversight.
"""

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from metrics.kpis import KPIS

BUILT_IN = Path(__file__).parent / "plans"
COMPARISONS = (">=", ">")
SCOPE = re.compile(r"^(all|(province|agency|district|field|procedure):[0-9A-Za-z._\-]{1,40}"
                   r"|province-field:[0-9A-Za-z]{1,8}/[0-9A-Za-z._\-]{1,40})$")


class PlanError(ValueError):
    """A plan file that cannot be trusted: refuse to start rather than report wrong targets."""


@dataclass(frozen=True)
class Target:
    plan: str
    kpi: str
    scope: str
    years: tuple[int, ...]
    threshold: Fraction
    comparison: str
    document: str
    quote: str

    def met(self, numerator: int, denominator: int) -> bool:
        value = Fraction(numerator, denominator)
        return value >= self.threshold if self.comparison == ">=" else value > self.threshold

    def public(self) -> dict[str, Any]:
        return {"plan": self.plan, "kpi": self.kpi, "scope": self.scope,
                "years": list(self.years), "threshold": float(self.threshold),
                "comparison": self.comparison, "document": self.document, "quote": self.quote}


@dataclass(frozen=True)
class Plan:
    id: str
    title: str
    province: str
    province_name: str
    document: str
    issued_by: str
    issued_on: str | None
    seed: str | None
    targets: tuple[Target, ...]
    not_measurable: tuple[dict[str, Any], ...]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "province": self.province,
                "province_name": self.province_name, "document": self.document,
                "issued_by": self.issued_by, "issued_on": self.issued_on, "seed": self.seed,
                "targets": [t.public() for t in self.targets],
                "not_measurable": list(self.not_measurable)}


class Plans:
    def __init__(self, plans: list[Plan]) -> None:
        self.plans = sorted(plans, key=lambda p: p.id)
        self._index: dict[tuple[str, str, int], list[Target]] = {}
        for plan in self.plans:
            for t in plan.targets:
                for year in t.years:
                    self._index.setdefault((t.kpi, t.scope, year), []).append(t)

    @classmethod
    def load(cls, *directories: Path | None) -> "Plans":
        plans: list[Plan] = []
        for directory in (d for d in directories if d is not None):
            for path in sorted(directory.glob("*.json")):
                plans.append(_read(path))
        ids = [p.id for p in plans]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise PlanError(f"plan id(s) loaded twice: {', '.join(dupes)}")
        return cls(plans)

    def target(self, kpi: str, scope: str, period: str) -> Target | None:
        """The strictest target for the KPI and scope in the period's year, if any plan sets
        one (two plans may cover the same year; reporting against the lower would flatter)."""
        found = self._index.get((kpi, scope, int(period[:4])))
        if not found:
            return None
        return max(found, key=lambda t: (t.threshold, t.comparison == ">"))

    def for_year(self, year: int) -> list[Target]:
        """The target in force for each (KPI, scope) in `year` (the strictest, as `target`)."""
        keys = sorted((kpi, scope) for (kpi, scope, y) in self._index if y == year)
        found = (self.target(kpi, scope, f"{year:04d}") for kpi, scope in keys)
        return [t for t in found if t is not None]


def _read(path: Path) -> Plan:
    try:
        raw = json.loads(path.read_text("utf-8"), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable JSON plan: {exc}") from exc

    def need(obj: dict[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise PlanError(f"{path}: {where} has no '{key}'")
        return obj[key]

    plan_id = str(need(raw, "id", "the plan"))
    source = need(raw, "source", "the plan")
    targets = []
    for i, t in enumerate(need(raw, "targets", "the plan")):
        where = f"targets[{i}]"
        kpi = need(t, "kpi", where)
        if kpi not in KPIS or KPIS[kpi].denominator is None:
            raise PlanError(f"{path}: {where}.kpi {kpi!r} is not a ratio KPI")
        scope = need(t, "scope", where)
        if not SCOPE.match(scope):
            raise PlanError(f"{path}: {where}.scope {scope!r} is not a scope")
        comparison = t.get("comparison", ">=")
        if comparison not in COMPARISONS:
            raise PlanError(f"{path}: {where}.comparison must be one of {COMPARISONS}")
        threshold = need(t, "threshold", where)
        if not isinstance(threshold, Decimal | int) or not 0 <= threshold <= 1:
            raise PlanError(f"{path}: {where}.threshold must be a ratio between 0 and 1")
        years = need(t, "years", where)
        if not years or not all(isinstance(y, int) and 2000 <= y <= 2100 for y in years):
            raise PlanError(f"{path}: {where}.years must be a list of years")
        targets.append(Target(plan=plan_id, kpi=kpi, scope=scope, years=tuple(years),
                              threshold=Fraction(str(threshold)), comparison=comparison,
                              document=source.get("document", ""), quote=t.get("quote", "")))
    return Plan(id=plan_id, title=need(raw, "title", "the plan"),
                province=need(raw, "province", "the plan"),
                province_name=raw.get("province_name", ""),
                document=need(source, "document", "source"),
                issued_by=source.get("issued_by", ""), issued_on=source.get("issued_on"),
                seed=source.get("seed"), targets=tuple(targets),
                not_measurable=tuple(_plain(raw.get("not_measurable", []))))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

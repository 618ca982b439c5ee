"""Metrics' Prometheus instruments: projection progress, freshness and live KPI gauges.

Cardinality: KPI gauges carry `kpi` (16 values) and `province` (at most 63 + "all");
never agency, procedure, field or case labels (docs/monitoring.md).
"""

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session, or_, select

from metrics.kpis import KPIS
from metrics.models import Counter as CounterRow
from metrics.periods import LIVE, current_month
from metrics.targets import Plans
from services.clock import Clock
from services.observability import BatchHistogram


class MetricsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_projected = Counter(
            "motcua_metrics_events_projected",
            "Case events folded into the KPI projection, by type.",
            ["type"],
            registry=registry,
        )
        self.freshness = BatchHistogram(
            "motcua_metrics_projection_freshness_seconds",
            "Time from intake recording an event to the KPIs reflecting it.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
            registry=registry,
        )


class KpiGaugeCollector(Collector):
    """Current local month's KPIs for every province and for the whole deployment."""

    def __init__(self, engine: Callable[[], Engine], clock: Clock, plans: Plans) -> None:
        self._engine = engine
        self._clock = clock
        self._plans = plans

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        month = current_month(now)
        with Session(self._engine()) as session:
            rows = session.exec(
                select(CounterRow).where(
                    CounterRow.period.in_([month, LIVE]),  # type: ignore[attr-defined]
                    or_(CounterRow.scope == "all",
                        CounterRow.scope.startswith("province:")),
                )
            ).all()
        values: dict[tuple[str, str, str], int] = {(r.name, r.scope, r.period): r.value
                                                   for r in rows}
        scopes = sorted({s for _, s, _ in values} | {"all"})
        value = GaugeMetricFamily("motcua_kpi_value",
                                  "KPI value for the current local month (ratio, count or days).",
                                  labels=["kpi", "province"])
        num = GaugeMetricFamily("motcua_kpi_numerator",
                                "KPI numerator for the current local month.",
                                labels=["kpi", "province"])
        den = GaugeMetricFamily("motcua_kpi_denominator",
                                "KPI denominator for the current local month.",
                                labels=["kpi", "province"])
        for k in KPIS.values():
            period = LIVE if k.name == "overdue_open" else month
            for scope in scopes:
                province = scope.split(":", 1)[1] if ":" in scope else "all"
                n = values.get((k.numerator, scope, period), 0)
                num.add_metric([k.name, province], n)
                if k.denominator is None:
                    value.add_metric([k.name, province], n)
                    continue
                d = values.get((k.denominator, scope, period), 0)
                den.add_metric([k.name, province], d)
                if d:
                    value.add_metric([k.name, province], n / d)
        target = GaugeMetricFamily(
            "motcua_kpi_target",
            "Target the province's loaded plan sets for the KPI this local year (ratio).",
            labels=["kpi", "province"])
        year = month[:4]
        for t in self._plans.for_year(int(year)):
            if t.scope.startswith("province:"):
                target.add_metric([t.kpi, t.scope.split(":", 1)[1]], float(t.threshold))
        yield from (value, num, den, target)

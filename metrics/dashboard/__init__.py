"""The built-in KPI dashboard: one HTML page and its static files, served by metrics.

The page reads the same JSON API a portal does (`/v1/kpis`, the agency registry) plus two
read-only views of metrics' projection that a page needs and a portal does not: the figures of
a scope's children for drill-down (`/v1/breakdown`) and the overdue backlog case by case
(`/v1/overdue`).
"""

from metrics.dashboard.router import router

__all__ = ["router"]

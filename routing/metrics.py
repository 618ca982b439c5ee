"""Routing's Prometheus instruments, declared once."""

from prometheus_client import CollectorRegistry, Counter


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.transfers = Counter(
            "motcua_routing_transfers",
            "Electronic transfers routing made along handling chains.",
            registry=registry,
        )
        self.handoffs = Counter(
            "motcua_routing_handoffs",
            "Handoffs by the office holding a case that sent it to the next office.",
            registry=registry,
        )
        self.overdue_raised = Counter(
            "motcua_routing_overdue_raised",
            "Overdue notices raised for open cases past their due date.",
            registry=registry,
        )
        self.unroutable = Counter(
            "motcua_routing_unroutable_cases",
            "Received cases whose handling office could not be resolved.",
            registry=registry,
        )

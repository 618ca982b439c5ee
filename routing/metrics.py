"""Routing's Prometheus instruments, declared once."""

from prometheus_client import CollectorRegistry, Counter


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.transfers = Counter(
            "motcua_routing_transfers",
            "Electronic transfers routing made along handling chains.",
            registry=registry,
        )
        self.unroutable = Counter(
            "motcua_routing_unroutable_cases",
            "Received cases whose handling office could not be resolved.",
            registry=registry,
        )

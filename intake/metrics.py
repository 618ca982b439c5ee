"""Intake's Prometheus instruments, declared once."""

from prometheus_client import CollectorRegistry, Counter


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cases_received = Counter(
            "motcua_intake_cases_received",
            "Cases received, by channel.",
            ["channel"],
            registry=registry,
        )
        self.events_recorded = Counter(
            "motcua_intake_events_recorded",
            "Events recorded on cases (received included), by type.",
            ["type"],
            registry=registry,
        )
        self.retries_replayed = Counter(
            "motcua_intake_idempotent_replays",
            "Retried requests answered from the stored response.",
            registry=registry,
        )
        self.write_transactions = Counter(
            "motcua_intake_write_transactions",
            "Group-commit transactions, by the writer that ran them: loop (PostgreSQL, "
            "from the event loop) or thread (SQLite, and every batch the loop writer hands "
            "over: a changed catalogue, a supplied case code taken, a clash, a lost "
            "connection).",
            ["writer"],
            registry=registry,
        )
        self.system_events_rejected = Counter(
            "motcua_intake_system_events_rejected",
            "Facts from other services that the case's state did not allow, by type.",
            ["type"],
            registry=registry,
        )

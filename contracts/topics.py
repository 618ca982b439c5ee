"""Kafka topic names and their roles. Partition counts are deployment settings, not contract."""

from dataclasses import dataclass

# The authoritative case log: written only by intake (the owner of case state), keyed by case code.
CASES_TOPIC = "motcua.cases.v1"
# Facts routing establishes (transfers along a handling chain, overdue notices); intake records
# them on the case log, so one service stays the single writer of case state.
ROUTING_TOPIC = "motcua.routing.v1"
# Versions of agencies and procedures as intake (the owner of the catalogue) records them; keyed
# by agency or procedure code. Routing keeps its own copy from it.
CATALOGUE_TOPIC = "motcua.catalogue.v1"
# Revoked API clients (key = client id): every process of every service reads it from the start,
# so a revoked client's unexpired tokens are refused everywhere. Compacted in production.
CLIENTS_TOPIC = "motcua.clients.v1"
# Messages a consumer could not decode or validate, with the reason and the original bytes.
DEAD_LETTER_TOPIC = "motcua.deadletter.v1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        CASES_TOPIC,
        "Every fact recorded on a case, in order per case (key = case code).",
        ("intake",),
        ("routing", "metrics"),
    ),
    TopicSpec(
        ROUTING_TOPIC,
        "Transfers and overdue notices established by routing, to be recorded by intake.",
        ("routing",),
        ("intake",),
    ),
    TopicSpec(
        CATALOGUE_TOPIC,
        "Every version of an agency or procedure recorded in the catalogue (key = its code).",
        ("intake",),
        ("routing",),
    ),
    TopicSpec(
        CLIENTS_TOPIC,
        "Revoked API clients (key = client id), read from the start by every process.",
        ("intake",),
        ("intake", "routing", "metrics"),
    ),
    TopicSpec(
        DEAD_LETTER_TOPIC,
        "Undecodable or invalid messages with the reason and the original bytes and headers.",
        ("intake", "routing", "metrics"),
        (),
    ),
)

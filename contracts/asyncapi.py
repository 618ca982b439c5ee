"""An AsyncAPI 3.0.0 description of motcua's Kafka topics, derived from the contracts.

Channels are the topics in contracts.topics; operations are the services TopicSpec names as
producers (`send`) and consumers (`receive`); messages are the event types, their payloads the
same envelope schemas as contracts/schemas/ (definitions moved to `components.schemas`, since
the AsyncAPI Schema Object is a draft-07 superset and has no `$defs`).
"""

from typing import Any

from contracts.cases import EVENT_CLASSES, CaseEvent, CaseOverdue, Transferred
from contracts.catalogue import CATALOGUE_EVENT_CLASSES
from contracts.clients import CLIENT_EVENT_CLASSES
from contracts.codec import CONTENT_TYPE
from contracts.deadletter import REASON_HEADER, DeadLetterReason
from contracts.event import Event
from contracts.schema import JsonSchema, envelope_parts
from contracts.topics import (
    CASES_TOPIC,
    CATALOGUE_TOPIC,
    CLIENTS_TOPIC,
    DEAD_LETTER_TOPIC,
    ROUTING_TOPIC,
    TOPICS,
    TopicSpec,
)

ASYNCAPI_VERSION = "3.0.0"
# The version of this description; bump it when a channel or message changes.
API_VERSION = "1.2.0"
KAFKA_BINDING_VERSION = "0.5.0"
SERVER = "local"
COMPONENT_REF = "#/components/schemas/{model}"
DEAD_LETTER_MESSAGE = "deadletter"

# Which events travel on which topic (topics.py names the topics and the services using them).
TOPIC_EVENTS: dict[str, tuple[type[Event], ...]] = {
    CASES_TOPIC: EVENT_CLASSES,
    ROUTING_TOPIC: (Transferred, CaseOverdue),
    CATALOGUE_TOPIC: CATALOGUE_EVENT_CLASSES,
    CLIENTS_TOPIC: CLIENT_EVENT_CLASSES,
}

Doc = dict[str, Any]


def channel_id(topic: str) -> str:
    """motcua.cases.v1 -> cases_v1"""
    return topic.removeprefix("motcua.").replace(".", "_")


def message_id(cls: type[Event]) -> str:
    return f"{cls.event_type()}.v{cls.VERSION}"


def _ref(*parts: str) -> Doc:
    return {"$ref": "#/" + "/".join(parts)}


def _add_schemas(schemas: dict[str, JsonSchema], new: dict[str, JsonSchema]) -> None:
    for name, schema in new.items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both called {name}")


def _key_schema(cls: type[Event]) -> JsonSchema:
    if issubclass(cls, CaseEvent):
        case_code = CaseEvent.model_json_schema()["properties"]["case_code"]
        return {"type": "string", "pattern": case_code["pattern"],
                "description": "The case code."}
    # A catalogue event is keyed by the code of the agency or procedure it versions, a client
    # event by the client id.
    (field,) = (f for f in ("agency_code", "procedure_code", "client_id")
                if f in cls.model_fields)
    code = cls.model_json_schema()["properties"][field]
    return {"type": "string", "pattern": code["pattern"],
            "description": f"The {field.replace('_', ' ')}."}


def _event_message(cls: type[Event], schemas: dict[str, JsonSchema]) -> Doc:
    envelope, defs = envelope_parts(cls, ref_template=COMPONENT_REF)
    _add_schemas(schemas, {**defs, message_id(cls): envelope})
    message: Doc = {
        "name": cls.event_type(),
        "title": f"{cls.__name__} v{cls.VERSION}",
        "summary": (cls.__doc__ or f"The case fact {cls.NAME!r}.").strip().splitlines()[0],
        "contentType": CONTENT_TYPE.decode(),
        "payload": _ref("components", "schemas", message_id(cls)),
        "headers": {
            "type": "object",
            "required": ["content-type", "ce_id", "ce_type", "ce_dataversion"],
            "properties": {
                "content-type": {"type": "string", "const": CONTENT_TYPE.decode()},
                "ce_id": {"type": "string", "description": "The envelope's id."},
                "ce_type": {"type": "string", "const": cls.event_type()},
                "ce_dataversion": {
                    "type": "string",
                    "const": str(cls.VERSION),
                    "description": "The envelope's dataversion, in decimal.",
                },
            },
        },
        "bindings": {
            "kafka": {"key": _key_schema(cls), "bindingVersion": KAFKA_BINDING_VERSION}
        },
    }
    return message


def _dead_letter_message(schemas: dict[str, JsonSchema]) -> Doc:
    _add_schemas(schemas, {DeadLetterReason.__name__: DeadLetterReason.model_json_schema()})
    return {
        "name": "deadletter",
        "title": "Dead-lettered record",
        "summary": "A record a consumer could not decode or validate, kept byte for byte.",
        "contentType": "application/octet-stream",
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "The original record value, unchanged.",
        },
        "headers": {
            "type": "object",
            "description": "The original record's headers, plus dlq_reason.",
            "required": [REASON_HEADER],
            "properties": {
                REASON_HEADER: {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "description": "UTF-8 JSON object: see components.schemas.DeadLetterReason.",
                    "x-contentSchema": _ref("components", "schemas", DeadLetterReason.__name__),
                },
            },
            "additionalProperties": True,
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original record key, unchanged."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _operations(spec: TopicSpec, channel: str, message_ids: list[str]) -> dict[str, Doc]:
    operations: dict[str, Doc] = {}
    for action, services in (("send", spec.producers), ("receive", spec.consumers)):
        for service in services:
            operations[f"{service}_{action}_{channel}"] = {
                "action": action,
                "title": f"{service} {action}s on {spec.name}",
                "channel": _ref("channels", channel),
                "messages": [_ref("channels", channel, "messages", m) for m in message_ids],
            }
    return operations


def asyncapi_document() -> Doc:
    schemas: dict[str, JsonSchema] = {}
    messages: dict[str, Doc] = {}
    channels: dict[str, Doc] = {}
    operations: dict[str, Doc] = {}
    for spec in TOPICS:
        if spec.name == DEAD_LETTER_TOPIC:
            ids = [DEAD_LETTER_MESSAGE]
            messages[DEAD_LETTER_MESSAGE] = _dead_letter_message(schemas)
        else:
            ids = [message_id(cls) for cls in TOPIC_EVENTS[spec.name]]
            for cls in TOPIC_EVENTS[spec.name]:
                messages[message_id(cls)] = _event_message(cls, schemas)
        channel = channel_id(spec.name)
        channels[channel] = {
            "address": spec.name,
            "description": spec.description,
            "messages": {m: _ref("components", "messages", m) for m in ids},
            "bindings": {
                "kafka": {"topic": spec.name, "bindingVersion": KAFKA_BINDING_VERSION}
            },
        }
        operations.update(_operations(spec, channel, ids))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "motcua events",
            "version": API_VERSION,
            "description": "Case events of the một cửa (one-stop-shop) counters and versions of "
            "the agency registry and procedure catalogue, as CloudEvents 1.0 in structured JSON "
            "mode, keyed by case (or agency, procedure) code. Generated from contracts/ by "
            "`python -m contracts.generate`; do not edit by hand.",
        },
        "defaultContentType": CONTENT_TYPE.decode(),
        "servers": {
            SERVER: {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Development broker (scripts/kafka.sh).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }

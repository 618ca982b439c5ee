"""The one codec: envelope <-> Kafka record. No consumer parses message bytes itself."""

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError

from contracts.cases import EVENT_CLASSES
from contracts.catalogue import CATALOGUE_EVENT_CLASSES
from contracts.clients import CLIENT_EVENT_CLASSES
from contracts.envelope import Envelope
from contracts.event import Event

Headers = Sequence[tuple[str, bytes]]
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

REGISTRY: dict[str, type[Event]] = {
    cls.event_type(): cls
    for cls in (*EVENT_CLASSES, *CATALOGUE_EVENT_CLASSES, *CLIENT_EVENT_CLASSES)
}


@cache
def typed_envelope(cls: type[Event]) -> type[Envelope]:
    """The envelope with its payload type bound: envelope and payload validated in one call
    (two calls and a dict copy cost every consumer a quarter more per event). Filled as types
    are met: an upgraded build may register a newer class at run time."""
    return Envelope[cls]  # type: ignore[valid-type]

# (type, from_version) -> function turning that version's payload into the next version's.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
CONTENT_TYPE = b"application/cloudevents+json; charset=utf-8"


class DecodeError(Exception):
    """The bytes are not a valid motcua event; retrying will not help."""

    code = "undecodable"
    retriable = False


class UnknownVersionError(DecodeError):
    """A newer payload version than this build knows: park it, do not drop it."""

    code = "unknown_version"


def encode(envelope: Envelope) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Return (key, value, headers). Key = subject (the case code, or the catalogue entry's
    code) keeps one entity's events in order."""
    # Serialised by pydantic straight to JSON: the bytes orjson made of model_dump's JSON form,
    # at 3.5 µs an event instead of 6.9 (docs/benchmarks.md, ninth pass).
    # An extension attribute without a value is left out (CloudEvents: absent, not null): an
    # event recorded without one encodes to the same bytes as before it existed.
    unset = {"subjectsequence"} if envelope.subjectsequence is None else None
    value = envelope.model_dump_json(exclude=unset).encode()
    headers = [
        ("content-type", CONTENT_TYPE),
        ("ce_id", envelope.id.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_dataversion", str(envelope.dataversion).encode()),
    ]
    return envelope.subject.encode(), value, headers


_TYPE_KEY = b'"type":"'


def decode(value: bytes) -> Envelope:
    current = _decode_current(value)
    if current is not None:
        return current
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DecodeError("not a JSON object")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or (cls := REGISTRY.get(event_type)) is None:
        raise DecodeError(f"unknown event type {event_type!r}")
    version = raw.get("dataversion")
    # bool is an int in Python: `"dataversion": true` must not pass as version 1.
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DecodeError(f"bad dataversion {version!r}")
    if version > cls.VERSION:
        raise UnknownVersionError(f"{event_type} v{version} is newer than known v{cls.VERSION}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise DecodeError("data is not an object")
    while version < cls.VERSION:
        upcast = UPCASTERS.get((event_type, version))
        if upcast is None:
            raise DecodeError(f"no upcaster for {event_type} v{version}")
        try:
            data = upcast(data)
        except Exception as exc:  # a malformed old message must be dead-lettered, not crash
            raise DecodeError(f"upcasting {event_type} v{version} failed: {exc}") from exc
        version += 1
    raw["data"], raw["dataversion"] = data, version
    try:
        envelope: Envelope = typed_envelope(cls).model_validate(raw)
    except ValidationError as exc:
        raise DecodeError(f"invalid {event_type}: {exc.errors(include_url=False)}") from exc
    payload = envelope.data
    if envelope.subject != payload.key():
        # Consumers key their effects on the subject: it must name the payload's entity.
        raise DecodeError(f"subject {envelope.subject!r} is not the payload's {payload.key()!r}")
    return envelope


def _decode_current(value: bytes) -> Envelope | None:
    """The usual record, an event of a known type at its current version, validated straight
    from its bytes by the envelope class its `type` names: pydantic's own JSON parsing, with
    no dict built first, cost 7 % less a record (docs/benchmarks.md, twelfth pass). None for
    anything else (not found, another version, invalid, a subject that is not the payload's):
    `decode` then reads it the long way, which upcasts it or says what is wrong with it. The
    type is found in the bytes, then checked against the envelope read."""
    start = value.find(_TYPE_KEY)
    if start < 0:
        return None
    start += len(_TYPE_KEY)
    raw_type = value[start:value.find(b'"', start)]
    event_type = _TYPE_NAMES.get(raw_type)
    if event_type is None:
        try:
            event_type = raw_type.decode()
        except UnicodeDecodeError:
            return None
        if event_type in REGISTRY:  # only known types: a stream of garbage cannot grow it
            _TYPE_NAMES[raw_type] = event_type
    # Looked up each time, not cached with the name: an upgraded build may register a newer
    # class for a type at run time.
    cls = REGISTRY.get(event_type)
    if cls is None:
        return None
    try:
        envelope: Envelope = _json_validator(cls)(value)
    except ValidationError:
        return None
    if (envelope.type != event_type or envelope.dataversion != cls.VERSION
            or envelope.subject != envelope.data.key()):
        return None
    return envelope


# The type names met in records, by their bytes: decoding the name of every record cost more
# than the dictionary lookup.
_TYPE_NAMES: dict[bytes, str] = {}


@cache
def _json_validator(cls: type[Event]) -> Callable[[bytes], Envelope]:
    """The envelope's own validator for JSON: what `model_validate_json` calls, without its
    keyword handling in Python. With the type names above, decoding went from 4.5 to 3.9 µs
    a record (docs/benchmarks.md, fifteenth pass)."""
    model = typed_envelope(cls)
    model.model_rebuild()  # a deferred schema is built now, not left as a placeholder
    validate: Callable[[bytes], Envelope] = model.__pydantic_validator__.validate_json
    return validate

"""Catalogue events (contracts.catalogue): round trips, keys, schemas and the AsyncAPI channel."""

import json
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from contracts import (
    CATALOGUE_EVENT_CLASSES,
    CATALOGUE_TOPIC,
    AgencyChanged,
    CatalogueEvent,
    DecodeError,
    ProcedureChanged,
    decode,
    encode,
)
from contracts.asyncapi import asyncapi_document, channel_id, message_id
from contracts.schema import event_schema
from tests.contracts.factories import make_envelope, make_event


@pytest.mark.parametrize("cls", CATALOGUE_EVENT_CLASSES, ids=lambda c: c.NAME)
def test_round_trip_keyed_by_the_entity_code(cls: type[CatalogueEvent]) -> None:
    envelope = make_envelope(cls)
    key, value, _headers = encode(envelope)
    decoded = decode(value)
    assert decoded == envelope and type(decoded.data) is cls
    assert key.decode() == envelope.subject == envelope.data.key()
    assert cls.event_type().startswith("vn.motcua.catalogue.")
    Draft202012Validator(event_schema(cls)).validate(json.loads(value))


def test_subject_must_name_the_payload_entity() -> None:
    raw: dict[str, Any] = json.loads(encode(make_envelope(ProcedureChanged))[1])
    raw["subject"] = "9.999999"
    with pytest.raises(DecodeError, match="subject"):
        decode(json.dumps(raw).encode())


def test_invalid_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="processing_days"):
        make_event(ProcedureChanged, processing_days=-1)
    with pytest.raises(ValueError, match="handling_chain"):
        make_event(ProcedureChanged, handling_chain=("Sở Tư pháp",))
    with pytest.raises(ValueError, match="level"):
        make_event(AgencyChanged, level="hamlet")


def test_asyncapi_declares_the_catalogue_channel() -> None:
    doc = asyncapi_document()
    channel = doc["channels"][channel_id(CATALOGUE_TOPIC)]
    assert channel["address"] == CATALOGUE_TOPIC
    assert set(channel["messages"]) == {message_id(c) for c in CATALOGUE_EVENT_CLASSES}
    assert "routing_receive_catalogue_v1" in doc["operations"]
    for cls in CATALOGUE_EVENT_CLASSES:
        key, _value, _headers = encode(make_envelope(cls))
        key_schema = doc["components"]["messages"][message_id(cls)]["bindings"]["kafka"]["key"]
        Draft7Validator(key_schema).validate(key.decode())
        assert not Draft7Validator(key_schema).is_valid("000.00.06.H56-260302-0001")

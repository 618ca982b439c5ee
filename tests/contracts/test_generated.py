"""The generated schemas and AsyncAPI document: current, valid, and agreeing with the codec."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from contracts import (
    EVENT_CLASSES,
    TOPICS,
    CaseEvent,
    CaseReceived,
    DecodeError,
    decode,
    encode,
)
from contracts import generate as gen
from contracts.asyncapi import asyncapi_document, message_id
from contracts.deadletter import REASON_HEADER
from contracts.schema import event_schema, schema_filename
from tests.contracts.factories import make_envelope

FORMATS = Draft202012Validator.FORMAT_CHECKER
Raw = dict[str, Any]


def wire(cls: type[CaseEvent]) -> Raw:
    """A sample of `cls` exactly as it travels, parsed back to JSON values."""
    _key, value, _headers = encode(make_envelope(cls))
    parsed: Raw = json.loads(value)
    return parsed


def validator(cls: type[CaseEvent]) -> Draft202012Validator:
    return Draft202012Validator(event_schema(cls), format_checker=FORMATS)


# --- the committed files are what the code generates ---------------------------------------


def test_committed_files_are_current() -> None:
    assert gen.drift() == [], "run `python -m contracts.generate` and commit the result"


def test_committed_files_are_rendered_by_the_generator() -> None:
    for rel, doc in gen.expected().items():
        assert (gen.PACKAGE_DIR / rel).read_text(encoding="utf-8") == gen.render(doc), rel


def test_check_reports_missing_differing_and_extra_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gen.main(["--root", str(tmp_path)]) == 0
    assert gen.main(["--check", "--root", str(tmp_path)]) == 0

    refused = f"{gen.SCHEMAS_DIR}/vn.motcua.case.refused.v1.json"
    rated = f"{gen.SCHEMAS_DIR}/vn.motcua.case.rated.v1.json"
    stale = f"{gen.SCHEMAS_DIR}/vn.motcua.case.received.v0.json"
    (tmp_path / refused).unlink()
    (tmp_path / rated).write_text('{"title": "edited by hand"}\n', encoding="utf-8")
    (tmp_path / stale).write_text("{}\n", encoding="utf-8")
    (tmp_path / gen.ASYNCAPI_FILE).write_text("not json", encoding="utf-8")
    capsys.readouterr()

    assert gen.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for line in (f"missing: {refused}", f"differs: {rated}", f"extra: {stale}",
                 f"differs: {gen.ASYNCAPI_FILE}"):
        assert line in err

    assert gen.main(["--root", str(tmp_path)]) == 0
    assert gen.drift(tmp_path) == []
    assert not (tmp_path / stale).exists()


def test_formatting_alone_is_not_drift(tmp_path: Path) -> None:
    gen.write(tmp_path)
    path = tmp_path / gen.ASYNCAPI_FILE
    path.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    assert gen.drift(tmp_path) == []


def test_a_version_bump_renames_the_schema_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen.write(tmp_path)
    monkeypatch.setattr(CaseReceived, "VERSION", 2)
    assert sorted(p for p in gen.drift(tmp_path) if "received" in p) == [
        f"extra: {gen.SCHEMAS_DIR}/vn.motcua.case.received.v1.json",
        f"missing: {gen.SCHEMAS_DIR}/vn.motcua.case.received.v2.json",
    ]


# --- every schema is valid and agrees with the codec -----------------------------------------


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.NAME)
def test_schema_is_valid_2020_12(cls: type[CaseEvent]) -> None:
    schema = event_schema(cls)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"https://motcua.vn/schemas/{cls.event_type()}/v{cls.VERSION}.json"
    assert schema["properties"]["type"]["const"] == cls.event_type()
    assert schema["properties"]["dataversion"]["const"] == cls.VERSION
    assert schema_filename(cls) == f"{cls.event_type()}.v{cls.VERSION}.json"


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.NAME)
def test_encoded_sample_validates(cls: type[CaseEvent]) -> None:
    validator(cls).validate(wire(cls))


def _drop_data_field(raw: Raw) -> None:
    del raw["data"]["case_code"]


def _drop_id(raw: Raw) -> None:
    del raw["id"]


def _newer_dataversion(raw: Raw) -> None:
    raw["dataversion"] += 1


def _other_type(raw: Raw) -> None:
    raw["type"] = "vn.motcua.case.refused"


def _unknown_data_field(raw: Raw) -> None:
    raw["data"]["note"] = "không có trong hợp đồng"


def _bad_case_code(raw: Raw) -> None:
    raw["data"]["case_code"] = "H29-42"


def _impossible_date(raw: Raw) -> None:
    raw["data"]["due_date"] = "2025-02-30"


def _naive_timestamp(raw: Raw) -> None:
    raw["data"]["occurred_at"] = "2025-07-02T09:30:00"


INVALID: list[Any] = [
    _drop_data_field,
    _drop_id,
    _newer_dataversion,
    _other_type,
    _unknown_data_field,
    _bad_case_code,
    _impossible_date,
    _naive_timestamp,  # needs rfc3339-validator (a dev dependency) for format date-time
]


def test_date_time_format_is_checked() -> None:
    assert "date-time" in FORMATS.checkers, "install rfc3339-validator (dev dependency)"


@pytest.mark.parametrize("mutate", INVALID, ids=lambda f: f.__name__.strip("_"))
def test_schema_and_codec_both_reject(mutate: Callable[[Raw], None]) -> None:
    raw = wire(CaseReceived)
    mutate(raw)
    assert not validator(CaseReceived).is_valid(raw)
    with pytest.raises(DecodeError):
        decode(json.dumps(raw, ensure_ascii=False).encode())


# --- the AsyncAPI document -------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return asyncapi_document()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_asyncapi_structure(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert [(s["host"], s["protocol"]) for s in doc["servers"].values()] == [
        ("localhost:9092", "kafka")
    ]
    assert sorted(c["address"] for c in doc["channels"].values()) == sorted(t.name for t in TOPICS)
    messages = doc["components"]["messages"]
    assert {message_id(cls) for cls in EVENT_CLASSES} <= set(messages)
    for channel in doc["channels"].values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        _resolve(doc, ref)


def test_operations_match_topic_specs(doc: dict[str, Any]) -> None:
    expected = {
        (service, action, spec.name)
        for spec in TOPICS
        for action, services in (("send", spec.producers), ("receive", spec.consumers))
        for service in services
    }
    seen = set()
    for op_id, op in doc["operations"].items():
        channel = _resolve(doc, op["channel"]["$ref"])
        assert op["channel"]["$ref"].startswith("#/channels/"), op_id
        seen.add((op_id.split("_")[0], op["action"], channel["address"]))
        for message in op["messages"]:
            # An operation may only carry messages its channel declares.
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), op_id
            _resolve(doc, message["$ref"])
    assert seen == expected


def test_message_headers_and_key_match_the_codec(doc: dict[str, Any]) -> None:
    for cls in EVENT_CLASSES:
        message = doc["components"]["messages"][message_id(cls)]
        key, _value, headers = encode(make_envelope(cls))
        as_strings = {name: value.decode() for name, value in headers}
        Draft7Validator(message["headers"]).validate(as_strings)
        assert set(as_strings) == set(message["headers"]["required"])
        Draft7Validator(message["bindings"]["kafka"]["key"]).validate(key.decode())


def test_message_payloads_validate_encoded_samples(doc: dict[str, Any]) -> None:
    registry: Registry[Any] = Registry().with_resource(
        "urn:motcua:asyncapi", Resource.from_contents(doc, default_specification=DRAFT7)
    )
    for cls in EVENT_CLASSES:
        payload_ref = doc["components"]["messages"][message_id(cls)]["payload"]["$ref"]
        check = Draft7Validator({"$ref": "urn:motcua:asyncapi" + payload_ref}, registry=registry)
        check.validate(wire(cls))
        bad = wire(cls)
        bad["dataversion"] = cls.VERSION + 1
        assert not check.is_valid(bad)


def test_dead_letter_message(doc: dict[str, Any]) -> None:
    (channel,) = (c for c in doc["channels"].values() if c["address"].endswith("deadletter.v1"))
    (ref,) = channel["messages"].values()
    message = _resolve(doc, ref["$ref"])
    assert message["payload"]["format"] == "binary"
    reason = message["headers"]["properties"][REASON_HEADER]
    assert reason["contentMediaType"] == "application/json"
    reason_schema = _resolve(doc, reason["x-contentSchema"]["$ref"])
    # The shape services/consumer.py writes when it dead-letters a record.
    written = {"code": "undecodable", "reason": "not JSON", "group_id": "routing",
               "topic": "motcua.cases.v1", "partition": 0, "offset": 41}
    Draft7Validator(reason_schema).validate(written)
    assert set(reason_schema["required"]) == set(written)

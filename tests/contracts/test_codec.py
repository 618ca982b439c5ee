"""encode / decode: round trips, the Kafka record's shape, refusals and upcasting."""

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from contracts import (
    EVENT_CLASSES,
    CaseEvent,
    CaseRefused,
    DecodeError,
    Resolved,
    UnknownVersionError,
    decode,
    encode,
)
from contracts.codec import CONTENT_TYPE, UPCASTERS
from tests.contracts.factories import CASE_CODE, REASON, REASON_NFD, make_envelope

Raw = dict[str, Any]


def wire(cls: type[CaseEvent] = CaseRefused, **overrides: Any) -> Raw:
    parsed: Raw = orjson.loads(encode(make_envelope(cls, **overrides))[1])
    return parsed


def dumps(raw: Any) -> bytes:
    # Compact, as encode writes it: what decode reads straight from the bytes.
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()


def spaced(value: bytes) -> bytes:
    """The same JSON with spaces after its colons and commas, as another producer may write
    it: decode cannot find the type in the bytes and reads it the long way."""
    try:
        return json.dumps(json.loads(value), ensure_ascii=False).encode()
    except ValueError:
        return value


# --- round trips and the record's shape -----------------------------------------------------


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.NAME)
def test_round_trip(cls: type[CaseEvent]) -> None:
    envelope = make_envelope(cls)
    key, value, headers = encode(envelope)

    decoded = decode(value)

    assert decoded == envelope
    assert type(decoded.data) is cls
    assert key == CASE_CODE.encode()
    # The bytes: the model's JSON form, compact, keys in field order, text as raw UTF-8; with
    # a subject sequence and without one (left out). Consumers of other languages read these.
    for sequence in (None, 3):
        numbered = envelope.model_copy(update={"subjectsequence": sequence})
        form = numbered.model_dump(mode="json")
        if sequence is None:
            del form["subjectsequence"]
        assert encode(numbered)[1] == orjson.dumps(form)
    assert dict(headers) == {
        "content-type": CONTENT_TYPE,
        "ce_id": envelope.id.encode(),
        "ce_type": cls.event_type().encode(),
        "ce_dataversion": str(cls.VERSION).encode(),
    }


def test_the_subject_sequence_travels_and_is_left_out_when_absent() -> None:
    bare = make_envelope(CaseRefused)
    numbered = bare.model_copy(update={"subjectsequence": 7})
    # Absent, not null: an event without one encodes to the bytes it always did.
    assert "subjectsequence" not in orjson.loads(encode(bare)[1])
    assert orjson.loads(encode(numbered)[1])["subjectsequence"] == 7
    assert decode(encode(numbered)[1]).subjectsequence == 7
    assert decode(encode(bare)[1]).subjectsequence is None


def test_vietnamese_text_is_kept_as_utf8() -> None:
    envelope = make_envelope(CaseRefused)
    _key, value, _headers = encode(envelope)
    assert REASON.encode() in value  # raw UTF-8, not \u escapes
    refused = decode(value).data
    assert isinstance(refused, CaseRefused)
    assert refused.reason == REASON


def test_decomposed_text_comes_back_composed() -> None:
    assert REASON_NFD != REASON
    # A producer built with the contracts already emits NFC ...
    assert make_envelope(CaseRefused, reason=REASON_NFD).data.details()["reason"] == REASON
    # ... and NFD from anyone else is composed on the way in.
    raw = wire(CaseRefused)
    raw["data"]["reason"] = REASON_NFD
    refused = decode(dumps(raw)).data
    assert isinstance(refused, CaseRefused)
    assert refused.reason == REASON
    assert unicodedata.is_normalized("NFC", refused.reason)


def test_time_keeps_its_offset() -> None:
    envelope = make_envelope(CaseRefused)
    assert wire(CaseRefused)["time"].endswith("+07:00")
    assert decode(encode(envelope)[1]).time.utcoffset() == envelope.time.utcoffset()


# --- refusals --------------------------------------------------------------------------------


def _without(raw: Raw, key: str) -> Raw:
    return {k: v for k, v in raw.items() if k != key}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[]", id="json-array"),
        pytest.param(dumps([wire()]), id="array-of-envelope"),
        pytest.param(dumps({**wire(), "type": "vn.motcua.case.teleported"}), id="unknown-type"),
        pytest.param(dumps(_without(wire(), "type")), id="missing-type"),
        pytest.param(dumps(_without(wire(), "data")), id="missing-data"),
        pytest.param(dumps({**wire(), "data": "Hồ sơ"}), id="data-not-object"),
        pytest.param(dumps(_without(wire(), "dataversion")), id="missing-dataversion"),
        pytest.param(dumps({**wire(), "dataversion": 0}), id="dataversion-0"),
        pytest.param(dumps({**wire(), "dataversion": "1"}), id="dataversion-string"),
        pytest.param(dumps({**wire(), "dataversion": 1.0}), id="dataversion-float"),
        pytest.param(dumps(_without(wire(), "id")), id="missing-id"),
        pytest.param(dumps({**wire(), "time": "2025-07-02T09:31:05"}), id="naive-time"),
        pytest.param(dumps({**wire(), "subjectsequence": 0}), id="subjectsequence-0"),
        pytest.param(dumps({**wire(), "subjectsequence": "2"}), id="subjectsequence-string"),
    ],
)
@pytest.mark.parametrize("form", [bytes, spaced], ids=["compact", "spaced"])
def test_undecodable(value: bytes, form: Callable[[bytes], bytes]) -> None:
    with pytest.raises(DecodeError) as info:
        decode(form(value))
    assert info.type is DecodeError
    assert info.value.code == "undecodable"
    assert info.value.retriable is False


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("case_code", "H29-42"),
        ("occurred_at", "2025-07-02T09:30:00"),  # no offset
        ("reason", "x" * 501),
        ("status", 11),
        ("unexpected", "field"),
    ],
)
def test_invalid_payload(field: str, bad: Any) -> None:
    raw = wire(CaseRefused)
    raw["data"][field] = bad
    with pytest.raises(DecodeError, match=r"invalid vn\.motcua\.case\.refused") as info:
        decode(dumps(raw))
    assert info.type is DecodeError


def test_newer_version_is_parked_not_dropped() -> None:
    raw = wire(CaseRefused)
    raw["dataversion"] = CaseRefused.VERSION + 1
    with pytest.raises(UnknownVersionError) as info:
        decode(dumps(raw))
    assert isinstance(info.value, DecodeError)
    assert info.value.code == "unknown_version"
    assert info.value.retriable is False


@pytest.mark.parametrize("form", [bytes, spaced], ids=["compact", "spaced"])
def test_boolean_dataversion_is_refused(form: Callable[[bytes], bytes]) -> None:
    with pytest.raises(DecodeError):
        decode(form(dumps({**wire(), "dataversion": True})))


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.NAME)
def test_read_from_the_bytes_or_the_long_way_an_event_is_the_same(cls: type[CaseEvent]) -> None:
    value = encode(make_envelope(cls).model_copy(update={"subjectsequence": 4}))[1]
    assert decode(value) == decode(spaced(value))
    assert decode(value).model_dump() == decode(spaced(value)).model_dump()


def test_a_type_that_names_another_payload_is_refused_either_way() -> None:
    raw = wire(CaseRefused)
    raw["type"] = Resolved.event_type()
    for value in (dumps(raw), spaced(dumps(raw))):
        with pytest.raises(DecodeError, match=r"invalid vn\.motcua\.case\.resolved"):
            decode(value)


def test_a_type_given_twice_is_read_as_the_last_one_either_way() -> None:
    # As orjson (and pydantic) read duplicate keys: the last wins. The first names the
    # payload's class, the last another, which the payload is not valid for.
    value = dumps(wire(CaseRefused)).replace(
        b'"data":', b'"type":"' + Resolved.event_type().encode() + b'","data":')
    with pytest.raises(DecodeError, match=r"invalid vn\.motcua\.case\.resolved"):
        decode(value)


def test_a_subject_that_is_not_the_payloads_is_refused_either_way() -> None:
    raw = wire(CaseRefused)
    raw["subject"] = "000.00.63.H56-260302-000099"
    for value in (dumps(raw), spaced(dumps(raw))):
        with pytest.raises(DecodeError, match="is not the payload's"):
            decode(value)


# --- upcasting -------------------------------------------------------------------------------

REFUSED = CaseRefused.event_type()


def _v1_to_v2(data: Raw) -> Raw:
    """Pretend v1 called the reason `ly_do`."""
    upcast = {k: v for k, v in data.items() if k != "ly_do"}
    upcast["reason"] = data["ly_do"]
    return upcast


def _v1_message() -> bytes:
    raw = wire(CaseRefused)
    raw["dataversion"] = 1
    raw["data"]["ly_do"] = raw["data"].pop("reason")
    return dumps(raw)


def test_older_version_is_upcast_to_current(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _v1_message()
    monkeypatch.setattr(CaseRefused, "VERSION", 2)
    monkeypatch.setitem(UPCASTERS, (REFUSED, 1), _v1_to_v2)

    envelope = decode(message)

    assert envelope.dataversion == 2
    assert isinstance(envelope.data, CaseRefused)
    assert envelope.data.reason == REASON
    assert dict(encode(envelope)[2])["ce_dataversion"] == b"2"


def test_upcasters_chain_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _v1_message()
    monkeypatch.setattr(CaseRefused, "VERSION", 3)
    monkeypatch.setitem(UPCASTERS, (REFUSED, 1), _v1_to_v2)
    monkeypatch.setitem(
        UPCASTERS, (REFUSED, 2), lambda d: {**d, "reason": d["reason"].upper()}
    )

    envelope = decode(message)

    assert envelope.dataversion == 3
    assert envelope.data.details()["reason"] == REASON.upper()


def test_current_version_skips_upcasters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CaseRefused, "VERSION", 2)
    monkeypatch.setitem(UPCASTERS, (REFUSED, 1), _v1_to_v2)
    envelope = make_envelope(CaseRefused)
    assert envelope.dataversion == 2
    assert decode(encode(envelope)[1]) == envelope


def test_missing_upcaster_is_undecodable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _v1_message()
    monkeypatch.setattr(CaseRefused, "VERSION", 2)
    with pytest.raises(DecodeError, match="no upcaster") as info:
        decode(message)
    assert info.type is DecodeError


def test_upcast_result_is_still_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _v1_message()
    monkeypatch.setattr(CaseRefused, "VERSION", 2)
    monkeypatch.setitem(UPCASTERS, (REFUSED, 1), lambda d: d)  # forgets the rename
    with pytest.raises(DecodeError, match="invalid"):
        decode(message)


def test_patching_a_version_leaves_no_trace() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CaseRefused, "VERSION", 2)
        mp.setitem(UPCASTERS, (REFUSED, 1), _v1_to_v2)
        assert make_envelope(CaseRefused).dataversion == 2
    assert CaseRefused.VERSION == 1
    assert "VERSION" not in vars(CaseRefused)  # inherited from CaseEvent again, not shadowed
    assert (REFUSED, 1) not in UPCASTERS

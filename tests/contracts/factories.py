"""make_event(cls): a valid sample of any payload class, built from its fields."""

import types
import typing
import unicodedata
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, TypeVar

from pydantic.fields import FieldInfo

from contracts import Envelope, Event, new_envelope

E = TypeVar("E", bound=Event)

ICT = timezone(timedelta(hours=7), "ICT")
CASE_CODE = "000.00.12.H29-250702-0042"
# Vietnamese with every kind of diacritic: tone marks stacked on vowel marks, and đ.
REASON = "Hồ sơ thiếu bản sao giấy khai sinh; đề nghị bổ sung trước ngày 15/7"
REASON_NFD = unicodedata.normalize("NFD", REASON)

# Samples by field name; enum-typed fields default to their first member.
SAMPLES: dict[str, Any] = {
    "case_code": CASE_CODE,
    "occurred_at": datetime(2025, 7, 2, 9, 30, tzinfo=ICT),
    "status": 2,
    "agency_code": "000.00.12.H29",
    "province_code": "H29",
    "district_code": "H29.12",
    "procedure_code": "1.001234",
    "field_code": "G01",
    "return_by_post": True,
    "processing_days": 15,
    "fee_vnd": 50_000,
    "due_date": date(2025, 7, 23),
    "new_due_date": date(2025, 7, 30),
    "reason": REASON,
    "from_office": "000.00.12.H29",
    "to_office": "000.00.01.H29",
    "amount": 50_000,
    "result_digitised": True,
    "on_time": True,
    "resolution_days": 12,
    # catalogue events (contracts.catalogue)
    "version": 2,
    "effective_from": date(2025, 7, 1),
    "name": "Ủy ban nhân dân xã Hoằng Hóa",
    "kind": "ubnd-xa",
    "parent": "000.00.00.H29",
    "province": "H29",
    "reception": True,
    "valid_from": date(2025, 7, 1),
    "valid_to": date(2030, 12, 31),
    "successor": "000.00.61.H29",
    "field_name": "Hộ tịch",
    "online_levels": ("partial", "full"),
    "handling_chain": ("ubnd-xa", "cong-an", "bhxh"),
}


def _enum_of(annotation: Any) -> type[Enum] | None:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _enum_of(arg)) is not None:
                return found
    return None


def _sample(cls: type[Event], name: str, field: FieldInfo) -> Any:
    if name in SAMPLES:
        return SAMPLES[name]
    enum = _enum_of(field.annotation)
    if enum is not None:
        return next(iter(enum))
    raise LookupError(f"make_event: no sample for {cls.__name__}.{name}; add one to SAMPLES")


def make_event(cls: type[E], **overrides: Any) -> E:
    """A valid `cls` with every field (optional ones too) set; `overrides` replace samples."""
    values = {name: _sample(cls, name, f) for name, f in cls.model_fields.items()}
    return cls(**{**values, **overrides})


def make_envelope(cls: type[Event], **overrides: Any) -> Envelope:
    return new_envelope(
        make_event(cls, **overrides), source="/motcua/test",
        event_id=f"evt-{cls.NAME}", time=datetime(2025, 7, 2, 9, 31, 5, 123456, tzinfo=ICT),
    )

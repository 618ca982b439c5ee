"""Intake's tables: cases (the state it owns), their event history, applicants, sequences,
and the catalogue versions (registry.store)."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from registry.store import CatalogueStore
from services.db import UTCDateTime
from services.outbox import Outbox
from services.tracking import Tracking

PREFIX = "intake"
OUTBOX = Outbox(PREFIX)
TRACKING = Tracking(PREFIX)
# Intake owns the agency registry and procedure catalogue (with history); routing keeps a copy.
CATALOGUE = CatalogueStore(PREFIX)


def _tz(**kw: Any) -> Any:
    return Field(sa_column=Column(UTCDateTime(), **kw))


class Case(SQLModel, table=True):
    __tablename__ = "intake_cases"

    case_code: str = Field(primary_key=True, max_length=40)
    agency_code: str = Field(index=True, max_length=20)
    province_code: str = Field(max_length=8)
    district_code: str | None = Field(default=None, max_length=20)
    procedure_code: str = Field(max_length=20)
    procedure_name: str
    field_code: str = Field(max_length=40)
    channel: str | None = Field(default=None, max_length=10)
    online_level: str | None = Field(default=None, max_length=10)
    return_by_post: bool = False
    status: int
    submitted_at: datetime | None = _tz(nullable=True)
    received_at: datetime | None = _tz(nullable=True)
    receipt_date: date | None = None
    processing_days: int
    fee_vnd: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    due_date: date | None = None
    citizen_due_date: date | None = None
    amount_requested: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    amount_paid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    supplement_requests: int = 0
    paused_on: date | None = None
    pauses: list[list[str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    resolved_at: datetime | None = _tz(nullable=True)
    on_time: bool | None = None
    result_digitised: bool = False
    rated: bool = False
    overdue_notified_for: date | None = None
    event_count: int = 0
    updated_at: datetime = _tz(nullable=False)


class CaseEventRecord(SQLModel, table=True):
    """Every event applied to a case, with the answer given, so a retry gets the same body."""

    __tablename__ = "intake_case_events"
    __table_args__ = (Index("ix_intake_case_events_case_seq", "case_code", "seq", unique=True),)

    event_id: str = Field(primary_key=True, max_length=64)
    case_code: str = Field(max_length=40)
    seq: int
    type: str = Field(max_length=40)
    occurred_at: datetime = _tz(nullable=False)
    recorded_at: datetime = _tz(nullable=False)
    source: str = Field(max_length=100)
    status_after: int
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fingerprint: str = Field(max_length=64)
    response: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Applicant(SQLModel, table=True):
    """Personal data stays here, in intake's database only: never in events, logs or KPIs."""

    __tablename__ = "intake_applicants"

    case_code: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=20)
    id_number: str | None = Field(default=None, max_length=20)
    name: str | None = None
    address: str | None = None
    phone: str | None = Field(default=None, max_length=20)


class CaseSequence(SQLModel, table=True):
    """Per agency, per local day: the last sequence number handed out in a case code."""

    __tablename__ = "intake_case_sequences"

    agency_code: str = Field(primary_key=True, max_length=20)
    day: date = Field(primary_key=True)
    last: int = 0

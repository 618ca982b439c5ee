"""Intake's tables: cases (the state it owns), their event history, applicants, sequences,
and the catalogue versions (registry.store)."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer
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
    """Personal data stays here, in intake's database only: never in events, logs or KPIs.

    id_number, name, address and phone are stored encrypted (intake.pii: AES-256-GCM, bound to
    the case and the column); `key_id` names the key, NULL for rows written before encryption
    (intake re-encrypts those, and rows under a retired key, at start)."""

    __tablename__ = "intake_applicants"

    case_code: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=20)
    id_number: str | None = None
    name: str | None = None
    address: str | None = None
    phone: str | None = None
    key_id: str | None = Field(default=None, max_length=40)


class Client(SQLModel, table=True):
    """An API client: a reception counter (or agency system), a portal, or an administrator.

    The secret is kept only as a scrypt hash; it is shown once, when the client is created."""

    __tablename__ = "intake_clients"

    client_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    agency_code: str | None = Field(default=None, max_length=20)
    province_code: str | None = Field(default=None, max_length=8)
    secret_hash: str = Field(max_length=300)
    created_at: datetime = _tz(nullable=False)
    created_by: str = Field(max_length=100)
    revoked_at: datetime | None = _tz(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=100)


class AuditEntry(SQLModel, table=True):
    """Who did what to which case, when, from where. Append-only: the migration installs
    triggers that refuse UPDATE and DELETE on this table."""

    __tablename__ = "intake_audit"
    __table_args__ = (Index("ix_intake_audit_case_id", "case_code", "id"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                       primary_key=True, autoincrement=True))
    at: datetime = _tz(nullable=False)
    client_id: str = Field(max_length=64, index=True)
    client_kind: str = Field(max_length=20)
    action: str = Field(max_length=60)
    case_code: str | None = Field(default=None, max_length=40)
    status: int
    request_id: str = Field(max_length=128)
    client_ip: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=300)


class CaseSequence(SQLModel, table=True):
    """Per agency, per local day: the last sequence number handed out in a case code."""

    __tablename__ = "intake_case_sequences"

    agency_code: str = Field(primary_key=True, max_length=20)
    day: date = Field(primary_key=True)
    last: int = 0

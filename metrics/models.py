"""Metrics' projection tables: per-case attribution facts and the KPI counters."""

from datetime import date, datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from services.db import UTCDateTime
from services.tracking import Tracking

PREFIX = "metrics"
TRACKING = Tracking(PREFIX)


class ProjectedCase(SQLModel, table=True):
    """What the projection must remember of a case to attribute its later and late facts."""

    __tablename__ = "metrics_cases"

    case_code: str = Field(primary_key=True, max_length=40)
    agency_code: str = Field(max_length=20)
    province_code: str = Field(max_length=8)
    district_code: str | None = Field(default=None, max_length=20)
    field_code: str = Field(max_length=40)
    procedure_code: str = Field(max_length=20)
    channel: str = Field(max_length=10)
    online_level: str | None = Field(default=None, max_length=10)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    transfers: int = 0
    transfers_electronic: int = 0
    resolved_on: date | None = None
    result_digitised: bool = False
    overdue: bool = False
    status: int = 2
    # The last subject sequence applied; None for a case projected before sequences (its
    # events are deduplicated by id, metrics_processed_events, until one with a sequence).
    sequence: int | None = None


class Counter(SQLModel, table=True):
    """One additive figure for one scope and one period, e.g. received / province:H56 / 2026-03."""

    __tablename__ = "metrics_counters"

    name: str = Field(primary_key=True, max_length=40)
    scope: str = Field(primary_key=True, max_length=60)
    period: str = Field(primary_key=True, max_length=10)
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))

"""Routing's own state: each case's handling chain and how far along it the case is."""

from datetime import date, datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.db import UTCDateTime
from services.outbox import Outbox
from services.tracking import Tracking

PREFIX = "routing"
OUTBOX = Outbox(PREFIX)
TRACKING = Tracking(PREFIX)


class RoutedCase(SQLModel, table=True):
    __tablename__ = "routing_cases"

    case_code: str = Field(primary_key=True, max_length=40)
    agency_code: str = Field(max_length=20)
    procedure_code: str = Field(max_length=20)
    chain: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    hops_sent: int = 0
    due_date: date | None = None
    status: int = 2
    open: bool = True
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

"""Routing's own state: each case's handling chain and how far along it the case is, the
deadline it watches, and its copy of the catalogue (kept from intake's catalogue events)."""

from datetime import date, datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from registry.store import CatalogueStore
from services.db import UTCDateTime
from services.outbox import Outbox
from services.tracking import Tracking

PREFIX = "routing"
OUTBOX = Outbox(PREFIX)
TRACKING = Tracking(PREFIX)
CATALOGUE = CatalogueStore(PREFIX)


class RoutedCase(SQLModel, table=True):
    __tablename__ = "routing_cases"

    case_code: str = Field(primary_key=True, max_length=40)
    agency_code: str = Field(max_length=20)
    procedure_code: str = Field(max_length=20)
    # The offices the case is transferred to, in order. When the receiving agency is itself
    # the first handling office it is not in here: it handles first, then hands off.
    chain: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    hops_sent: int = 0
    # Transfers intake recorded on the case log (routing sees them come back with its ids).
    hops_recorded: int = 0
    # False while the catalogue copy lacked the procedure or agency: planned when it arrives.
    planned: bool = True
    due_date: date | None = Field(default=None, index=True)
    # The due date an overdue notice was raised for; a later (extended) due date may get one.
    overdue_for: date | None = None
    status: int = 2
    open: bool = True
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

    def holder(self) -> str:
        """The office the case was last sent to (the receiving agency before any transfer)."""
        return self.chain[self.hops_sent - 1] if self.hops_sent else self.agency_code

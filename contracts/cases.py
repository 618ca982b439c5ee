"""Case events: one class per fact that can be recorded on a case (API.md, DOMAIN.md).

Every payload is frozen and carries the case code, when the fact happened, and the national
portal status code the case has after it. `NAME` is the short name counters use in the API;
`TYPE` (reverse-DNS, CloudEvents `type`) and `VERSION` identify the contract on the wire.
"""

from datetime import date
from typing import Any, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field

from contracts.event import Event
from contracts.types import (
    AgencyCode,
    CaseCode,
    Channel,
    OnlineLevel,
    PaymentMethod,
    PaymentPortal,
    ProcedureCode,
    Rating,
    ReturnMethod,
    ShortText,
    TransferMethod,
)

TYPE_PREFIX = "vn.motcua.case."


class CaseEvent(Event):
    model_config = ConfigDict(frozen=True, extra="forbid")

    NAME: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    TYPE_PREFIX: ClassVar[str] = "vn.motcua.case."

    case_code: CaseCode
    occurred_at: AwareDatetime = Field(description="When the fact happened (RFC 3339, offset).")
    status: int | None = Field(
        default=None, ge=1, le=10,
        description="National portal status after the event, as recorded by intake (the case "
        "owner); absent on facts other services send to intake.",
    )

    def key(self) -> str:
        return self.case_code

    def details(self) -> dict[str, Any]:
        """The event-specific fields, as a counter posted them."""
        return self.model_dump(mode="json", exclude={"case_code", "occurred_at", "status"})


class CaseSubmitted(CaseEvent):
    NAME = "submitted"
    agency_code: AgencyCode
    procedure_code: ProcedureCode
    online_level: OnlineLevel


class CaseReceived(CaseEvent):
    """A case accepted at a reception counter; carries the attribution every KPI needs."""

    NAME = "received"
    agency_code: AgencyCode
    province_code: str = Field(description="Province part of the agency code, e.g. H56.")
    district_code: str | None = Field(
        default=None, description="Receiving agency's district before 2025-07-01, if any."
    )
    procedure_code: ProcedureCode
    field_code: str
    channel: Channel
    online_level: OnlineLevel | None
    return_by_post: bool
    processing_days: int = Field(ge=0)
    fee_vnd: int = Field(ge=0)
    due_date: date


class CaseRefused(CaseEvent):
    NAME = "refused"
    reason: ShortText


class Transferred(CaseEvent):
    NAME = "transferred"
    from_office: AgencyCode
    to_office: AgencyCode
    method: TransferMethod


class SupplementRequested(CaseEvent):
    NAME = "supplement_requested"
    reason: ShortText


class SupplementReceived(CaseEvent):
    NAME = "supplement_received"
    due_date: date = Field(description="The due date extended by the pause.")


class PaymentRequested(CaseEvent):
    NAME = "payment_requested"
    amount: int = Field(gt=0, description="VND")


class Paid(CaseEvent):
    NAME = "paid"
    amount: int = Field(gt=0, description="VND")
    method: PaymentMethod
    portal: PaymentPortal | None = None


class Resolved(CaseEvent):
    NAME = "resolved"
    result_digitised: bool = False
    on_time: bool
    resolution_days: int = Field(ge=0, description="Working days from receipt, pauses excluded.")


class ResultDigitised(CaseEvent):
    NAME = "result_digitised"


class Returned(CaseEvent):
    NAME = "returned"
    method: ReturnMethod


class ApologyIssued(CaseEvent):
    NAME = "apology_issued"
    new_due_date: date
    reason: ShortText


class CaseWithdrawn(CaseEvent):
    NAME = "withdrawn"
    reason: ShortText


class CaseStopped(CaseEvent):
    NAME = "stopped"
    reason: ShortText


class Rated(CaseEvent):
    NAME = "rated"
    rating: Rating


class CaseOverdue(CaseEvent):
    """Raised once by routing when an open case passes its due date."""

    NAME = "overdue"
    due_date: date


EVENT_CLASSES: tuple[type[CaseEvent], ...] = (
    CaseSubmitted,
    CaseReceived,
    CaseRefused,
    Transferred,
    SupplementRequested,
    SupplementReceived,
    PaymentRequested,
    Paid,
    Resolved,
    ResultDigitised,
    Returned,
    ApologyIssued,
    CaseWithdrawn,
    CaseStopped,
    Rated,
    CaseOverdue,
)

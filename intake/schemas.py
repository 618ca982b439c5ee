"""The shapes intake's API accepts and answers (API.md), separate from its tables."""

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.types import (
    AgencyCode,
    CaseCode,
    Channel,
    OnlineLevel,
    PaymentPortal,
    Rating,
    ShortText,
    Text,
)
from intake.lifecycle import EVENT_NAMES

EventName = Literal[EVENT_NAMES]  # type: ignore[valid-type]
IdNumber = Field(default=None, pattern=r"^[0-9]{9}$|^[0-9]{12}$",
                 description="CMND (9 digits) or CCCD (12 digits).")


class ApplicantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["citizen", "business"] = "citizen"
    id_number: str | None = IdNumber
    name: Text | None = Field(default=None, max_length=200)
    address: Text | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{8,15}$")


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: UUID | None = Field(default=None, description="Retrying with the same id is a no-op.")
    case_code: CaseCode | None = Field(default=None, description="Generated when absent.")
    agency_code: AgencyCode = Field(description="Receiving agency; must be registered.")
    procedure_code: str = Field(max_length=40, description="Must be in the catalogue.")
    channel: Channel
    online_level: OnlineLevel | None = Field(
        default=None, description="partial | full; required iff channel = online."
    )
    received_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with offset; defaults to now; not in the future."
    )
    return_by_post: bool = False
    applicant: ApplicantIn | None = None


class EventCreate(BaseModel):
    """One fact about a case. Which extra fields a type needs is checked per type (API.md)."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID | None = None
    type: EventName
    occurred_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with offset; defaults to now; not in the future."
    )
    from_office: AgencyCode | None = None
    to_office: AgencyCode | None = None
    method: str | None = Field(default=None, max_length=20)
    reason: ShortText | None = None
    amount: int | None = Field(default=None, gt=0, le=10_000_000_000)
    portal: PaymentPortal | None = None
    result_digitised: bool | None = None
    new_due_date: date | None = None
    rating: Rating | None = None


class BatchEventCreate(EventCreate):
    case_code: CaseCode


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, description="Up to 1,000 events.")


class CaseReceipt(BaseModel):
    """What the appointment slip (phiếu hẹn trả kết quả) prints."""

    case_code: str
    status: int
    status_name: str
    agency_code: str
    agency_name: str
    procedure_code: str
    procedure_name: str
    field_code: str
    channel: str
    online_level: str | None
    received_at: datetime
    receipt_date: date
    due_date: date
    processing_days: int
    fee_vnd: int
    fee_required: bool
    return_by_post: bool


class EventResult(BaseModel):
    event_id: str
    case_code: str
    type: str
    status: int
    status_name: str
    due_date: date | None
    allowed_events: list[str]


class HistoryItem(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    status: int
    details: dict[str, Any]


class CasePublic(BaseModel):
    """The public look-up: status and dates, never the applicant."""

    case_code: str
    status: int
    status_name: str
    procedure_code: str
    procedure_name: str
    agency_code: str
    received_at: datetime | None
    due_date: date | None
    citizen_due_date: date | None
    resolved_at: datetime | None


class CaseDetail(CasePublic):
    field_code: str
    channel: str | None
    online_level: str | None
    return_by_post: bool
    processing_days: int
    fee_vnd: int
    amount_paid: int
    supplement_requests: int
    on_time: bool | None
    result_digitised: bool
    allowed_events: list[str]
    history: list[HistoryItem]

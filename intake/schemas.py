"""The shapes intake's API accepts and answers (API.md), separate from its tables."""

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

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


class ApplicantOut(BaseModel):
    """The applicant as the receiving agency's counter sees it (never in the public look-up)."""

    kind: str
    id_number: str | None = None
    name: str | None = None
    address: str | None = None
    phone: str | None = None


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


class SubmissionCreate(BaseModel):
    """An application submitted online (status 1), awaiting acceptance at the counter."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID | None = Field(default=None, description="Retrying with the same id is a no-op.")
    case_code: CaseCode | None = Field(default=None, description="Generated when absent.")
    agency_code: AgencyCode = Field(description="Agency the application is addressed to.")
    procedure_code: str = Field(max_length=40, description="Must be in the catalogue.")
    online_level: OnlineLevel = Field(description="partial | full, as the procedure offers.")
    submitted_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with offset; defaults to now; not in the future."
    )
    return_by_post: bool = False
    applicant: ApplicantIn | None = None


class SubmissionReceipt(BaseModel):
    """The acknowledgement of an online submission: a case code, no due date yet."""

    case_code: str
    status: int
    status_name: str
    agency_code: str
    agency_name: str
    procedure_code: str
    procedure_name: str
    online_level: str
    submitted_at: datetime
    processing_days: int
    fee_vnd: int
    allowed_events: list[str]


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
    receipt: CaseReceipt | None = Field(
        default=None, description="The appointment slip, when the event received the case."
    )


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
    applicant: ApplicantOut | None = Field(
        default=None, description="Personal data: shown to the agency's counters and "
        "administrators only, and every read is in the audit trail.")


# --- the admin API: versions of agencies and procedures ---------------------------------------

AgencyKindStr = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,39}$")]
Level = Literal["province", "district", "commune"]


class ProcedureVersionIn(BaseModel):
    """A new version of a procedure: the whole procedure as it applies from `effective_from`."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=1000)
    field_code: str = Field(min_length=1, max_length=40)
    field_name: Text = Field(min_length=1, max_length=300)
    processing_days: int = Field(ge=0, le=365, description="Working days (N).")
    fee_vnd: int = Field(ge=0, le=10_000_000_000)
    online_levels: list[OnlineLevel] = Field(default_factory=list)
    handling_level: Level
    handling_chain: list[AgencyKindStr] = Field(
        min_length=1, max_length=10,
        description="Kinds of the offices that handle it, in order (several = liên thông).",
    )
    effective_from: date | None = Field(
        default=None, description="Local date it applies from; defaults to today."
    )


class AgencyVersionIn(BaseModel):
    """A new version of an agency: the whole record as it applies from `effective_from`."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=300)
    level: Level
    kind: AgencyKindStr
    parent: AgencyCode | None = None
    reception: bool = False
    valid_from: date | None = Field(default=None, description="First day it exists.")
    valid_to: date | None = Field(default=None, description="Last day it exists.")
    successor: AgencyCode | None = Field(
        default=None, description="The unit that took over its territory and open cases."
    )
    effective_from: date | None = Field(
        default=None, description="Local date this version applies from; defaults to today."
    )

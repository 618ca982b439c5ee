"""The CloudEvents 1.0 envelope every event travels in (structured JSON mode)."""

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from contracts.cases import CaseEvent


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=64,
                    description="Event id; the idempotency key end to end.")
    source: str = Field(min_length=1, description="URI reference of the producer, e.g. "
                        "/motcua/intake.")
    type: str = Field(description="Reverse-DNS event type, e.g. vn.motcua.case.received.")
    subject: str = Field(min_length=1, description="The case code.")
    time: AwareDatetime = Field(description="When the producer recorded the event.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataversion: int = Field(ge=1, description="Version of the payload schema (extension).")
    data: SerializeAsAny[CaseEvent]

    @property
    def case_code(self) -> str:
        return self.subject


def new_envelope(
    data: CaseEvent, *, source: str, event_id: str | None = None, time: datetime | None = None
) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=data.event_type(),
        subject=data.case_code,
        time=time or datetime.now(UTC),
        dataversion=data.VERSION,
        data=data,
    )

"""The CloudEvents 1.0 envelope every event travels in (structured JSON mode)."""

import uuid
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from contracts.event import Event

P = TypeVar("P", bound=Event)


class Envelope(BaseModel, Generic[P]):
    """`Envelope[CaseReceived]` where the payload type is known; a bare `Envelope` holds any
    event (the codec picks the payload class from `type`)."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=64,
                    description="Event id; the idempotency key end to end.")
    source: str = Field(min_length=1, description="URI reference of the producer, e.g. "
                        "/motcua/intake.")
    type: str = Field(description="Reverse-DNS event type, e.g. vn.motcua.case.received.")
    subject: str = Field(min_length=1, description="The entity the event is about: the case "
                         "code, or the agency or procedure code of a catalogue event.")
    time: AwareDatetime = Field(description="When the producer recorded the event.")
    datacontenttype: Literal["application/json"] = "application/json"
    # Strict: from JSON, `true`, `1.0` or `"1"` is not version 1 (codec.decode reads
    # envelopes straight from their bytes).
    dataversion: int = Field(ge=1, strict=True,
                             description="Version of the payload schema (extension).")
    subjectsequence: int | None = Field(
        default=None, ge=1, strict=True,
        description="The event's place in its subject's history, from 1 (extension): a case's "
        "events carry 1, 2, 3, … in the order intake recorded them. A consumer that remembers "
        "the last one it applied recognises a redelivered event without storing its id. Absent "
        "on catalogue and client events, and on case events recorded before it existed.")
    data: SerializeAsAny[P]

    @property
    def case_code(self) -> str:
        return self.subject


def new_envelope(
    data: P, *, source: str, event_id: str | None = None, time: datetime | None = None,
    sequence: int | None = None,
) -> "Envelope[P]":
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=data.event_type(),
        subject=data.key(),
        time=time or datetime.now(UTC),
        dataversion=data.VERSION,
        subjectsequence=sequence,
        data=data,
    )

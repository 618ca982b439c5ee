"""What a dead-lettered record carries: the original bytes, plus a header saying why."""

from pydantic import BaseModel, ConfigDict, Field

# The header a consumer adds (JSON, UTF-8) next to the original headers when it dead-letters.
REASON_HEADER = "dlq_reason"


class DeadLetterReason(BaseModel):
    """The JSON in the `dlq_reason` header of a record on the dead-letter topic."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(description="Stable error code, e.g. undecodable or unknown_version.")
    reason: str = Field(max_length=2000, description="Human-readable detail, truncated.")
    group_id: str = Field(description="Consumer group that gave up on the record.")
    topic: str = Field(description="Topic the record was read from.")
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)

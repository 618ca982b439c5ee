"""The baseline for the intake benchmark: a bare FastAPI JSON endpoint, same server settings.

It parses and validates a body of the same shape into a pydantic model and answers JSON, but
stores and publishes nothing: the ceiling of the framework on this machine.
"""

from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel

app = FastAPI()


class Applicant(BaseModel):
    kind: str
    id_number: str | None = None
    name: str | None = None


class Body(BaseModel):
    agency_code: str
    procedure_code: str
    channel: str
    online_level: str | None = None
    received_at: AwareDatetime | None = None
    return_by_post: bool = False
    applicant: Applicant | None = None


class Event(BaseModel):
    case_code: str
    type: str
    event_id: str | None = None
    occurred_at: AwareDatetime | None = None
    from_office: str | None = None
    to_office: str | None = None
    method: str | None = None


class Batch(BaseModel):
    events: list[Event]


@app.post("/v1/cases", status_code=201)
async def receive(body: Body) -> dict[str, object]:
    return {"case_code": f"{body.agency_code}-000000-0001", "status": 2,
            "received_at": (body.received_at or datetime.now(UTC)).isoformat()}


@app.post("/v1/events:batch")
async def batch(body: Batch) -> dict[str, object]:
    return {"results": [{"index": i, "status": 201} for i in range(len(body.events))]}


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}

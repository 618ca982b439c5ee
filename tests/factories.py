"""Request bodies for tests: valid by default, overridden per test."""

import uuid
from typing import Any

# The Thanh Hóa Public Administration Service Centre and a free, same-day procedure
# (birth registration) handled by a commune; a fee procedure (lý lịch tư pháp) by a department.
CENTRE = "000.00.20.H56"
FREE_PROCEDURE = "1.001193"
FEE_PROCEDURE = "2.000488"


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "agency_code": CENTRE,
        "procedure_code": FREE_PROCEDURE,
        "channel": "counter",
        "received_at": "2026-03-02T09:15:00+07:00",
        "applicant": {"kind": "citizen", "id_number": "001203001234", "name": "Nguyễn Văn A"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def event_body(type_: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": type_,
            "occurred_at": "2026-03-02T10:00:00+07:00", **fields}

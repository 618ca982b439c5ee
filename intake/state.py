"""A case as intake's domain functions read and change it: one row of intake_cases.

A plain object rather than the mapped class: a batch loads, changes and writes back hundreds of
cases in one transaction, and building mapped instances cost more than all the rest of the work
(profiled: ~0.3 ms a case)."""

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any


@dataclass(slots=True, kw_only=True)
class CaseState:
    case_code: str
    agency_code: str
    province_code: str
    district_code: str | None = None
    procedure_code: str
    procedure_name: str
    field_code: str
    channel: str | None = None
    online_level: str | None = None
    return_by_post: bool = False
    status: int
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    receipt_date: date | None = None
    processing_days: int
    fee_vnd: int = 0
    due_date: date | None = None
    citizen_due_date: date | None = None
    amount_requested: int = 0
    amount_paid: int = 0
    supplement_requests: int = 0
    paused_on: date | None = None
    pauses: list[list[str]] = field(default_factory=list)
    resolved_at: datetime | None = None
    on_time: bool | None = None
    result_digitised: bool = False
    rated: bool = False
    overdue_notified_for: date | None = None
    event_count: int = 0
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> "CaseState":
        if type(row) is dict and len(row) == len(COLUMNS):
            return cls(**row)  # the columns themselves (intake.batch reads them so): 2.4 → 0.9 µs
        return cls(**{name: row[name] for name in COLUMNS})

    def row(self) -> dict[str, Any]:
        return _row(self)

    def copy(self) -> "CaseState":
        # pauses is the only mutable value; a refused event must leave the original as it was.
        # Slot by slot: copy.copy goes through __reduce_ex__, 2.3 x slower for every event.
        return _copy(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CaseState))


def _generated(source: str) -> Any:
    """A function written out over the columns, as dataclasses writes __init__: a loop of
    getattr and setattr by name cost 1.3 µs a case for each of row and copy, straight-line
    attribute access 0.8 and 0.4 (docs/benchmarks.md, fourteenth pass). Every event copies
    its case, and every case changed is turned into a row."""
    namespace: dict[str, Any] = {"new": object.__new__, "CaseState": CaseState}
    exec(source, namespace)  # the source is built from the dataclass's own field names
    return namespace["generated"]


_row = _generated("def generated(case):\n    return {"
                  + ", ".join(f"{name!r}: case.{name}" for name in COLUMNS) + "}\n")
_copy = _generated("def generated(case):\n    clone = new(CaseState)\n"
                   + "".join(f"    clone.{name} = case.{name}\n"
                             for name in COLUMNS if name != "pauses")
                   + "    clone.pauses = [list(p) for p in case.pauses]\n    return clone\n")

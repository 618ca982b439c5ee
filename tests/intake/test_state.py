"""CaseState's row and copy, written out over the dataclass's fields: every column is in the
row with its value, and a copy is equal but shares nothing a domain function changes (a
refused event must leave the stored case as it was)."""

from dataclasses import fields
from datetime import UTC, date, datetime

from intake.state import COLUMNS, CaseState


def _case() -> CaseState:
    return CaseState(case_code="000.00.20.H56-260302-0001", agency_code="000.00.20.H56",
                     province_code="H56", district_code="H56.01", procedure_code="2.000488",
                     procedure_name="Đăng ký khai sinh", field_code="ho-tich", channel="online",
                     status=4, received_at=datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
                     receipt_date=date(2026, 3, 2), processing_days=5, fee_vnd=50_000,
                     due_date=date(2026, 3, 9), pauses=[["2026-03-03", "2026-03-04"]],
                     event_count=3, updated_at=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))


def test_the_row_holds_every_column_with_its_value() -> None:
    case = _case()
    assert tuple(f.name for f in fields(CaseState)) == COLUMNS
    assert case.row() == {f.name: getattr(case, f.name) for f in fields(CaseState)}
    assert list(case.row()) == list(COLUMNS)  # COPY and UPDATE take the columns in this order


def test_a_copy_is_equal_and_changing_it_leaves_the_original() -> None:
    case = _case()
    clone = case.copy()
    assert clone == case and clone is not case
    clone.status = 10
    clone.pauses[0][1] = "2026-03-05"
    clone.pauses.append(["2026-03-06", "2026-03-07"])
    assert case.status == 4 and case.pauses == [["2026-03-03", "2026-03-04"]]
    assert case.row() == _case().row()

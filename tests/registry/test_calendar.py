"""Working-day arithmetic against the real holiday files, and the files themselves."""

import json
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.calendar import (
    WorkingCalendar,
    default_calendar_dir,
    due_date,
    is_on_time,
    resolution_days,
)

CALENDAR = WorkingCalendar.load(default_calendar_dir())
CALENDAR_FILES = sorted(default_calendar_dir().glob("*.json"))


def d(text: str) -> date:
    return date.fromisoformat(text)


# (received_on, processing_days, expected due date, why)
DUE_DATES = [
    ("2025-03-10", 3, "2025-03-13", "received Monday, N=3: Thursday"),
    ("2025-03-15", 1, "2025-03-17", "received Saturday, N=1: Monday"),
    ("2025-03-16", 1, "2025-03-17", "received Sunday, N=1: Monday"),
    ("2025-03-14", 1, "2025-03-17", "received Friday, N=1: skips the weekend"),
    ("2025-03-10", 0, "2025-03-10", "same-day procedure: due on the receipt date"),
    ("2025-03-15", 0, "2025-03-15", "N=0 stays on the receipt date even on a Saturday"),
    ("2025-04-30", 1, "2025-05-05", "received on a holiday: 1/5, the swapped 2/5, weekend"),
    ("2025-01-24", 1, "2025-02-03", "Tết 2025: Friday before the 9-day break"),
    ("2025-01-24", 3, "2025-02-05", "Tết 2025: counting resumes after the break"),
    ("2025-01-29", 1, "2025-02-03", "received on mùng 1 Tết 2025"),
    ("2026-02-13", 1, "2026-02-23", "Tết 2026: 14/2 to 22/2 off"),
    ("2026-02-12", 2, "2026-02-23", "Tết 2026: one day before, one after"),
    ("2024-02-07", 1, "2024-02-15", "Tết 2024: 8/2 to 14/2 off"),
    ("2024-04-26", 1, "2024-05-02", "30/4 2024: the swapped Monday 29/4 is off"),
    ("2024-05-03", 1, "2024-05-04", "make-up Saturday 4/5/2024 is a working day"),
    ("2025-04-25", 1, "2025-04-26", "make-up Saturday 26/4/2025 is a working day"),
    ("2025-04-25", 2, "2025-04-28", "after the make-up Saturday comes Monday"),
    ("2025-04-29", 1, "2025-05-05", "30/4-1/5 2025 with the swapped Friday"),
    ("2025-04-04", 1, "2025-04-08", "Giỗ Tổ 2025 on Monday 7/4"),
    ("2026-04-24", 1, "2026-04-28", "Giỗ Tổ 2026 on Sunday, compensated on Monday"),
    ("2026-04-29", 1, "2026-05-04", "30/4-1/5 2026 fall on Thursday-Friday"),
    ("2024-08-30", 1, "2024-09-04", "Quốc khánh 2024: 2/9 and 3/9"),
    ("2025-08-29", 1, "2025-09-03", "Quốc khánh 2025: 1/9 and 2/9"),
    ("2026-08-28", 1, "2026-09-03", "Quốc khánh 2026: swapped 31/8, then 1/9 and 2/9"),
    ("2026-08-21", 1, "2026-08-22", "make-up Saturday 22/8/2026 is a working day"),
    ("2025-12-31", 1, "2026-01-05", "across the year end into Tết Dương lịch 2026"),
    ("2025-12-31", 6, "2026-01-10", "make-up Saturday 10/1/2026 is the 6th working day"),
    ("2025-03-03", 15, "2025-03-24", "several plain weeks"),
]


@pytest.mark.parametrize(
    ("received", "days", "expected"),
    [pytest.param(r, n, e, id=why) for r, n, e, why in DUE_DATES],
)
def test_due_date_without_pauses(received: str, days: int, expected: str) -> None:
    assert due_date(
        calendar=CALENDAR, received_on=d(received), processing_days=days, pauses=[]
    ) == d(expected)


# (received_on, N, pauses, expected due date, why)
PAUSED = [
    (
        "2025-03-03",
        5,
        [("2025-03-05", "2025-03-10")],
        "2025-03-13",
        "Thu, Fri and Mon paused: three working days added",
    ),
    (
        "2025-03-03",
        5,
        [("2025-03-07", "2025-03-10")],
        "2025-03-11",
        "requested Friday, received Monday: the weekend is free, one day added",
    ),
    (
        "2025-03-03",
        5,
        [("2025-03-05", "2025-03-05")],
        "2025-03-10",
        "supplement arriving the day it was requested adds nothing",
    ),
    (
        "2025-01-20",
        5,
        [("2025-01-22", "2025-02-04")],
        "2025-02-07",
        "a pause across Tết 2025 only counts its working days (4)",
    ),
    (
        "2025-03-03",
        5,
        [("2025-03-04", "2025-03-06"), ("2025-03-05", "2025-03-07")],
        "2025-03-13",
        "overlapping pauses count each paused working day once",
    ),
    (
        "2025-04-21",
        5,
        [("2025-04-24", "2025-04-28")],
        "2025-05-05",
        "the make-up Saturday inside a pause is a paused working day",
    ),
]


@pytest.mark.parametrize(
    ("received", "days", "pauses", "expected"),
    [pytest.param(r, n, p, e, id=why) for r, n, p, e, why in PAUSED],
)
def test_due_date_with_supplement_pauses(
    received: str, days: int, pauses: list[tuple[str, str]], expected: str
) -> None:
    assert due_date(
        calendar=CALENDAR,
        received_on=d(received),
        processing_days=days,
        pauses=[(d(a), d(b)) for a, b in pauses],
    ) == d(expected)


def test_pause_received_before_requested_is_refused() -> None:
    with pytest.raises(ValueError, match="before its request"):
        due_date(
            calendar=CALENDAR,
            received_on=d("2025-03-03"),
            processing_days=5,
            pauses=[(d("2025-03-10"), d("2025-03-05"))],
        )


def test_negative_processing_days_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CALENDAR.add_working_days(d("2025-03-03"), -1)


# (received_on, resolved_on, pauses, expected working days, why)
RESOLUTIONS = [
    ("2025-03-03", "2025-03-14", [], 9, "Mon to the next Fri"),
    ("2025-03-03", "2025-03-03", [], 0, "resolved on the receipt date"),
    ("2025-03-08", "2025-03-10", [], 1, "received Saturday, resolved Monday"),
    ("2025-03-03", "2025-03-14", [("2025-03-05", "2025-03-10")], 6, "minus 3 paused days"),
    ("2025-01-24", "2025-02-03", [], 1, "Tết 2025 does not count"),
    ("2026-02-13", "2026-02-24", [], 2, "Tết 2026 does not count"),
    ("2025-04-25", "2025-04-28", [], 2, "make-up Saturday counts"),
    (
        "2025-03-03",
        "2025-03-07",
        [("2025-03-05", "2025-03-12")],
        2,
        "only the part of a pause before resolution is subtracted",
    ),
]


@pytest.mark.parametrize(
    ("received", "resolved", "pauses", "expected"),
    [pytest.param(r, s, p, e, id=why) for r, s, p, e, why in RESOLUTIONS],
)
def test_resolution_days(
    received: str, resolved: str, pauses: list[tuple[str, str]], expected: int
) -> None:
    assert (
        resolution_days(
            calendar=CALENDAR,
            received_on=d(received),
            resolved_on=d(resolved),
            pauses=[(d(a), d(b)) for a, b in pauses],
        )
        == expected
    )


@pytest.mark.parametrize(
    ("resolved", "requests", "expected"),
    [
        pytest.param("2025-03-13", 0, True, id="0 requests, on the due date"),
        pytest.param("2025-03-14", 0, False, id="0 requests, one day late"),
        pytest.param("2025-03-10", 1, True, id="1 request, early"),
        pytest.param("2025-03-13", 1, True, id="1 request, on the due date"),
        pytest.param("2025-03-14", 1, False, id="1 request, late"),
        pytest.param("2025-03-10", 2, False, id="2 requests: late whatever the dates"),
        pytest.param("2025-03-10", 3, False, id="3 requests: late"),
    ],
)
def test_is_on_time(resolved: str, requests: int, expected: bool) -> None:
    assert (
        is_on_time(resolved_on=d(resolved), due=d("2025-03-13"), supplement_requests=requests)
        is expected
    )


def test_working_days_between_is_zero_when_not_after() -> None:
    assert CALENDAR.working_days_between(d("2025-03-10"), d("2025-03-10")) == 0
    assert CALENDAR.working_days_between(d("2025-03-10"), d("2025-03-03")) == 0


def test_is_working_day() -> None:
    assert CALENDAR.is_working_day(d("2025-03-10"))  # a plain Monday
    assert not CALENDAR.is_working_day(d("2025-03-15"))  # a plain Saturday
    assert not CALENDAR.is_working_day(d("2025-01-29"))  # mùng 1 Tết
    assert CALENDAR.is_working_day(d("2025-04-26"))  # make-up Saturday
    assert not CALENDAR.is_working_day(d("2026-04-27"))  # Giỗ Tổ compensated


def test_covers_only_loaded_years() -> None:
    assert CALENDAR.covers(d("2024-06-01"))
    assert CALENDAR.covers(d("2026-12-31"))
    assert not CALENDAR.covers(d("2023-12-31"))
    assert not CALENDAR.covers(d("2027-01-01"))


def test_uncovered_years_fall_back_to_monday_to_friday() -> None:
    # 2027-01-01 is a Friday: without data it is a working day, which is why covers() exists.
    assert CALENDAR.add_working_days(d("2026-12-31"), 1) == d("2027-01-01")


def _naive_count(a: date, b: date) -> int:
    return sum(CALENDAR.is_working_day(a + timedelta(days=i)) for i in range(1, (b - a).days + 1))


days_2023_2027 = st.dates(min_value=date(2023, 12, 1), max_value=date(2027, 1, 31))


@given(a=days_2023_2027, b=days_2023_2027)
def test_working_days_between_matches_day_by_day_count(a: date, b: date) -> None:
    assert CALENDAR.working_days_between(a, b) == _naive_count(a, b)


@given(start=days_2023_2027, n=st.integers(min_value=1, max_value=120))
def test_add_working_days_lands_on_the_nth_working_day(start: date, n: int) -> None:
    due = CALENDAR.add_working_days(start, n)
    assert CALENDAR.is_working_day(due)
    assert CALENDAR.working_days_between(start, due) == n
    assert CALENDAR.working_days_between(start, due - timedelta(days=1)) == n - 1


def test_make_up_day_on_a_weekday_is_refused() -> None:
    with pytest.raises(ValueError, match="weekends"):
        WorkingCalendar(set(), {d("2025-04-28")})


def test_date_both_holiday_and_make_up_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        WorkingCalendar({d("2025-04-26")}, {d("2025-04-26")})


def _write(directory: Path, name: str, body: dict[str, Any]) -> None:
    (directory / name).write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")


def test_load_refuses_a_date_outside_the_file_year(tmp_path: Path) -> None:
    _write(tmp_path, "2025.json", {"year": 2025, "holidays": [{"date": "2026-01-01"}]})
    with pytest.raises(ValueError, match="outside 2025"):
        WorkingCalendar.load(tmp_path)


def test_load_refuses_a_year_described_twice(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", {"year": 2025, "holidays": []})
    _write(tmp_path, "b.json", {"year": 2025, "holidays": []})
    with pytest.raises(ValueError, match="another file"):
        WorkingCalendar.load(tmp_path)


def test_load_covers_a_year_with_no_weekday_holiday(tmp_path: Path) -> None:
    _write(tmp_path, "2030.json", {"year": 2030, "holidays": [], "make_up_working_days": []})
    assert WorkingCalendar.load(tmp_path).covers(d("2030-06-01"))


# The data files themselves.


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_calendar_files_exist_for_2024_to_2026() -> None:
    assert [p.name for p in CALENDAR_FILES] == ["2024.json", "2025.json", "2026.json"]


@pytest.mark.parametrize("path", CALENDAR_FILES, ids=lambda p: p.name)
def test_calendar_file_is_well_formed(path: Path) -> None:
    data = _load(path)
    year = data["year"]
    assert path.stem == str(year)
    assert data["_source"].strip()
    holidays = [d(h["date"]) for h in data["holidays"]]
    make_ups = [d(m["date"]) for m in data["make_up_working_days"]]
    assert all(h["name"].strip() for h in data["holidays"] + data["make_up_working_days"])
    assert all(x.year == year for x in holidays + make_ups)
    assert len(holidays) == len(set(holidays)), "duplicate holiday"
    assert len(make_ups) == len(set(make_ups)), "duplicate make-up day"
    assert all(m.weekday() >= 5 for m in make_ups), "make-up days are Saturdays or Sundays"
    assert not set(holidays) & set(make_ups)


@pytest.mark.parametrize("path", CALENDAR_FILES, ids=lambda p: p.name)
def test_calendar_file_strings_are_nfc(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert unicodedata.normalize("NFC", text) == text
    assert all(unicodedata.is_normalized("NFC", s) for s in _strings(_load(path)))


@pytest.mark.parametrize("path", CALENDAR_FILES, ids=lambda p: p.name)
def test_calendar_file_has_the_fixed_date_holidays(path: Path) -> None:
    year = _load(path)["year"]
    for month, day in [(1, 1), (4, 30), (5, 1), (9, 2)]:
        fixed = date(year, month, day)
        if fixed.weekday() < 5:
            assert not CALENDAR.is_working_day(fixed), fixed


CALENDAR_WEEKDAYS = {
    year: sum(
        (date(year, 1, 1) + timedelta(days=i)).weekday() < 5
        for i in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)
    )
    for year in (2024, 2025, 2026)
}


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_swaps_keep_the_statutory_number_of_days_off(year: int) -> None:
    # Labour Code 2019 art. 112: 11 days a year; swaps move days off without adding any, and a
    # statutory day on a weekend is compensated on the next working day.
    weekdays = CALENDAR_WEEKDAYS[year]
    working = CALENDAR.working_days_between(date(year - 1, 12, 31), date(year, 12, 31))
    assert weekdays - working == 11

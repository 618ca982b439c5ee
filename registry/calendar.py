"""Working days, due dates and resolution times for one-stop-shop cases.

Every function takes local (Asia/Ho_Chi_Minh) dates: converting `received_at` and friends to
local dates is the caller's job, so this module stays free of time zones and clocks.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

_SATURDAY = 5
_REMEMBERED = 50_000  # add_working_days answers kept (a few years of every day and period)


def default_calendar_dir() -> Path:
    return Path(__file__).parent / "data" / "calendar"


def _weekdays_through(d: date) -> int:
    """Mon-Fri days from 0001-01-01 through `d`: ordinal 1 is a Monday, so weeks align at 7."""
    weeks, rest = divmod(d.toordinal(), 7)
    return weeks * 5 + min(rest, 5)


class WorkingCalendar:
    """Mon-Fri minus public holidays plus make-up Saturdays, for the years it has data for."""

    def __init__(
        self,
        holidays: Iterable[date],
        make_up_working_days: Iterable[date] = (),
        *,
        years: Iterable[int] | None = None,
    ) -> None:
        holiday_set = frozenset(holidays)
        make_up_set = frozenset(make_up_working_days)
        # Both are data errors that would otherwise silently shift every due date by a day.
        if weekday_make_ups := sorted(d for d in make_up_set if d.weekday() < _SATURDAY):
            raise ValueError(f"make-up working days must be weekends: {weekday_make_ups}")
        if clash := sorted(holiday_set & make_up_set):
            raise ValueError(f"dates are both a holiday and a make-up working day: {clash}")
        self.holidays = holiday_set
        self.make_up_working_days = make_up_set
        # A holiday on a weekend is listed for people, but removes no working day.
        self._weekday_holidays = sorted(d for d in holiday_set if d.weekday() < _SATURDAY)
        self._make_ups = sorted(make_up_set)
        self.years = frozenset(
            years if years is not None else {d.year for d in holiday_set | make_up_set}
        )
        # add_working_days answers, remembered: intake computes a due date for every receipt
        # (a bisection of ~20 working-day counts) from a handful of (day, processing days)
        # pairs a day. The data above never changes after __init__.
        self._added: dict[tuple[date, int], date] = {}

    @classmethod
    def load(cls, directory: Path) -> WorkingCalendar:
        holidays: set[date] = set()
        make_ups: set[date] = set()
        years: set[int] = set()
        for path in sorted(directory.glob("*.json")):
            year, file_holidays, file_make_ups = _read_year(path)
            if year in years:
                raise ValueError(f"{path}: year {year} is described by another file too")
            years.add(year)
            holidays |= file_holidays
            make_ups |= file_make_ups
        return cls(holidays, make_ups, years=years)

    def covers(self, d: date) -> bool:
        """Outside these years every Mon-Fri counts as working, so callers should warn."""
        return d.year in self.years

    def is_working_day(self, d: date) -> bool:
        if d in self.make_up_working_days:
            return True
        return d.weekday() < _SATURDAY and d not in self.holidays

    def working_days_between(self, a: date, b: date) -> int:
        """Working days d with a < d <= b; 0 when b <= a."""
        if b <= a:
            return 0
        # Counted arithmetically, not day by day: KPI projections call this for every case.
        weekdays = _weekdays_through(b) - _weekdays_through(a)
        holidays = bisect_right(self._weekday_holidays, b) - bisect_right(self._weekday_holidays, a)
        make_ups = bisect_right(self._make_ups, b) - bisect_right(self._make_ups, a)
        return weekdays - holidays + make_ups

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day strictly after `start`; `start` itself when n is 0."""
        if n < 0:
            raise ValueError(f"cannot add a negative number of working days: {n}")
        if n == 0:
            return start
        key = (start, n)
        if (known := self._added.get(key)) is not None:
            return known
        if len(self._added) >= _REMEMBERED:
            self._added.clear()
        answer = self._added[key] = self._add_working_days(start, n)
        return answer

    def _add_working_days(self, start: date, n: int) -> date:
        # The count grows by exactly one on each working day, so the first day where it reaches
        # n is the answer; bracket it, then bisect.
        span = 2 * n + 14
        while self.working_days_between(start, start + timedelta(days=span)) < n:
            span *= 2
        low, high = 1, span
        while low < high:
            mid = (low + high) // 2
            if self.working_days_between(start, start + timedelta(days=mid)) >= n:
                high = mid
            else:
                low = mid + 1
        return start + timedelta(days=low)


def _read_year(path: Path) -> tuple[int, set[date], set[date]]:
    raw: Any = json.loads(path.read_text(encoding="utf-8"))
    year = raw.get("year") if isinstance(raw, dict) else None
    if not isinstance(year, int):
        raise ValueError(f"{path}: missing integer 'year'")

    def dates(key: str) -> set[date]:
        entries = raw.get(key, [])
        if not isinstance(entries, list):
            raise ValueError(f"{path}: '{key}' must be a list")
        out: set[date] = set()
        for entry in entries:
            try:
                d = date.fromisoformat(entry["date"])
            except (TypeError, KeyError, ValueError) as exc:
                raise ValueError(f"{path}: bad entry in '{key}': {entry!r}") from exc
            # covers() trusts the file's year, so a stray date would be data it does not cover.
            if d.year != year:
                raise ValueError(f"{path}: {d} in '{key}' is outside {year}")
            out.add(d)
        return out

    return year, dates("holidays"), dates("make_up_working_days")


def _merged(pauses: Sequence[tuple[date, date]]) -> list[tuple[date, date]]:
    """Union of the pauses, so a working day inside two overlapping pauses is counted once."""
    for requested, received in pauses:
        if received < requested:
            raise ValueError(f"supplement received on {received} before its request {requested}")
    out: list[tuple[date, date]] = []
    for requested, received in sorted(pauses):
        if out and requested <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], received))
        else:
            out.append((requested, received))
    return out


def due_date(
    *,
    calendar: WorkingCalendar,
    received_on: date,
    processing_days: int,
    pauses: Sequence[tuple[date, date]] = (),
) -> date:
    """The appointment date: N working days after receipt, pushed back by completed pauses.

    `pauses` are (supplement requested on, supplement received on) local-date pairs; a pause
    still open does not extend anything yet, the case is simply not overdue while it waits.
    """
    due = calendar.add_working_days(received_on, processing_days)
    extension = sum(calendar.working_days_between(a, b) for a, b in _merged(pauses))
    return calendar.add_working_days(due, extension)


def resolution_days(
    *,
    calendar: WorkingCalendar,
    received_on: date,
    resolved_on: date,
    pauses: Sequence[tuple[date, date]] = (),
) -> int:
    """Working days from receipt to resolution, minus the working days spent waiting."""
    total = calendar.working_days_between(received_on, resolved_on)
    # Only the part of a pause inside (receipt, resolution] was ever counted in the total.
    paused = sum(
        calendar.working_days_between(max(a, received_on), min(b, resolved_on))
        for a, b in _merged(pauses)
    )
    return total - paused


def is_on_time(*, resolved_on: date, due: date, supplement_requests: int) -> bool:
    """The law allows one supplement request; a second makes the case late whatever its dates."""
    return supplement_requests <= 1 and resolved_on <= due

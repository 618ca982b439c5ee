"""Local (Asia/Ho_Chi_Minh) periods: day 2026-03-02, month 2026-03, quarter 2026-Q1, year 2026.

Counters are stored per day and per month; quarters and years are read as sums of months.
"""

import re
from datetime import date, datetime

from services.clock import LOCAL_TZ

LIVE = "live"  # the period of figures that are a count of "now" (the overdue backlog)
_PATTERN = re.compile(r"^\d{4}(-Q[1-4]|-(0[1-9]|1[0-2])(-\d{2})?)?$")


def local_date(ts: datetime) -> date:
    return ts.astimezone(LOCAL_TZ).date()


def periods_of(day: date) -> tuple[str, str]:
    """The periods a fact on `day` is counted under: its day and its month. A quarter or a
    year is the sum of its months (`stored_periods`): a batch's counter rows for those were
    half of all it wrote, each updated again by every batch, and reading them costs a sum of
    three or twelve rows (docs/benchmarks.md, fifteenth pass)."""
    return day.isoformat(), f"{day.year:04d}-{day.month:02d}"


def stored_periods(period: str) -> list[str]:
    """The stored periods whose counters add up to `period` (a valid one): a quarter's three
    months, a year's twelve, else the period itself (a day, a month, the live backlog)."""
    if len(period) == 4:
        return [f"{period}-{m:02d}" for m in range(1, 13)]
    if period[4:6] == "-Q":
        first = (int(period[6]) - 1) * 3 + 1
        return [f"{period[:4]}-{m:02d}" for m in range(first, first + 3)]
    return [period]


def is_valid_period(period: str) -> bool:
    if not _PATTERN.match(period):
        return False
    if len(period) == 10:
        try:
            date.fromisoformat(period)
        except ValueError:
            return False
    return True


def current_month(now: datetime) -> str:
    return periods_of(local_date(now))[1]

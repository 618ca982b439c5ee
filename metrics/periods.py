"""Local (Asia/Ho_Chi_Minh) periods: day 2026-03-02, month 2026-03, quarter 2026-Q1, year 2026."""

import re
from datetime import date, datetime

from services.clock import LOCAL_TZ

LIVE = "live"  # the period of figures that are a count of "now" (the overdue backlog)
_PATTERN = re.compile(r"^\d{4}(-Q[1-4]|-(0[1-9]|1[0-2])(-\d{2})?)?$")


def local_date(ts: datetime) -> date:
    return ts.astimezone(LOCAL_TZ).date()


def periods_of(day: date) -> tuple[str, str, str, str]:
    """Every period a fact on `day` counts in: its day, month, quarter and year."""
    return (
        day.isoformat(),
        f"{day.year:04d}-{day.month:02d}",
        f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}",
        f"{day.year:04d}",
    )


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

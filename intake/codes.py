"""Case codes: {agency_code}-{yyMMdd}-{NNNN}, a sequence per agency per local day.

The counter row is incremented with INSERT … ON CONFLICT … RETURNING inside the receiving
transaction (intake.batch.Batch.new_codes), so two intake processes receiving at the same
instant get different numbers.
"""

from datetime import date


def format_case_code(agency_code: str, day: date, seq: int) -> str:
    # The date's fields, not `strftime`: a third of the time, for every case received.
    return f"{agency_code}-{day.year % 100:02d}{day.month:02d}{day.day:02d}-{seq:04d}"


def parse_case_code(code: str) -> tuple[str, str]:
    """(agency code, yyMMdd) of a case code."""
    agency, day, _seq = code.rsplit("-", 2)
    return agency, day

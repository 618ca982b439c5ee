"""Case codes: {agency_code}-{yyMMdd}-{NNNN}, a sequence per agency per local day.

The counter row is incremented with INSERT … ON CONFLICT … RETURNING inside the receiving
transaction, so two intake processes receiving at the same instant get different numbers.
"""

from datetime import date

from sqlalchemy import text
from sqlmodel import Session


def next_sequence(session: Session, agency_code: str, day: date) -> int:
    return int(
        session.execute(
            text(
                "INSERT INTO intake_case_sequences (agency_code, day, last) "
                "VALUES (:a, :d, 1) ON CONFLICT (agency_code, day) "
                "DO UPDATE SET last = intake_case_sequences.last + 1 RETURNING last"
            ),
            {"a": agency_code, "d": day},
        ).scalar_one()
    )


def format_case_code(agency_code: str, day: date, seq: int) -> str:
    return f"{agency_code}-{day:%y%m%d}-{seq:04d}"


def parse_case_code(code: str) -> tuple[str, str]:
    """(agency code, yyMMdd) of a case code."""
    agency, day, _seq = code.rsplit("-", 2)
    return agency, day

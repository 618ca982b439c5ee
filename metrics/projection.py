"""The KPI projection: case events in, additive counters per scope and period out.

A batch is folded into an in-memory delta and written with one upsert, in the consumer's
transaction. Every fact is attributed to the period it belongs to (DOMAIN.md): receipt,
transfer, payment, return and rating to their own dates, resolution facts to the resolution
date, so a late digitised result corrects the month the case was resolved in.
"""

from collections import Counter as Tally
from collections.abc import Iterable
from datetime import date

from sqlalchemy import text
from sqlmodel import Session, select

from contracts import (
    CaseEvent,
    CaseOverdue,
    CaseReceived,
    Envelope,
    Paid,
    Rated,
    Resolved,
    ResultDigitised,
    Returned,
    SupplementReceived,
    SupplementRequested,
    Transferred,
)
from metrics.models import ProjectedCase
from metrics.periods import LIVE, local_date, periods_of

CLOSED = frozenset({3, 7, 8, 9, 10})
DISTRICTS_ABOLISHED = date(2025, 7, 1)
SATISFIED = frozenset({"satisfied", "very_satisfied"})
Key = tuple[str, str, str]  # (counter name, scope, period)


def scopes_of(case: ProjectedCase) -> list[str]:
    scopes = [
        "all",
        f"province:{case.province_code}",
        f"agency:{case.agency_code}",
        f"field:{case.field_code}",
        f"procedure:{case.procedure_code}",
    ]
    if case.district_code:
        scopes.append(f"district:{case.district_code}")
    # A field within a province: the plans set targets there (satisfaction in land, …).
    scopes.append(f"province-field:{case.province_code}/{case.field_code}")
    return scopes


class Delta:
    def __init__(self) -> None:
        self.tally: Tally[Key] = Tally()

    def add(self, case: ProjectedCase, day: date | None, name: str, n: int = 1) -> None:
        periods: Iterable[str] = (LIVE,) if day is None else periods_of(day)
        for scope in scopes_of(case):
            for period in periods:
                self.tally[(name, scope, period)] += n


def apply_batch(session: Session, events: list[Envelope]) -> None:
    codes = list({e.subject for e in events})
    cases: dict[str, ProjectedCase] = {}
    for i in range(0, len(codes), 500):
        rows = session.exec(
            select(ProjectedCase).where(ProjectedCase.case_code.in_(codes[i : i + 500]))  # type: ignore[attr-defined]
        )
        cases.update({c.case_code: c for c in rows})
    delta = Delta()
    for env in events:
        apply_event(env.data, cases, delta)
    for case in cases.values():
        session.add(case)
    session.flush()
    write_delta(session, delta)


def apply_event(event: CaseEvent, cases: dict[str, ProjectedCase], delta: Delta) -> None:
    if isinstance(event, CaseReceived):
        if event.case_code in cases:
            return
        day = local_date(event.occurred_at)
        case = ProjectedCase(
            case_code=event.case_code, agency_code=event.agency_code,
            province_code=event.province_code,
            # Districts were abolished on 2025-07-01: later cases count for no district, even
            # at a unit (a land registry branch) that still carries a district's name.
            district_code=event.district_code if day < DISTRICTS_ABOLISHED else None,
            field_code=event.field_code, procedure_code=event.procedure_code,
            channel=event.channel.value,
            online_level=event.online_level.value if event.online_level else None,
            received_at=event.occurred_at, status=2,
        )
        cases[event.case_code] = case
        delta.add(case, day, "received")
        if case.channel == "online":
            delta.add(case, day, "received_online")
            if case.online_level == "full":
                delta.add(case, day, "received_full")
        if case.channel == "postal":
            delta.add(case, day, "received_postal")
        return
    found = cases.get(event.case_code)
    if found is None:
        return  # an event of a case received before this projection's history began
    case = found
    day = local_date(event.occurred_at)
    if isinstance(event, Transferred):
        case.transfers += 1
        delta.add(case, day, "transfers")
        if event.method.value == "electronic":
            case.transfers_electronic += 1
            delta.add(case, day, "transfers_electronic")
    elif isinstance(event, Paid):
        delta.add(case, day, "payments")
        if event.method.value == "online":
            delta.add(case, day, "payments_online")
    elif isinstance(event, Returned):
        delta.add(case, day, "returned")
        if event.method.value == "post":
            delta.add(case, day, "returned_post")
    elif isinstance(event, Rated):
        delta.add(case, day, "ratings")
        if event.rating.value in SATISFIED:
            delta.add(case, day, "ratings_satisfied")
    elif isinstance(event, Resolved):
        _resolve(case, event, day, delta)
    elif isinstance(event, ResultDigitised):
        if not case.result_digitised and case.resolved_on is not None:
            delta.add(case, case.resolved_on, "resolved_digitised")
        case.result_digitised = True
    elif isinstance(event, CaseOverdue):
        if not case.overdue and case.status not in CLOSED and case.status != 5:
            case.overdue = True
            delta.add(case, None, "overdue_open")
    elif isinstance(event, SupplementRequested | SupplementReceived):
        # A pause stops the clock: the case leaves the backlog; a new overdue notice for the
        # extended due date puts it back.
        _leave_backlog(case, delta)
    if event.status is not None:
        case.status = event.status
        if event.status in CLOSED:
            _leave_backlog(case, delta)


def _resolve(case: ProjectedCase, event: Resolved, day: date, delta: Delta) -> None:
    case.resolved_on = day
    delta.add(case, day, "resolved")
    delta.add(case, day, "resolution_days", event.resolution_days)
    if case.channel == "online":
        delta.add(case, day, "resolved_online")
    if event.on_time:
        delta.add(case, day, "resolved_on_time")
    if event.result_digitised or case.result_digitised:
        case.result_digitised = True
        delta.add(case, day, "resolved_digitised")
    if case.transfers:
        delta.add(case, day, "resolved_with_transfer")
        if case.transfers == case.transfers_electronic:
            delta.add(case, day, "resolved_all_electronic")


def _leave_backlog(case: ProjectedCase, delta: Delta) -> None:
    if case.overdue:
        case.overdue = False
        delta.add(case, None, "overdue_open", -1)


_UPSERT = text(
    "INSERT INTO metrics_counters (name, scope, period, value) VALUES (:n, :s, :p, :v) "
    "ON CONFLICT (name, scope, period) DO UPDATE SET value = metrics_counters.value + "
    "excluded.value"
)


def write_delta(session: Session, delta: Delta) -> None:
    rows = [{"n": n, "s": s, "p": p, "v": v} for (n, s, p), v in sorted(delta.tally.items()) if v]
    if rows:
        # Sorted keys: concurrent projections (a rebuild beside the live one) lock rows in one
        # order and cannot deadlock.
        session.execute(_UPSERT, rows)

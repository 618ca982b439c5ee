"""The KPI projection: case events in, additive counters per scope and period out.

A batch is folded into an in-memory delta and written with one upsert, in the consumer's
transaction. Every fact is attributed to the period it belongs to (DOMAIN.md): receipt,
transfer, payment, return and rating to their own dates, resolution facts to the resolution
date, so a late digitised result corrects the month the case was resolved in.

This is the hot path of the metrics service (bench/projection.py): cases are plain slotted
objects rather than ORM instances, and the writes go through the driver in a few statements
per batch (projection_sql.py) rather than one ORM flush and a SQLAlchemy executemany.
"""

from datetime import date, datetime
from functools import lru_cache
from operator import attrgetter

from sqlmodel import Session

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
from contracts.types import OnlineLevel, PaymentMethod, Rating, ReturnMethod, TransferMethod
from metrics import projection_sql
from metrics.models import TRACKING
from metrics.periods import LIVE, local_date, periods_of

CLOSED = frozenset({3, 7, 8, 9, 10})
_SUBJECT, _SEQUENCE = attrgetter("subject"), attrgetter("subjectsequence")
_CASE_SEQUENCE = attrgetter("sequence")
DISTRICTS_ABOLISHED = date(2025, 7, 1)
Key = tuple[str, str, str]  # (counter name, scope, period)


class CaseFacts:
    """A row of metrics_cases (metrics.models.ProjectedCase): what the projection must remember
    of a case to attribute its later and late facts."""

    __slots__ = (
        "agency_code", "case_code", "channel", "district_code", "field_code", "online_level",
        "overdue", "procedure_code", "province_code", "received_at", "resolved_on",
        "result_digitised", "scopes", "sequence", "status", "transfers", "transfers_electronic",
    )

    # Positionally in projection_sql._LOADED's order: a stored row becomes a case in one call.
    def __init__(
        self, case_code: str, agency_code: str, province_code: str, district_code: str | None,
        field_code: str, procedure_code: str, channel: str, online_level: str | None,
        received_at: datetime, transfers: int = 0, transfers_electronic: int = 0,
        resolved_on: date | None = None, result_digitised: bool = False, overdue: bool = False,
        status: int = 2, sequence: int | None = None,
    ) -> None:
        self.case_code = case_code
        self.agency_code = agency_code
        self.province_code = province_code
        self.district_code = district_code
        self.field_code = field_code
        self.procedure_code = procedure_code
        self.channel = channel
        self.online_level = online_level
        self.received_at = received_at
        self.transfers = transfers
        self.transfers_electronic = transfers_electronic
        self.resolved_on = resolved_on
        self.result_digitised = result_digitised
        self.overdue = overdue
        self.status = status
        self.sequence = sequence
        self.scopes = _scopes(province_code, agency_code, field_code, procedure_code,
                              district_code)

    def mutable(self) -> tuple[int, int, date | None, bool, bool, int, int | None]:
        """What the projection changes after receipt, in projection_sql._MUTABLE's order."""
        return (self.transfers, self.transfers_electronic, self.resolved_on,
                self.result_digitised, self.overdue, self.status, self.sequence)


# Cached: cases of one agency and procedure share one tuple of scopes, built once (every case
# a batch reads was building its seven strings again).
@lru_cache(maxsize=65_536)
def _scopes(province: str, agency: str, field: str, procedure: str,
            district: str | None) -> tuple[str, ...]:
    scopes = ["all", f"province:{province}", f"agency:{agency}", f"field:{field}",
              f"procedure:{procedure}"]
    if district:
        scopes.append(f"district:{district}")
    # A field within a province: the plans set targets there (satisfaction in land, …).
    scopes.append(f"province-field:{province}/{field}")
    return tuple(scopes)


_periods = lru_cache(maxsize=4096)(periods_of)


class Delta:
    """Counter increments of a batch. Tallied per (name, scopes, day) as events are applied,
    then spread over scopes and periods in two steps (per scope, then per period of each
    distinct day), which adds up far fewer times than one add per scope and period per fact.
    Plain dicts: Counter's missing-key path runs Python code on every new key."""

    def __init__(self) -> None:
        self._by_day: dict[tuple[str, tuple[str, ...], date | None], int] = {}

    def add(self, case: CaseFacts, day: date | None, name: str, n: int = 1) -> None:
        key = (name, case.scopes, day)
        self._by_day[key] = self._by_day.get(key, 0) + n

    @property
    def tally(self) -> dict[Key, int]:
        per_scope: dict[tuple[str, str, date | None], int] = {}
        get = per_scope.get
        for (name, scopes, day), n in self._by_day.items():
            for scope in scopes:
                k = (name, scope, day)
                per_scope[k] = get(k, 0) + n
        out: dict[Key, int] = {}
        got = out.get
        for (name, scope, day), n in per_scope.items():
            for period in (LIVE,) if day is None else _periods(day):
                key = (name, scope, period)
                out[key] = got(key, 0) + n
        return out


def apply_batch(session: Session, events: list[Envelope]) -> int:
    """The live consumer's handler: folds and writes a batch, returns how many of its events
    were new (the rest were redeliveries, recognised by fold_batch)."""
    projection_sql.tune_transaction(session)
    delta, applied = fold_batch(session, events)
    write_totals(session, delta.tally)
    return applied


def fold_batch(session: Session, events: list[Envelope]) -> tuple[Delta, int]:
    """Apply a batch to the cases it touches (stored) and return its counter increments (not
    yet written: the live consumer writes them at once, a rebuild gathers many) and how many
    events were new.

    A redelivered event (a producer retry, an outbox relay that crashed before deleting, a
    rewound consumer) is recognised by its case's last applied subject sequence: one integer
    on a row the batch reads and writes anyway, where an id table grows by a row an event and
    cost a B-tree insert each (docs/benchmarks.md). Events without a sequence, and those of a
    case projected before sequences existed, are checked against the processed ids instead.
    """
    codes = list(set(map(_SUBJECT, events)))
    cases = projection_sql.load_cases(session, codes)
    loaded = {code: case.sequence for code, case in cases.items()}
    by_id = _needing_id_check(events, cases)
    delta = Delta()
    if by_id:
        # Sorted: two consumers claiming the same ids take their locks in one order.
        new_ids = TRACKING.claim_new(session, sorted(by_id))
        applied, changed = _apply_checked(events, cases, by_id, new_ids, delta)
    else:
        applied, touched = _apply_sequenced(events, cases, delta)
        changed = [code for code in touched if code in loaded]
    projection_sql.insert_cases(session, [c for code, c in cases.items() if code not in loaded])
    projection_sql.update_cases(session, [cases[code] for code in changed],
                                [loaded[code] for code in changed])
    return delta, applied


def _apply_sequenced(events: list[Envelope], cases: dict[str, CaseFacts], delta: Delta
                     ) -> tuple[int, list[str]]:
    """The usual batch: every event sequenced, and every stored case it touches (_needing_id
    _check). How many events were applied, and the cases with an event applied after their
    receipt: each applied event moves its case's sequence, so the stored ones among them are
    those changed, found without comparing every case's state before and after
    (docs/benchmarks.md, thirteenth pass)."""
    get = cases.get
    touched: dict[str, None] = {}
    applied = 0
    for env in events:
        seq: int = env.subjectsequence  # type: ignore[assignment]  # never None here
        code = env.subject
        known = get(code)
        if known is None:
            apply_event(env.data, cases, delta)
            received = get(code)
            if received is not None:  # received by this event: new, inserted
                received.sequence = seq
        elif known.sequence is not None and seq <= known.sequence:
            continue  # applied before: a redelivery
        else:
            apply_event(env.data, cases, delta)
            known.sequence = seq
            touched[code] = None
        applied += 1
    return applied, list(touched)


def _apply_checked(events: list[Envelope], cases: dict[str, CaseFacts], by_id: set[str],
                   new_ids: set[str], delta: Delta) -> tuple[int, list[str]]:
    """A batch with events whose ids are checked (by_id: the new ones are `new_ids`). How many
    were applied, and the stored cases whose state they changed."""
    before = {code: case.mutable() for code, case in cases.items()}
    applied = 0
    for env in events:
        seq = env.subjectsequence
        if env.id in by_id:
            if env.id not in new_ids:
                continue
            new_ids.discard(env.id)  # the same envelope twice in one batch: applied once
        elif seq is not None:
            known = cases.get(env.subject)
            if known is not None and known.sequence is not None and seq <= known.sequence:
                continue
        apply_event(env.data, cases, delta)
        applied += 1
        case = cases.get(env.subject)
        if case is not None and seq is not None and (case.sequence or 0) < seq:
            case.sequence = seq
    return applied, [code for code, was in before.items() if cases[code].mutable() != was]


def _needing_id_check(events: list[Envelope], cases: dict[str, CaseFacts]) -> set[str]:
    """Ids of the events a case sequence cannot vouch for: those without a sequence, and those
    of a case that has none (projected before sequences, or received without one). A case
    this batch receives counts as sequenced if its receipt carries a sequence."""
    if None not in map(_SEQUENCE, events) and None not in map(_CASE_SEQUENCE, cases.values()):
        return set()  # every event and every stored case sequenced: the usual batch
    sequenced = {code: case.sequence is not None for code, case in cases.items()}
    for env in events:
        if env.subject not in sequenced and isinstance(env.data, CaseReceived):
            sequenced[env.subject] = env.subjectsequence is not None
    return {env.id for env in events
            if env.subjectsequence is None or not sequenced.get(env.subject, True)}


def apply_event(event: CaseEvent, cases: dict[str, CaseFacts], delta: Delta) -> None:
    # The most frequent facts first, enums compared by identity: `.value` is a Python-level
    # property of every Enum member, and each isinstance tried costs a call (this runs for
    # every event the projection applies; docs/benchmarks.md, thirteenth pass).
    if isinstance(event, CaseReceived):
        _receive(event, cases, delta)
        return
    case = cases.get(event.case_code)
    if case is None:
        return  # an event of a case received before this projection's history began
    day = local_date(event.occurred_at)
    if isinstance(event, Resolved):
        _resolve(case, event, day, delta)
    elif isinstance(event, Returned):
        delta.add(case, day, "returned")
        if event.method is ReturnMethod.POST:
            delta.add(case, day, "returned_post")
    elif isinstance(event, Paid):
        delta.add(case, day, "payments")
        if event.method is PaymentMethod.ONLINE:
            delta.add(case, day, "payments_online")
    elif isinstance(event, Rated):
        delta.add(case, day, "ratings")
        if event.rating is Rating.SATISFIED or event.rating is Rating.VERY_SATISFIED:
            delta.add(case, day, "ratings_satisfied")
    elif isinstance(event, Transferred):
        case.transfers += 1
        delta.add(case, day, "transfers")
        if event.method is TransferMethod.ELECTRONIC:
            case.transfers_electronic += 1
            delta.add(case, day, "transfers_electronic")
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
    status = event.status
    if status is not None:
        case.status = status
        if status in CLOSED:
            _leave_backlog(case, delta)


def _receive(event: CaseReceived, cases: dict[str, CaseFacts], delta: Delta) -> None:
    code = event.case_code
    if code in cases:
        return
    at = event.occurred_at
    day = local_date(at)
    channel = event.channel._value_
    level = event.online_level
    case = CaseFacts(
        code, event.agency_code, event.province_code,
        # Districts were abolished on 2025-07-01: later cases count for no district, even at
        # a unit (a land registry branch) that still carries a district's name.
        event.district_code if day < DISTRICTS_ABOLISHED else None,
        event.field_code, event.procedure_code, channel,
        level._value_ if level is not None else None, at,
    )
    cases[code] = case
    delta.add(case, day, "received")
    if channel == "online":
        delta.add(case, day, "received_online")
        if level is OnlineLevel.FULL:
            delta.add(case, day, "received_full")
    elif channel == "postal":
        delta.add(case, day, "received_postal")


def _resolve(case: CaseFacts, event: Resolved, day: date, delta: Delta) -> None:
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


def _leave_backlog(case: CaseFacts, delta: Delta) -> None:
    if case.overdue:
        case.overdue = False
        delta.add(case, None, "overdue_open", -1)


def write_totals(session: Session, totals: dict[Key, int]) -> None:
    projection_sql.add_to_counters(
        session, [(n, s, p, v) for (n, s, p), v in totals.items() if v]
    )

"""Routing's domain functions: plan a case's handling chain, move it along, watch its deadline.

The handling chain. At receipt routing resolves the procedure's chain of office kinds (in the
catalogue version in force on the receipt date) to concrete offices near the receiving agency.
If the receiving agency is itself the first office, it handles first and nothing is sent;
otherwise routing transfers the case to the first office at once.

When the next hop is sent (the rule). Hop k+1 is sent when the office currently holding the
case hands it off (`POST /v1/routing/cases/{code}/handoffs`, `hand_off` below) AND the case log
shows the case arrived there, i.e. intake recorded routing's transfer to it. Nothing on the case
log says "this office finished its part" (the events of API.md carry no acting office), so the
office says it explicitly, as it would press "chuyển bước" in a one-stop-shop system; routing
refuses a handoff from an office that does not hold the case, or before the case arrived, or
after it closed. Each hop is an electronic transfer with a deterministic event id, so a
redelivered trigger produces the same transfer, which intake applies once.

The deadline watch. `scan_overdue` raises one `overdue` per (case, due date) when an open case
(status 2, 4 or 6; a case waiting for supplements is not overdue) has a due date before today
(local). The notice's id is derived from the case and the due date, and `overdue_for` is saved
in the same transaction as the outbox row, so a restart, a scan racing another process, or a
deadline that passed while routing was down each yield exactly one notice. A supplement that
extends the due date makes a new notice possible for the new date.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlmodel import Session, col

from contracts import (
    ROUTING_TOPIC,
    AgencyChanged,
    CaseOverdue,
    CaseReceived,
    CatalogueEvent,
    Envelope,
    Transferred,
    new_envelope,
)
from contracts.types import TransferMethod
from registry.catalogue import Agency, Catalogue, Procedure
from registry.store import CatalogueStore
from routing.models import CATALOGUE, OUTBOX, RoutedCase
from services.clock import LOCAL_TZ, Clock
from services.errors import Conflict, NotFound

log = logging.getLogger(__name__)
# Closed statuses: refused, withdrawn, stopped, resolved, returned.
CLOSED = frozenset({3, 7, 8, 9, 10})
# Overdue applies to received, in-processing and fee-waiting cases; not while paused (5).
WATCHED = (2, 4, 6)


@dataclass(frozen=True)
class RoutingDeps:
    clock: Clock
    store: CatalogueStore = CATALOGUE
    source: str = "/motcua/routing"

    def catalogue(self, session: Session) -> Catalogue:
        return self.store.catalogue(session)


def transfer_id(case_code: str, hop: int) -> str:
    # Deterministic: a redelivered trigger produces the same transfer id, applied once by intake.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"motcua:routing:{case_code}:hop:{hop}"))


def overdue_id(case_code: str, due: date) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"motcua:routing:{case_code}:overdue:{due}"))


# --- planning --------------------------------------------------------------------------------


class Batch:
    """What one consumer batch reads once: its cases (one SELECT), the catalogue; and the
    transfers it sends, added to the outbox together."""

    def __init__(self, session: Session, deps: RoutingDeps, case_codes: set[str]) -> None:
        self.session = session
        self.deps = deps
        rows = session.execute(select(RoutedCase)
                               .where(col(RoutedCase.case_code).in_(sorted(case_codes))))
        self.cases: dict[str, RoutedCase] = {r.case_code: r for r in rows.scalars()}
        self.transfers: list[Envelope[Any]] = []
        self._catalogue: Catalogue | None = None

    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = self.deps.catalogue(self.session)
        return self._catalogue

    def write(self) -> None:
        OUTBOX.add(self.session, ROUTING_TOPIC, self.transfers)
        self.transfers = []


def plan_case(*, batch: Batch, event: CaseReceived) -> RoutedCase | None:
    """Record the case's handling chain and send it to its first office (unless it is there)."""
    if event.case_code in batch.cases:
        return None
    routed = RoutedCase(
        case_code=event.case_code, agency_code=event.agency_code,
        procedure_code=event.procedure_code, due_date=event.due_date,
        received_at=event.occurred_at, status=event.status or 2,
        # Given, not left to default_factory: pydantic inspects a factory's signature on every
        # construction, and for `list` that parses its text signature (a third of routing's
        # CPU under load, docs/benchmarks.md).
        chain=[],
    )
    batch.session.add(routed)
    batch.cases[routed.case_code] = routed
    _plan(batch.session, batch.deps, batch.catalogue(), routed, batch.transfers)
    return routed


def _plan(session: Session, deps: RoutingDeps, catalogue: Catalogue, routed: RoutedCase,
          transfers: list[Envelope[Any]] | None = None) -> None:
    received_on = routed.received_at.astimezone(LOCAL_TZ).date()
    agency = catalogue.agency(routed.agency_code, on=received_on)
    procedure = catalogue.procedure(routed.procedure_code, on=received_on)
    offices = _offices(catalogue, procedure, agency, received_on)
    routed.planned = agency is not None and procedure is not None
    if not offices:
        routed.chain = []
        log.warning("case %s: no handling office for %s at %s", routed.case_code,
                    routed.procedure_code, routed.agency_code)
        session.add(routed)
        return
    # The receiving agency, when it is the first handling office, handles before any transfer.
    routed.chain = offices[1:] if offices[0] == routed.agency_code else offices
    session.add(routed)
    if routed.chain and offices[0] != routed.agency_code:
        _send_hop(session, deps, routed, at=max(deps.clock(), routed.received_at),
                  transfers=transfers)


def _offices(
    catalogue: Catalogue, procedure: Procedure | None, agency: Agency | None, on: date
) -> list[str]:
    if procedure is None or agency is None:
        return []
    codes: list[str] = []
    for office in catalogue.handling_offices(procedure, near=agency, on=on):
        if not codes or codes[-1] != office.code:  # two kinds may resolve to one office
            codes.append(office.code)
    return codes


def _send_hop(session: Session, deps: RoutingDeps, routed: RoutedCase, *, at: datetime,
              transfers: list[Envelope[Any]] | None = None) -> None:
    """The next transfer, into `transfers` (written with the batch) or the outbox at once."""
    hop = routed.hops_sent
    payload = Transferred(
        case_code=routed.case_code, occurred_at=at, from_office=routed.holder(),
        to_office=routed.chain[hop], method=TransferMethod.ELECTRONIC,
    )
    envelope = new_envelope(payload, source=deps.source,
                            event_id=transfer_id(routed.case_code, hop), time=deps.clock())
    if transfers is not None:
        transfers.append(envelope)
    else:
        OUTBOX.add(session, ROUTING_TOPIC, [envelope])
    routed.hops_sent += 1
    session.add(routed)


# --- following the case log ------------------------------------------------------------------


def follow_case(
    *, batch: Batch, event_id: str, event_name: str, case_code: str, status: int | None,
    due_date: date | None = None,
) -> None:
    """Keep routing's view of a case (status, due date, transfers recorded) current."""
    routed = batch.cases.get(case_code)
    if routed is None:
        return
    if status is not None:
        routed.status = status
        routed.open = status not in CLOSED
    if due_date is not None:
        routed.due_date = due_date
    if event_name == "transferred" and routed.hops_recorded < routed.hops_sent and (
        event_id == transfer_id(case_code, routed.hops_recorded)
    ):
        routed.hops_recorded += 1
    batch.session.add(routed)


def apply_catalogue(*, session: Session, deps: RoutingDeps,
                    events: list[CatalogueEvent]) -> int:
    """Copy catalogue versions from intake; plan the cases that waited for them."""
    versions: list[Agency | Procedure] = []
    for e in events:
        fields: dict[str, Any] = e.model_dump(exclude={"occurred_at"})
        if isinstance(e, AgencyChanged):
            versions.append(Agency(code=fields.pop("agency_code"), **fields))
        else:
            fields["online_levels"] = tuple(fields["online_levels"])
            fields["handling_chain"] = tuple(fields["handling_chain"])
            versions.append(Procedure(code=fields.pop("procedure_code"), **fields))
    deps.store.put(session, versions)
    waiting = session.execute(
        select(RoutedCase).where(col(RoutedCase.planned).is_(False), col(RoutedCase.open))
    ).scalars().all()
    catalogue = deps.catalogue(session) if waiting else None
    for routed in waiting:
        assert catalogue is not None
        _plan(session, deps, catalogue, routed)
    return sum(1 for r in waiting if r.hops_sent)


# --- handoffs --------------------------------------------------------------------------------


def _progress(routed: RoutedCase) -> dict[str, Any]:
    nxt = routed.chain[routed.hops_sent] if routed.hops_sent < len(routed.chain) else None
    return {
        "case_code": routed.case_code, "agency_code": routed.agency_code,
        "procedure_code": routed.procedure_code, "chain": routed.chain,
        "hops_sent": routed.hops_sent, "hops_recorded": routed.hops_recorded,
        "holder": routed.holder(), "next_office": nxt,
        "arrived": routed.hops_recorded == routed.hops_sent, "status": routed.status,
        "open": routed.open, "due_date": routed.due_date, "overdue_for": routed.overdue_for,
    }


def get_progress(*, session: Session, case_code: str) -> dict[str, Any]:
    routed = session.get(RoutedCase, case_code)
    if routed is None:
        raise NotFound(f"routing has no case {case_code} (not received, or not yet seen)")
    return _progress(routed)


def hand_off(
    *, session: Session, deps: RoutingDeps, case_code: str, from_office: str
) -> tuple[dict[str, Any], bool]:
    """The office holding the case finished its part: transfer the case to the next office.

    A repeat from an office that already handed the case off answers the same, unchanged.
    """
    routed = session.execute(
        select(RoutedCase).where(col(RoutedCase.case_code) == case_code).with_for_update()
    ).scalar_one_or_none()
    if routed is None:
        raise NotFound(f"routing has no case {case_code} (not received, or not yet seen)")
    offices = [routed.agency_code, *routed.chain]
    for hop in range(routed.hops_sent):
        if offices[hop] == from_office:  # already handed off: a retry
            return _progress(routed), False
    if not routed.open:
        raise Conflict(f"case {case_code} is closed (status {routed.status})",
                       reason="case_closed", current_status=routed.status)
    if from_office != routed.holder():
        raise Conflict(f"{from_office} does not hold case {case_code}; {routed.holder()} does",
                       reason="not_holder", holder=routed.holder())
    if routed.hops_recorded < routed.hops_sent:
        raise Conflict(f"the transfer to {routed.holder()} is not yet recorded on the case; "
                       "retry shortly", reason="not_arrived", retriable=True)
    if routed.hops_sent >= len(routed.chain):
        raise Conflict(f"{from_office} is the last office of the chain: record `resolved`",
                       reason="end_of_chain", holder=routed.holder())
    _send_hop(session, deps, routed, at=deps.clock())
    return _progress(routed), True


# --- the deadline watch ----------------------------------------------------------------------


def scan_overdue(*, session: Session, deps: RoutingDeps, limit: int = 1000) -> int:
    """Raise `overdue` once for each open case past its due date; returns how many."""
    now = deps.clock()
    today = now.astimezone(LOCAL_TZ).date()
    due = col(RoutedCase.due_date)
    rows = session.execute(
        select(RoutedCase)
        .where(col(RoutedCase.open), col(RoutedCase.status).in_(WATCHED), due < today,
               or_(col(RoutedCase.overdue_for).is_(None), col(RoutedCase.overdue_for) != due))
        .order_by(due).limit(limit)
        # Several routing processes may scan at once: each takes the rows no other holds.
        .with_for_update(skip_locked=True)
    ).scalars().all()
    envelopes = []
    for routed in rows:
        assert routed.due_date is not None
        # It became overdue at the local midnight that ended its due date.
        since = datetime.combine(routed.due_date + timedelta(days=1), time(0), LOCAL_TZ)
        payload = CaseOverdue(case_code=routed.case_code, occurred_at=min(since, now),
                              due_date=routed.due_date)
        envelopes.append(new_envelope(payload, source=deps.source, time=now,
                                      event_id=overdue_id(routed.case_code, routed.due_date)))
        routed.overdue_for = routed.due_date
        session.add(routed)
    OUTBOX.add(session, ROUTING_TOPIC, envelopes)
    return len(envelopes)

"""Routing's domain functions: plan a case's handling chain and make its transfers."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from contracts import ROUTING_TOPIC, CaseReceived, Transferred, new_envelope
from contracts.types import TransferMethod
from registry.catalogue import Catalogue
from routing.models import OUTBOX, RoutedCase
from services.clock import LOCAL_TZ, Clock

log = logging.getLogger(__name__)
# Closed statuses: refused, withdrawn, stopped, resolved, returned.
CLOSED = frozenset({3, 7, 8, 9, 10})


@dataclass(frozen=True)
class RoutingDeps:
    catalogue: Catalogue
    clock: Clock
    source: str = "/motcua/routing"


def transfer_id(case_code: str, hop: int) -> str:
    # Deterministic: a redelivered `received` produces the same transfer id, which intake
    # then applies once.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"motcua:routing:{case_code}:hop:{hop}"))


def plan_case(*, session: Session, deps: RoutingDeps, event: CaseReceived) -> RoutedCase | None:
    """Record the case's handling chain and send it to its first handling office."""
    if session.get(RoutedCase, event.case_code) is not None:
        return None
    agency = deps.catalogue.agency(event.agency_code)
    procedure = deps.catalogue.procedure(event.procedure_code)
    received_on = event.occurred_at.astimezone(LOCAL_TZ).date()
    offices = (
        deps.catalogue.handling_offices(procedure, near=agency, on=received_on)
        if agency is not None and procedure is not None
        else []
    )
    # The reception counter itself is not a hop: a commune that both receives and handles
    # a birth registration transfers nothing.
    chain = [o.code for o in offices if o.code != event.agency_code]
    routed = RoutedCase(
        case_code=event.case_code, agency_code=event.agency_code,
        procedure_code=event.procedure_code, chain=chain, due_date=event.due_date,
        received_at=event.occurred_at,
    )
    session.add(routed)
    if chain:
        _send_hop(session, deps, routed, at=max(deps.clock(), event.occurred_at))
    elif procedure is None or agency is None or not offices:
        log.warning("case %s: no handling office for %s at %s", event.case_code,
                    event.procedure_code, event.agency_code)
    return routed


def _send_hop(session: Session, deps: RoutingDeps, routed: RoutedCase, *, at: datetime) -> None:
    hop = routed.hops_sent
    from_office = routed.agency_code if hop == 0 else routed.chain[hop - 1]
    payload = Transferred(
        case_code=routed.case_code, occurred_at=at, from_office=from_office,
        to_office=routed.chain[hop], method=TransferMethod.ELECTRONIC,
    )
    OUTBOX.add(session, ROUTING_TOPIC, [new_envelope(
        payload, source=deps.source, event_id=transfer_id(routed.case_code, hop),
        time=deps.clock(),
    )])
    routed.hops_sent += 1
    session.add(routed)


def follow_case(*, session: Session, event_name: str, case_code: str, status: int | None,
                due_date: object = None) -> None:
    """Keep routing's view of a case's status (for its deadline watch) current."""
    routed = session.get(RoutedCase, case_code)
    if routed is None:
        return
    if status is not None:
        routed.status = status
        routed.open = status not in CLOSED
    if event_name == "supplement_received" and due_date is not None:
        routed.due_date = due_date  # type: ignore[assignment]
    session.add(routed)

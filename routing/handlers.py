"""One function per kind of event routing reacts to: case facts and catalogue versions."""

from collections.abc import Callable

from sqlmodel import Session

from contracts import CaseEvent, CaseReceived, CatalogueEvent, Envelope, SupplementReceived
from routing import service


def make_case_handler(
    deps: service.RoutingDeps, on_routed: Callable[[int], None]
) -> Callable[[Session, list[Envelope]], None]:
    def handle(session: Session, events: list[Envelope]) -> None:
        versions = [e.data for e in events if isinstance(e.data, CatalogueEvent)]
        if versions:
            # Versions first: a case in the same batch is planned with them.
            sent = service.apply_catalogue(session=session, deps=deps, events=versions)
            if sent:
                on_routed(sent)
        batch = service.Batch(session, deps, {e.data.case_code for e in events
                                              if isinstance(e.data, CaseEvent)})
        # Nothing is flushed until the batch ends: its cases are in `batch.cases`, not looked
        # up row by row (one SELECT and a flush per event before).
        with session.no_autoflush:
            for env in events:
                data = env.data
                if isinstance(data, CaseReceived):
                    routed = service.plan_case(batch=batch, event=data)
                    if routed is not None:
                        on_routed(routed.hops_sent)
                elif isinstance(data, CaseEvent):
                    due = data.due_date if isinstance(data, SupplementReceived) else None
                    service.follow_case(batch=batch, event_id=env.id, event_name=data.NAME,
                                        case_code=data.case_code, status=data.status,
                                        due_date=due)
        batch.write()

    return handle

"""One function per case event routing reacts to."""

from collections.abc import Callable

from sqlmodel import Session

from contracts import CaseReceived, Envelope, SupplementReceived
from routing import service


def make_case_handler(
    deps: service.RoutingDeps, on_routed: Callable[[int], None]
) -> Callable[[Session, list[Envelope]], None]:
    def handle(session: Session, events: list[Envelope]) -> None:
        for env in events:
            data = env.data
            if isinstance(data, CaseReceived):
                routed = service.plan_case(session=session, deps=deps, event=data)
                if routed is not None:
                    on_routed(routed.hops_sent)
            else:
                due = data.due_date if isinstance(data, SupplementReceived) else None
                service.follow_case(session=session, event_name=data.NAME,
                                    case_code=data.case_code, status=data.status, due_date=due)

    return handle

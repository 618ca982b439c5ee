"""Facts from routing (transfers, overdue notices), recorded on the case log by intake."""

import logging
from collections.abc import Callable

from sqlmodel import Session

from contracts import Envelope
from intake import service
from intake.batch import Batch
from intake.schemas import EventCreate
from services.errors import MotcuaError

log = logging.getLogger(__name__)


def make_routing_handler(
    deps: service.IntakeDeps, on_rejected: Callable[[str], None]
) -> Callable[[Session, list[Envelope]], None]:
    def handle(session: Session, events: list[Envelope]) -> None:
        # The consumer's whole batch as one intake batch: the cases locked and the earlier
        # answers read once, the rows written together. A fact the case no longer allows is
        # refused before it adds anything (intake.batch), so it cannot undo the others.
        batch = Batch(session.connection(), deps.store)
        batch.prefetch([env.subject for env in events], [env.id for env in events])
        for env in events:
            # An overdue notice names the due date it is for; intake checks against the case's
            # own due date instead (the notice may be stale after a supplement extended it).
            details = {k: v for k, v in env.data.details().items() if k in EventCreate.model_fields}
            data = EventCreate.model_validate(
                {"event_id": env.id, "type": env.data.NAME,
                 "occurred_at": env.data.occurred_at, **details}
            )
            try:
                service.record(batch, deps, env.subject, data, source=env.source)
            except MotcuaError as exc:
                on_rejected(env.data.NAME)
                log.warning("not recording %s %s from %s on %s: %s", env.data.NAME, env.id,
                            env.source, env.subject, exc.detail)
        batch.write()

    return handle

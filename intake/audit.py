"""The audit trail: who (which client) did what to which case, when, from where, under which
request id. Rows are only ever added (the table refuses UPDATE and DELETE)."""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import func, select
from sqlmodel import Session, col

from intake.models import AuditEntry
from services.security import Principal


@dataclass(frozen=True)
class Actor:
    client_id: str
    kind: str
    request_id: str
    client_ip: str | None

    @classmethod
    def of(cls, request: Request, principal: Principal) -> "Actor":
        return cls(client_id=principal.client_id, kind=principal.kind,
                   request_id=str(getattr(request.state, "request_id", "-")),
                   client_ip=request.client.host if request.client else None)


@dataclass(frozen=True)
class Note:
    """What to record about one change; the status is known once it is done."""

    actor: Actor
    action: str
    case_code: str | None = None
    detail: str | None = None

    def on(self, case_code: str | None) -> "Note":
        return replace(self, case_code=case_code)


def record(session: Session, note: Note, *, status: int, at: datetime,
           case_code: str | None = None) -> None:
    session.add(AuditEntry(**row(note, status=status, at=at, case_code=case_code)))


def row(note: Note, *, status: int, at: datetime, case_code: str | None = None,
        detail: str | None = None) -> dict[str, Any]:
    """The audit row for a note once its outcome is known."""
    a = note.actor
    detail = detail or note.detail
    return {"at": at, "client_id": a.client_id, "client_kind": a.kind, "action": note.action,
            "case_code": case_code or note.case_code, "status": status,
            "request_id": a.request_id, "client_ip": a.client_ip,
            "detail": detail[:300] if detail else None}


def entries(*, session: Session, case_code: str | None, client_id: str | None,
            action: str | None, limit: int, offset: int) -> dict[str, Any]:
    where = []
    if case_code is not None:
        where.append(col(AuditEntry.case_code) == case_code)
    if client_id is not None:
        where.append(col(AuditEntry.client_id) == client_id)
    if action is not None:
        where.append(col(AuditEntry.action) == action)
    total = session.execute(select(func.count()).select_from(AuditEntry).where(*where))
    rows = session.execute(select(AuditEntry).where(*where)
                           .order_by(col(AuditEntry.id).desc()).limit(limit).offset(offset))
    return {"total": int(total.scalar_one()), "limit": limit, "offset": offset,
            "items": [r.model_dump(mode="json") for r in rows.scalars()]}

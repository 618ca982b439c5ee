"""The agency registry and procedure catalogue as intake owns them: seeded from the data files
on first start, then versioned through the admin API. Every version is published on the
catalogue topic (in the same transaction, via the outbox) so routing keeps its own copy.

History is append-only: a change is a new version applying from a local date, never an edit of
an old one, so a case keeps the terms it was received under and the past stays reproducible.
"""

import uuid
from dataclasses import asdict, replace
from datetime import date
from typing import Any, TypeVar

from sqlmodel import Session

from contracts import CATALOGUE_TOPIC, AgencyChanged, CatalogueEvent, ProcedureChanged
from contracts import new_envelope as envelope
from intake.models import OUTBOX
from intake.schemas import AgencyVersionIn, ProcedureVersionIn
from intake.service import IntakeDeps
from registry.catalogue import Agency, Catalogue, Procedure
from registry.store import agency_to_dict, procedure_to_dict
from services.clock import LOCAL_TZ
from services.errors import NotFound, ValidationFailed

LEVEL_RANK = {"province": 0, "district": 1, "commune": 2}
V = TypeVar("V", Agency, Procedure)


def _error(field: str, rule: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": field, "rule": rule, "message": message}])


def version_event_id(v: Agency | Procedure) -> str:
    # Deterministic: a version is published once whichever process seeded or recorded it.
    kind = "agency" if isinstance(v, Agency) else "procedure"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"motcua:catalogue:{kind}:{v.code}:v{v.version}"))


def to_event(v: Agency | Procedure, deps: IntakeDeps) -> CatalogueEvent:
    fields = asdict(v)
    code = fields.pop("code")
    if isinstance(v, Agency):
        return AgencyChanged(agency_code=code, occurred_at=deps.clock(), **fields)
    return ProcedureChanged(procedure_code=code, occurred_at=deps.clock(), **fields)


def publish(session: Session, deps: IntakeDeps, versions: list[Agency | Procedure]) -> None:
    OUTBOX.add(session, CATALOGUE_TOPIC, [
        envelope(to_event(v, deps), source=deps.source, event_id=version_event_id(v),
                 time=deps.clock())
        for v in versions
    ])


def seed_catalogue(*, session: Session, deps: IntakeDeps, source: Catalogue) -> int:
    """Fill an empty catalogue from the data files (first start); returns versions added."""
    added = deps.store.seed(session, source)
    publish(session, deps, added)
    return len(added)


# --- reading -------------------------------------------------------------------------------


def agency_versions(*, session: Session, deps: IntakeDeps, code: str) -> dict[str, Any]:
    history = deps.catalogue(session).agency_history.get(code)
    if not history:
        raise NotFound(f"agency {code} is not registered")
    return {"code": code, "items": [agency_to_dict(v) for v in reversed(history)]}


def procedure_versions(*, session: Session, deps: IntakeDeps, code: str) -> dict[str, Any]:
    history = deps.catalogue(session).procedure_history.get(code)
    if not history:
        raise NotFound(f"procedure {code} is not in the catalogue")
    return {"code": code, "items": [procedure_to_dict(v) for v in reversed(history)]}


# --- writing -------------------------------------------------------------------------------


def _body(v: Agency | Procedure) -> dict[str, Any]:
    fields = asdict(v)
    del fields["version"], fields["effective_from"]
    return fields


def _append(
    session: Session, deps: IntakeDeps, new: V, latest: V | None, requested: date | None,
) -> tuple[V, bool]:
    """Store `new` as the next version; a repeat of the latest one is answered with it."""
    if latest is not None and _body(new) == _body(latest) and requested in (
        None, latest.effective_from
    ):
        return latest, False
    today = deps.clock().astimezone(LOCAL_TZ).date()
    effective = requested or today
    if latest is not None and latest.effective_from is not None and (
        effective < latest.effective_from
    ):
        raise _error("effective_from", "not_before_latest",
                     f"effective_from {effective} is before the latest version's "
                     f"{latest.effective_from}: history is appended, not rewritten")
    new = replace(new, version=latest.version + 1 if latest else 1, effective_from=effective)
    deps.store.put(session, [new])
    publish(session, deps, [new])
    return new, True


def add_procedure_version(
    *, session: Session, deps: IntakeDeps, code: str, version: ProcedureVersionIn
) -> tuple[dict[str, Any], bool]:
    """Record a new version of a procedure (or the first one); a retry answers the same."""
    catalogue = deps.catalogue(session)
    history = catalogue.procedure_history.get(code)
    kinds = {a.kind for a in catalogue.agencies.values()}
    if unknown := [k for k in version.handling_chain if k not in kinds]:
        raise _error("handling_chain", "known_kind",
                     f"no agency in the registry is of kind {', '.join(unknown)}")
    new = Procedure(
        code=code, name=version.name, field_code=version.field_code,
        field_name=version.field_name, processing_days=version.processing_days,
        fee_vnd=version.fee_vnd, online_levels=tuple(lv.value for lv in version.online_levels),
        handling_level=version.handling_level, handling_chain=tuple(version.handling_chain),
    )
    stored, created = _append(session, deps, new, history[-1] if history else None,
                              version.effective_from)
    return procedure_to_dict(stored), created


def add_agency_version(
    *, session: Session, deps: IntakeDeps, code: str, version: AgencyVersionIn
) -> tuple[dict[str, Any], bool]:
    """Record a new version of an agency (or register a new one); a retry answers the same."""
    catalogue = deps.catalogue(session)
    history = catalogue.agency_history.get(code)
    _check_agency(catalogue, code, version)
    new = Agency(
        code=code, name=version.name, level=version.level, kind=version.kind,
        parent=version.parent, province=code[-3:], reception=version.reception,
        valid_from=version.valid_from, valid_to=version.valid_to, successor=version.successor,
    )
    stored, created = _append(session, deps, new, history[-1] if history else None,
                              version.effective_from)
    return agency_to_dict(stored), created


def _check_agency(catalogue: Catalogue, code: str, version: AgencyVersionIn) -> None:
    errors = []
    if version.parent is not None:
        parent = catalogue.agency(version.parent)
        if parent is None:
            errors.append(("parent", "registered", f"agency {version.parent} is not registered"))
        elif version.parent == code:
            errors.append(("parent", "not_itself", "an agency cannot be its own parent"))
        elif parent.province != code[-3:]:
            errors.append(("parent", "same_province",
                           f"parent {parent.code} is in province {parent.province}"))
        elif LEVEL_RANK[version.level] < LEVEL_RANK[parent.level]:
            errors.append(("level", "below_parent",
                           f"a {version.level} unit cannot sit under a {parent.level} unit"))
    elif version.level != "province":
        errors.append(("parent", "required", f"a {version.level} unit needs a parent"))
    if version.successor is not None and catalogue.agency(version.successor) is None:
        errors.append(("successor", "registered",
                       f"agency {version.successor} is not registered"))
    if version.successor is not None and version.valid_to is None:
        errors.append(("valid_to", "required_with_successor",
                       "a unit with a successor must say its last day (valid_to)"))
    if version.valid_from and version.valid_to and version.valid_to < version.valid_from:
        errors.append(("valid_to", "after_valid_from", "valid_to is before valid_from"))
    if errors:
        raise ValidationFailed(
            "Invalid field(s): " + ", ".join(f for f, _r, _m in errors),
            errors=[{"field": f, "rule": r, "message": m} for f, r, m in errors],
        )

"""Scope checks that need intake's data: the agency registry and each case's agency."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy import select
from sqlmodel import Session, col

from intake.audit import Actor, Note
from intake.models import Case
from intake.service import IntakeDeps
from services.errors import Forbidden
from services.security import Principal
from services.security.policy import security_of
from services.security.scopes import AgencyTree, check_agencies

if TYPE_CHECKING:
    from intake.app import IntakeComponent


def _tree(*, session: Session, deps: IntakeDeps) -> AgencyTree:
    return AgencyTree.of(deps.catalogue(session))


def _agencies_of(*, session: Session, codes: list[str]) -> dict[str, str]:
    rows = session.execute(select(col(Case.case_code), col(Case.agency_code))
                           .where(col(Case.case_code).in_(codes)))
    return {code: agency for code, agency in rows}


def needs_check(principal: Principal) -> bool:
    # Administrators (reads only) and national counters are not limited to an agency.
    return principal.kind == "counter" and principal.agency is not None


async def agency_tree(intake: "IntakeComponent") -> AgencyTree:
    return await intake.read(_tree, deps=intake.deps)


async def case_agencies(intake: "IntakeComponent", codes: Iterable[str]) -> dict[str, str]:
    return await intake.read(_agencies_of, codes=sorted(set(codes)))


async def require_agency(intake: "IntakeComponent", request: Request, principal: Principal,
                         agency_code: str, note: Note) -> None:
    """403 (audited) unless the counter's scope covers `agency_code`."""
    if not needs_check(principal):
        return
    try:
        check_agencies(principal, await agency_tree(intake), [agency_code])
    except Forbidden as exc:
        security_of(request).refuse(403, "scope")
        await intake.audit(note, status=403, detail=f"agency {agency_code} out of scope")
        raise exc


async def require_case(intake: "IntakeComponent", request: Request, principal: Principal,
                       case_code: str, note: Note) -> None:
    """403 (audited) unless the case was received by an agency the counter covers. An unknown
    case passes: the domain answers 404."""
    if not needs_check(principal):
        return
    agency = (await case_agencies(intake, [case_code])).get(case_code)
    if agency is not None:
        await require_agency(intake, request, principal, agency, note)


def actor(request: Request, principal: Principal) -> Actor:
    return Actor.of(request, principal)

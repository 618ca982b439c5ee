"""Catalogue events: a new version of an agency or a procedure, as intake (the owner of the
agency registry and procedure catalogue) recorded it.

Each event carries the whole version, not a diff, so a consumer keeps its own copy by upserting
(code, version) and never needs the versions before it. A version applies from `effective_from`
(local date; null = since always) until the next version's `effective_from`; a case keeps the
version in force on its receipt date.
"""

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from contracts.event import Event
from contracts.types import AgencyCode, OnlineLevel, ProcedureCode, Text


class AgencyLevel(StrEnum):
    PROVINCE = "province"
    DISTRICT = "district"  # abolished on 2025-07-01; earlier data still has them
    COMMUNE = "commune"


# The role an office plays (so-tnmt, ubnd-xa): what a procedure's handling chain names.
AgencyKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,39}$")]


class CatalogueEvent(Event):
    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE_PREFIX: ClassVar[str] = "vn.motcua.catalogue."

    version: int = Field(ge=1, description="1, 2, … per code, in the order recorded.")
    effective_from: date | None = Field(
        description="Local date from which this version applies; null = since always."
    )
    occurred_at: AwareDatetime = Field(description="When the version was recorded.")


class AgencyChanged(CatalogueEvent):
    """A version of an agency in the registry (new agency, renamed, re-parented, merged)."""

    NAME = "agency_changed"

    agency_code: AgencyCode
    name: Text = Field(min_length=1, max_length=300)
    level: AgencyLevel
    kind: AgencyKind
    parent: AgencyCode | None = Field(description="Parent unit; null for a province.")
    province: str = Field(pattern=r"^[A-Z][0-9]{2}$", description="e.g. H56")
    reception: bool = Field(description="Has a reception counter (receives cases).")
    valid_from: date | None = Field(description="First local day the unit exists; null = open.")
    valid_to: date | None = Field(description="Last local day the unit exists; null = open.")
    successor: AgencyCode | None = Field(
        description="The unit that took over this one's territory and open cases."
    )

    def key(self) -> str:
        return self.agency_code


class ProcedureChanged(CatalogueEvent):
    """A version of a procedure in the catalogue (new procedure, new fee or processing time)."""

    NAME = "procedure_changed"

    procedure_code: ProcedureCode
    name: Text = Field(min_length=1, max_length=1000)
    field_code: str = Field(min_length=1, max_length=40)
    field_name: Text = Field(min_length=1, max_length=300)
    processing_days: int = Field(ge=0, le=365)
    fee_vnd: int = Field(ge=0)
    online_levels: tuple[OnlineLevel, ...] = Field(description="Online levels offered.")
    handling_level: AgencyLevel
    handling_chain: tuple[AgencyKind, ...] = Field(
        description="Agency kinds that handle the case, in order (several = liên thông)."
    )

    def key(self) -> str:
        return self.procedure_code


CATALOGUE_EVENT_CLASSES: tuple[type[CatalogueEvent], ...] = (AgencyChanged, ProcedureChanged)

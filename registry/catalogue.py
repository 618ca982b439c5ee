"""The agency registry and procedure catalogue, with history.

Both change over time (units merge, fees change). Each agency and procedure is a list of
versions, each applying from its `effective_from` (local date; None = since always) until the
next one's; `agency(code, on=day)` and `procedure(code, on=day)` answer with the version in
force that day. A case keeps what it was received under, because intake copies the processing
days, fee and attribution onto the case and its received event.

Separately from versions, an agency exists from `valid_from` to `valid_to` (inclusive); when a
unit is merged away (districts on 2025-07-01) `successor` names the unit that took it over.
"""

import json
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    level: str  # province | district | commune
    kind: str  # role, e.g. so-tnmt, ubnd-xa: what a procedure's handling chain names
    parent: str | None
    province: str
    reception: bool
    valid_from: date | None
    valid_to: date | None
    successor: str | None
    version: int = 1
    effective_from: date | None = None

    def active_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    field_code: str
    field_name: str
    processing_days: int
    fee_vnd: int
    online_levels: tuple[str, ...]
    handling_level: str
    handling_chain: tuple[str, ...]
    version: int = 1
    effective_from: date | None = None


@dataclass(frozen=True)
class Field:
    code: str
    name: str


def default_catalogue_dir() -> Path:
    return Path(__file__).parent / "data"


def _nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    if isinstance(value, dict):
        return {k: _nfc(v) for k, v in value.items()}
    return value


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


V = TypeVar("V", Agency, Procedure)


def _order(v: Agency | Procedure) -> tuple[date, int]:
    return (v.effective_from or date.min, v.version)


def _histories(versions: Iterable[V]) -> dict[str, list[V]]:
    by_code: dict[str, list[V]] = defaultdict(list)
    for v in versions:
        by_code[v.code].append(v)
    return {code: sorted(vs, key=_order) for code, vs in by_code.items()}


def _in_force(history: list[V] | None, on: date | None) -> V | None:
    """The version applying on `on` (the newest recorded one when `on` is None)."""
    if not history:
        return None
    if on is None:
        return history[-1]
    found = None
    for v in history:
        if v.effective_from is not None and v.effective_from > on:
            break
        found = v
    return found


class Catalogue:
    """An immutable snapshot of every version; build a new one when the catalogue changes."""

    def __init__(
        self, agencies: Iterable[Agency], procedures: Iterable[Procedure], fields: list[Field]
    ) -> None:
        self.agency_history = _histories(agencies)
        self.procedure_history = _histories(procedures)
        # The newest recorded version of each: what listings show by default.
        self.agencies = {code: vs[-1] for code, vs in self.agency_history.items()}
        self.procedures = {code: vs[-1] for code, vs in self.procedure_history.items()}
        self.fields = {f.code: f for f in fields}
        self._snapshots: dict[date | None, dict[str, Agency]] = {}

    @classmethod
    def load(cls, directory: Path | None = None) -> "Catalogue":
        directory = directory or default_catalogue_dir()
        agencies_raw = _nfc(json.loads((directory / "agencies.json").read_text("utf-8")))
        procedures_raw = _nfc(json.loads((directory / "procedures.json").read_text("utf-8")))
        agencies = [
            Agency(
                code=a["code"],
                name=a["name"],
                level=a["level"],
                kind=a["kind"],
                parent=a.get("parent"),
                province=a["province"],
                reception=bool(a.get("reception", False)),
                valid_from=_day(a.get("valid_from")),
                valid_to=_day(a.get("valid_to")),
                successor=a.get("successor"),
            )
            for a in agencies_raw["agencies"]
        ]
        procedures = [
            Procedure(
                code=p["code"],
                name=p["name"],
                field_code=p["field_code"],
                field_name=p["field_name"],
                processing_days=int(p["processing_days"]),
                fee_vnd=int(p.get("fee_vnd", 0)),
                online_levels=tuple(p.get("online_levels", ())),
                handling_level=p.get("handling_level", "province"),
                handling_chain=tuple(p.get("handling_chain", ())),
            )
            for p in procedures_raw["procedures"]
        ]
        fields = [Field(f["code"], f["name"]) for f in procedures_raw.get("fields", [])]
        return cls(agencies, procedures, fields_of(procedures, fields))

    def agency(self, code: str, on: date | None = None) -> Agency | None:
        return _in_force(self.agency_history.get(code), on)

    def procedure(self, code: str, on: date | None = None) -> Procedure | None:
        return _in_force(self.procedure_history.get(code), on)

    def agencies_on(self, on: date | None) -> dict[str, Agency]:
        """Every agency in the version in force on `on` (existing that day or not)."""
        snapshot = self._snapshots.get(on)
        if snapshot is None:
            snapshot = {}
            for code, history in self.agency_history.items():
                if (v := _in_force(history, on)) is not None:
                    snapshot[code] = v
            self._snapshots[on] = snapshot
        return snapshot

    def district_of(self, agency: Agency, on: date | None = None) -> str | None:
        """The district an agency belonged to (itself or an ancestor), for pre-2025 scopes."""
        agencies = self.agencies_on(on)
        current: Agency | None = agency
        while current is not None:
            if current.level == "district":
                return current.code
            current = agencies.get(current.parent) if current.parent else None
        return None

    def resolve_office(self, kind: str, *, near: Agency, on: date) -> Agency | None:
        """The office of `kind` that serves the receiving agency `near` on `on`.

        Searched outward: the agency itself, then its ancestors' subtrees (commune, then its
        district, then the province), so a commune case goes to its own district's branch.
        """
        agencies = self.agencies_on(on)
        scope: Agency | None = near
        while scope is not None:
            found = self._find_in_subtree(agencies, kind, scope, on)
            if found is not None:
                return found
            scope = agencies.get(scope.parent) if scope.parent else None
        candidates = [
            a for a in agencies.values()
            if a.kind == kind and a.province == near.province and a.active_on(on)
        ]
        return min(candidates, key=lambda a: a.code) if candidates else None

    def _find_in_subtree(
        self, agencies: dict[str, Agency], kind: str, root: Agency, on: date
    ) -> Agency | None:
        if root.kind == kind and root.active_on(on):
            return root
        children = sorted(
            (a for a in agencies.values() if a.parent == root.code), key=lambda a: a.code
        )
        for child in children:
            if child.kind == kind and child.active_on(on):
                return child
        return None

    def handling_offices(self, procedure: Procedure, *, near: Agency, on: date) -> list[Agency]:
        offices = []
        for kind in procedure.handling_chain:
            office = self.resolve_office(kind, near=near, on=on)
            if office is not None:
                offices.append(office)
        return offices


def fields_of(procedures: Iterable[Procedure], declared: Iterable[Field] = ()) -> list[Field]:
    """The declared fields, plus any a procedure names that the declaration lacks."""
    fields = {f.code: f for f in declared}
    for p in procedures:
        fields.setdefault(p.field_code, Field(p.field_code, p.field_name))
    return list(fields.values())

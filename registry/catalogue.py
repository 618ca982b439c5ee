"""The agency registry and procedure catalogue, loaded from data files.

Both change over time (units merge, fees change); a case keeps what it was received under,
because the received event carries the processing days, fee and attribution.
"""

import json
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any


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


class Catalogue:
    def __init__(
        self, agencies: list[Agency], procedures: list[Procedure], fields: list[Field]
    ) -> None:
        self.agencies = {a.code: a for a in agencies}
        self.procedures = {p.code: p for p in procedures}
        self.fields = {f.code: f for f in fields}

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
        known = {f.code for f in fields}
        fields += [
            Field(p.field_code, p.field_name) for p in procedures if p.field_code not in known
        ]
        return cls(agencies, procedures, list({f.code: f for f in fields}.values()))

    def agency(self, code: str) -> Agency | None:
        return self.agencies.get(code)

    def procedure(self, code: str) -> Procedure | None:
        return self.procedures.get(code)

    def district_of(self, agency: Agency) -> str | None:
        """The district an agency belonged to (itself or an ancestor), for pre-2025 scopes."""
        current: Agency | None = agency
        while current is not None:
            if current.level == "district":
                return current.code
            current = self.agencies.get(current.parent) if current.parent else None
        return None

    def resolve_office(self, kind: str, *, near: Agency, on: date) -> Agency | None:
        """The office of `kind` that serves the receiving agency `near` on `on`.

        Searched outward: the agency itself, then its ancestors' subtrees (commune, then its
        district, then the province), so a commune case goes to its own district's branch.
        """
        scope: Agency | None = near
        while scope is not None:
            found = self._find_in_subtree(kind, scope, on)
            if found is not None:
                return found
            scope = self.agencies.get(scope.parent) if scope.parent else None
        candidates = [
            a for a in self.agencies.values()
            if a.kind == kind and a.province == near.province and a.active_on(on)
        ]
        return min(candidates, key=lambda a: a.code) if candidates else None

    def _find_in_subtree(self, kind: str, root: Agency, on: date) -> Agency | None:
        if root.kind == kind and root.active_on(on):
            return root
        children = sorted(
            (a for a in self.agencies.values() if a.parent == root.code), key=lambda a: a.code
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

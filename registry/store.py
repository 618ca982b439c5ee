"""A service's own copy of the catalogue, with history, in its own database.

Intake owns the catalogue: it seeds its copy from the data files on first start and appends
versions through its admin API. Routing keeps a copy from intake's catalogue events. Both use
this store under their own table prefix; the tables are append-only per (code, version).

Every write replaces a random revision token in the same transaction, so each process can keep
the parsed `Catalogue` in memory and reload it only when some process changed the tables (a
token, not a counter: two databases never share one, so a cache cannot confuse them).
"""

import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Date, Integer, String, Table, func, select, text
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from registry.catalogue import Agency, Catalogue, Procedure, fields_of
from services.db import UTCDateTime
from services.tracking import upsert

_SEED_LOCK = 0x6D636174  # pg advisory lock: one process seeds an empty catalogue


def agency_to_dict(a: Agency) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(a).items()}


def procedure_to_dict(p: Procedure) -> dict[str, Any]:
    d = asdict(p)
    d["online_levels"], d["handling_chain"] = list(p.online_levels), list(p.handling_chain)
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in d.items()}


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def agency_from_dict(d: dict[str, Any]) -> Agency:
    return Agency(**{**d, "valid_from": _date(d.get("valid_from")),
                     "valid_to": _date(d.get("valid_to")),
                     "effective_from": _date(d.get("effective_from"))})


def procedure_from_dict(d: dict[str, Any]) -> Procedure:
    return Procedure(**{**d, "online_levels": tuple(d["online_levels"]),
                        "handling_chain": tuple(d["handling_chain"]),
                        "effective_from": _date(d.get("effective_from"))})


class CatalogueStore:
    def __init__(self, prefix: str) -> None:
        meta = SQLModel.metadata
        self.agencies = self._versions_table(f"{prefix}_agency_versions", meta)
        self.procedures = self._versions_table(f"{prefix}_procedure_versions", meta)
        self.revision_table = Table(
            f"{prefix}_catalogue_revision", meta,
            Column("id", Integer, primary_key=True),
            Column("revision", String(32), nullable=False),
        )
        self._cache: tuple[str, Catalogue] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _versions_table(name: str, meta: Any) -> Table:
        return Table(
            name, meta,
            Column("code", String(20), primary_key=True),
            Column("version", Integer, primary_key=True),
            Column("effective_from", Date, nullable=True),
            Column("data", JSON, nullable=False),
            Column("recorded_at", UTCDateTime(), nullable=False),
        )

    # --- reading -------------------------------------------------------------------------------

    def revision(self, session: Session) -> str:
        value = session.execute(select(self.revision_table.c.revision)).scalar_one_or_none()
        return str(value or "")

    def revision_sql(self) -> str:
        """`revision` as one statement for a caller on the driver (intake.pg_writer)."""
        return f"SELECT revision FROM {self.revision_table.name}"

    def cached(self, revision: str) -> Catalogue | None:
        """The catalogue last read, if it is still at `revision`."""
        cached = self._cache
        return cached[1] if cached is not None and cached[0] == revision else None

    def catalogue(self, session: Session) -> Catalogue:
        """The whole catalogue as of this session's view, parsed once per revision."""
        rev = self.revision(session)
        cached = self._cache
        if cached is not None and cached[0] == rev:
            return cached[1]
        agencies = [agency_from_dict(r.data) for r in session.execute(select(self.agencies))]
        procedures = [procedure_from_dict(r.data)
                      for r in session.execute(select(self.procedures))]
        catalogue = Catalogue(agencies, procedures, fields_of(procedures))
        with self._lock:
            self._cache = (rev, catalogue)
        return catalogue

    def is_empty(self, session: Session) -> bool:
        return not session.execute(select(func.count()).select_from(self.agencies)).scalar_one()

    # --- writing -------------------------------------------------------------------------------

    def put(self, session: Session, versions: Sequence[Agency | Procedure]) -> None:
        """Store versions (replacing any with the same code and number), bump the revision.

        Replacing is for copies: the owner's event wins over a copy seeded from data files.
        """
        now = datetime.now(UTC)
        for table, kind in ((self.agencies, Agency), (self.procedures, Procedure)):
            rows: list[dict[str, object]] = [
                {"code": v.code, "version": v.version, "effective_from": v.effective_from,
                 "data": agency_to_dict(v) if isinstance(v, Agency) else procedure_to_dict(v),
                 "recorded_at": now}
                for v in versions if isinstance(v, kind)
            ]
            upsert(session, table, rows, keys=("code", "version"),
                   update=("effective_from", "data", "recorded_at"))
        if versions:
            self._bump(session)

    def _bump(self, session: Session) -> None:
        upsert(session, self.revision_table, [{"id": 1, "revision": uuid.uuid4().hex}],
               keys=("id",), update=("revision",))

    def seed(self, session: Session, source: Catalogue) -> list[Agency | Procedure]:
        """Copy every version of `source` into an empty store; returns what was added."""
        if session.get_bind().dialect.name == "postgresql":
            # Several processes may start on one fresh database: let one seed it.
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SEED_LOCK})
        if not self.is_empty(session):
            return []
        added: list[Agency | Procedure] = []
        for a_history in source.agency_history.values():
            added.extend(a_history)
        for p_history in source.procedure_history.values():
            added.extend(p_history)
        self.put(session, added)
        return added

"""First start of the embedded default: clients to begin with, their secrets in a 0600 file.

`motcua up` calls this before serving. On a database without clients it creates an
administrator and, in development, a national counter and a national portal for trying the
system out; their ids and secrets go to `credentials.json` in the data dir, readable by the
owner only. Nothing happens on later starts, nor once any client exists.
"""

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from intake.app import MIGRATIONS
from intake.clients import ClientCreate, count_clients, create_client
from intake.settings import IntakeSettings
from registry.catalogue import Catalogue
from services.db import make_engine, transaction
from services.migrations import upgrade

LOCAL_CLIENTS: dict[str, dict[str, Any]] = {
    "admin": {"name": "Local administrator", "kind": "admin"},
    "counter": {"name": "Local counter (every agency)", "kind": "counter", "national": True},
    "portal": {"name": "Local portal (national)", "kind": "portal", "national": True},
}


def migrated_engine(settings: IntakeSettings) -> Engine:
    engine = make_engine(settings.resolved_database_url("intake"))
    upgrade(engine, service="intake", script_location=MIGRATIONS)
    return engine


def bootstrap_clients(settings: IntakeSettings, path: Path, *, url: str) -> list[str]:
    """The kinds created (none if the registry already had clients)."""
    kinds = list(LOCAL_CLIENTS) if settings.environment == "development" else ["admin"]
    engine = migrated_engine(settings)
    try:
        with transaction(engine) as session:
            if count_clients(session):
                return []
            now = datetime.now(UTC)
            created = {}
            for kind in kinds:
                client, secret = create_client(
                    session=session, data=ClientCreate(**LOCAL_CLIENTS[kind]),
                    catalogue=Catalogue([], [], []), created_by="motcua up", now=now)
                created[kind] = {"client_id": client["client_id"], "client_secret": secret}
            # Written before the commit: if it cannot be written, no client exists whose
            # secret nobody knows.
            write_credentials(path, {"url": url, "clients": created})
    finally:
        engine.dispose()
    return kinds


def write_credentials(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(content, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)

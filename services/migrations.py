"""Alembic, run programmatically: one migration history per service, one version table each."""

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.engine import Connection

# Any constant works: it only has to be the same for every process that migrates.
_PG_MIGRATION_LOCK = 0x6D6F7463


def upgrade(engine: Engine, *, service: str, script_location: Path,
            revision: str = "head") -> None:
    _run(engine, service, script_location, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, *, service: str, script_location: Path, revision: str) -> None:
    """Back to `revision` (an operator rolling back a release, and the migrations' tests)."""
    _run(engine, service, script_location, lambda cfg: command.downgrade(cfg, revision))


def _run(engine: Engine, service: str, script_location: Path,
         step: Callable[[Config], None]) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["version_table"] = f"alembic_version_{service}"
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several processes of one service may start at once; let one migrate at a time.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        step(cfg)


def run_env(context: object, metadata: MetaData, table_prefix: str) -> None:
    """Body of each service's migrations/env.py (online mode only: we always have a URL)."""
    from alembic import context as ctx

    config = ctx.config
    connection: Connection = config.attributes["connection"]

    def include_object(obj: object, name: str | None, type_: str, *_: object) -> bool:
        return type_ != "table" or bool(name and name.startswith(table_prefix))

    ctx.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=config.attributes["version_table"],
        include_object=include_object,
        render_as_batch=True,
    )
    with ctx.begin_transaction():
        ctx.run_migrations()

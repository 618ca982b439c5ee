"""Alembic environment of routing: only routing_* tables, version table alembic_version_routing."""

from alembic import context
from sqlmodel import SQLModel

import routing.models  # noqa: F401  (registers the tables on the metadata)
from services.migrations import run_env

run_env(context, SQLModel.metadata, table_prefix="routing_")

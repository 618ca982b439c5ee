"""Alembic environment of intake: only intake_* tables, version table alembic_version_intake."""

from alembic import context
from sqlmodel import SQLModel

import intake.models  # noqa: F401  (registers the tables on the metadata)
from services.migrations import run_env

run_env(context, SQLModel.metadata, table_prefix="intake_")

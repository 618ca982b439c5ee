"""Alembic environment of metrics: only metrics_* tables, version table alembic_version_metrics."""

from alembic import context
from sqlmodel import SQLModel

import metrics.models  # noqa: F401  (registers the tables on the metadata)
from services.migrations import run_env

run_env(context, SQLModel.metadata, table_prefix="metrics_")

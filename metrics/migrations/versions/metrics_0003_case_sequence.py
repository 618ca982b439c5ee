"""case sequence

The last subject sequence (the envelope's `subjectsequence`) the projection applied to each
case: an event at or below it is a redelivery, recognised without the processed-ids table.
Cases projected before this revision have none (NULL) and keep being deduplicated by event id
until an event with a sequence is applied to them (metrics/projection.py).

Revision ID: metrics_0003
Revises: metrics_0002
Create Date: 2026-11-26 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "metrics_0003"
down_revision: str | None = "metrics_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("metrics_cases", sa.Column("sequence", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metrics_cases") as batch:
        batch.drop_column("sequence")

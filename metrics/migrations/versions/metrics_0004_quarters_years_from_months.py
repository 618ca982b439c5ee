"""quarters and years from months

Counters are kept per day and per month only; a quarter or a year is read as the sum of its
months (metrics/periods.py). The stored quarter and year rows would no longer be updated, so
they go. Downgrading puts them back as the sums of the months.

Revision ID: metrics_0004
Revises: metrics_0003
Create Date: 2026-11-27 09:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "metrics_0004"
down_revision: str | None = "metrics_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Periods are text: 2026 (year), 2026-Q1 (quarter), 2026-03 (month), 2026-03-02 (day), live.
_YEAR_OR_QUARTER = "(length(period) = 4 OR (length(period) = 7 AND substr(period, 6, 1) = 'Q'))"
_MONTH = "(length(period) = 7 AND substr(period, 6, 1) <> 'Q')"


def upgrade() -> None:
    op.execute(f"DELETE FROM metrics_counters WHERE {_YEAR_OR_QUARTER}")


def downgrade() -> None:
    month = "CAST(substr(period, 6, 2) AS INTEGER)"
    op.execute(
        "INSERT INTO metrics_counters (name, scope, period, value) "
        f"SELECT name, scope, substr(period, 1, 4), SUM(value) FROM metrics_counters "
        f"WHERE {_MONTH} GROUP BY name, scope, substr(period, 1, 4)"
    )
    op.execute(
        "INSERT INTO metrics_counters (name, scope, period, value) "
        f"SELECT name, scope, substr(period, 1, 4) || '-Q' || CAST(({month} - 1) / 3 + 1 AS "
        f"VARCHAR(1)), SUM(value) FROM metrics_counters WHERE {_MONTH} "
        f"GROUP BY name, scope, substr(period, 1, 4), ({month} - 1) / 3"
    )

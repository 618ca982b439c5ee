"""Metrics settings (environment prefix MOTCUA_METRICS_ for its own fields)."""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_METRICS_", extra="ignore",
                                      populate_by_name=True)

    service_name: str = "metrics"
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("METRICS_DATABASE_URL", "DATABASE_URL"),
        description="Metrics' database; defaults to metrics.db under data_dir.",
    )
    # Two batches in flight (one applied while the next is decoded) keep about 180,000 objects
    # alive at the default batch size: at 10,000 the collector walked them some 300 times per
    # 177,000 events, 13-19 % of the projection's CPU (docs/benchmarks.md). Raise it with
    # consumer_batch_size.
    gc_young_threshold: int = Field(
        default=500_000, ge=700,
        description="Net allocations between collections of the youngest generation; above "
        "what the consumer's batches in flight keep alive (about 18 objects an event).")
    plans_dir: Path | None = Field(
        default=None,
        description="A directory of provincial plan files (*.json) loaded beside the plans "
        "shipped in metrics/plans/.",
    )

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
    plans_dir: Path | None = Field(
        default=None,
        description="A directory of provincial plan files (*.json) loaded beside the plans "
        "shipped in metrics/plans/.",
    )

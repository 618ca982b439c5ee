"""Routing settings (environment prefix MOTCUA_ROUTING_ for its own fields)."""

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_ROUTING_", extra="ignore",
                                      populate_by_name=True)

    service_name: str = "routing"
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ROUTING_DATABASE_URL", "DATABASE_URL"),
        description="Routing's database; defaults to routing.db under data_dir.",
    )
    overdue_scan_seconds: float = Field(
        default=60.0, gt=0,
        description="Seconds between scans for cases past their due date (also run at start).",
    )

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
    consumer_batch_size: int = Field(
        default=5_000, ge=1,
        validation_alias=AliasChoices("MOTCUA_ROUTING_CONSUMER_BATCH_SIZE",
                                      "MOTCUA_CONSUMER_BATCH_SIZE"),
        description="Max messages per batch. Half of the other services' 10,000: routing "
        "holds a batch's rows as ORM objects, and the next batch fetched ahead; catching up "
        "a backlog it peaked at 264–289 MB with 10,000, 212–234 MB with 5,000, at 95–100 % "
        "of the rate (docs/benchmarks.md, eleventh pass).",
    )
    overdue_scan_seconds: float = Field(
        default=60.0, gt=0,
        description="Seconds between scans for cases past their due date (also run at start).",
    )

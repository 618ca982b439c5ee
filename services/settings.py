"""Settings shared by every service; each service subclasses with its own prefix."""

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def shared(name: str, default: Any, description: str, **kw: Any) -> Any:
    """A field every service reads from the same MOTCUA_<NAME> variable."""
    return Field(default=default, validation_alias=AliasChoices(f"MOTCUA_{name.upper()}"),
                 description=description, **kw)


class ServiceSettings(BaseSettings):
    """Read from the environment when instantiated, never at import time.

    The connection settings keep their conventional unprefixed names (KAFKA_BOOTSTRAP_SERVERS,
    DATABASE_URL) so one environment drives all three services; a service-prefixed variable
    (e.g. INTAKE_DATABASE_URL) overrides it for that service alone.
    """

    model_config = SettingsConfigDict(env_prefix="MOTCUA_", extra="ignore", populate_by_name=True)

    service_name: str = Field(default="motcua", description="Name used in logs and event sources.")
    data_dir: Path = Field(
        default=Path("data"),
        validation_alias=AliasChoices("MOTCUA_DATA_DIR", "DATA_DIR"),
        description="Directory for the embedded SQLite files.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MOTCUA_DATABASE_URL"),
        description="SQLAlchemy URL; defaults to a SQLite file under data_dir.",
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MOTCUA_KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka brokers; when unset the durable in-process bus is used.",
    )
    kafka_client_id: str = shared("kafka_client_id", "motcua", "Kafka client id prefix.")
    topic_prefix: str = shared(
        "topic_prefix", "",
        "Prefix for topic and consumer group names, so deployments or tests share a broker.",
    )
    topic_partitions: int = shared("topic_partitions", 6, "Partitions for created topics.", ge=1)
    consumer_batch_size: int = shared("consumer_batch_size", 500, "Max messages per batch.", ge=1)
    consumer_poll_ms: int = shared("consumer_poll_ms", 200, "Max wait for a batch, ms.", ge=1)
    embedded_bus_url: str | None = shared(
        "embedded_bus_url", None,
        "Database URL of the embedded bus log; defaults to bus.db under data_dir.",
    )
    catalogue_dir: Path | None = shared(
        "catalogue_dir", None, "Directory with agencies.json and procedures.json."
    )
    max_body_bytes: int = shared("max_body_bytes", 1_048_576, "Largest request body.", ge=1024)
    log_level: str = shared("log_level", "INFO", "Python logging level.")

    @model_validator(mode="after")
    def _prefix_is_kafka_safe(self) -> "ServiceSettings":
        if self.topic_prefix and not all(c.isalnum() or c in "._-" for c in self.topic_prefix):
            raise ValueError("topic_prefix may hold only letters, digits, '.', '_' and '-'")
        return self

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{(self.data_dir / f'{name}.db').resolve()}"

    def resolved_database_url(self, name: str) -> str:
        return self.database_url or self.sqlite_url(name)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

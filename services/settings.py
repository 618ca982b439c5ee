"""Settings shared by every service; each service subclasses with its own prefix."""

import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime import GEN0_THRESHOLD


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

    # An error must not print the values it refused: they may be secrets.
    model_config = SettingsConfigDict(env_prefix="MOTCUA_", extra="ignore", populate_by_name=True,
                                      hide_input_in_errors=True)

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
    consumer_batch_size: int = shared(
        "consumer_batch_size", 10_000,
        "Max messages per batch (a bigger batch folds more facts into each counter row).", ge=1)
    gc_young_threshold: int = Field(
        default=GEN0_THRESHOLD, ge=700,
        description="Net allocations between collections of the youngest generation (Python's "
        "default is 700); set in the service process's entry point.")
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

    # --- security (docs/security.md) -------------------------------------------------------
    environment: Literal["development", "production"] = shared(
        "environment", "development",
        "development generates missing secrets into data_dir/secrets; production refuses to "
        "start without real ones.",
    )
    auth_signing_key: SecretStr | None = shared(
        "auth_signing_key", None,
        "HS256 key signing the bearer tokens; the same value for every service (32+ chars).",
    )
    auth_previous_signing_key: SecretStr | None = shared(
        "auth_previous_signing_key", None,
        "The key before the last rotation: tokens it signed are still accepted until they "
        "expire.",
    )
    auth_token_ttl_seconds: int = shared(
        "auth_token_ttl_seconds", 900, "Lifetime of an issued access token.", ge=60, le=86_400)
    auth_issuer: str = shared("auth_issuer", "motcua", "Issuer and audience of the tokens.")
    metrics_scrape_token: SecretStr | None = shared(
        "metrics_scrape_token", None,
        "When set, GET /metrics needs `Authorization: Bearer <this>`; unset, it is public.",
    )
    rate_limit_per_second: float = shared(
        "rate_limit_per_second", 50.0,
        "Requests a client (or, before authentication, an address) may make per second, "
        "sustained, per process.", gt=0,
    )
    rate_limit_burst: int = shared(
        "rate_limit_burst", 500, "Requests a client may make at once above the rate.", ge=1)
    request_timeout_seconds: float = shared(
        "request_timeout_seconds", 30.0,
        "An answer not started after this long is a 503 (the client retries with the same "
        "event id).", gt=0,
    )
    require_tls: bool = shared(
        "require_tls", False,
        "Refuse to start unless Kafka uses SSL/SASL_SSL and a PostgreSQL URL verifies the "
        "server (sslmode=verify-ca or verify-full).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = shared(
        "kafka_security_protocol", "PLAINTEXT", "How to talk to the brokers.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = shared(
        "kafka_sasl_mechanism", None, "SASL mechanism with SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_username: str | None = shared("kafka_sasl_username", None, "SASL user name.")
    kafka_sasl_password: SecretStr | None = shared(
        "kafka_sasl_password", None, "SASL password.")
    kafka_ssl_cafile: Path | None = shared(
        "kafka_ssl_cafile", None, "CA bundle the brokers' certificates are checked against.")
    kafka_ssl_certfile: Path | None = shared(
        "kafka_ssl_certfile", None, "Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = shared(
        "kafka_ssl_keyfile", None, "Private key of the client certificate.")
    kafka_ssl_password: SecretStr | None = shared(
        "kafka_ssl_password", None, "Password of the private key, if it is encrypted.")

    @model_validator(mode="after")
    def _prefix_is_kafka_safe(self) -> "ServiceSettings":
        if self.topic_prefix and not all(c.isalnum() or c in "._-" for c in self.topic_prefix):
            raise ValueError("topic_prefix may hold only letters, digits, '.', '_' and '-'")
        return self

    @model_validator(mode="after")
    def _secrets_are_real(self) -> "ServiceSettings":
        if self.environment != "development":
            if self.auth_signing_key is None:
                raise ValueError("auth_signing_key (MOTCUA_AUTH_SIGNING_KEY) is required "
                                 "outside development")
            for name in ("auth_signing_key", "auth_previous_signing_key",
                         "metrics_scrape_token", "kafka_sasl_password"):
                value = getattr(self, name)
                if value is not None and is_placeholder(value.get_secret_value()):
                    raise ValueError(f"{name} is a placeholder or shorter than 32 characters; "
                                     "generate one: python -c 'import secrets; "
                                     "print(secrets.token_urlsafe(32))'")
        return self

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> "ServiceSettings":
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("SASL needs kafka_sasl_mechanism, kafka_sasl_username and "
                             "kafka_sasl_password")
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no file at {path}")
        if self.require_tls:
            if self.kafka_bootstrap_servers and self.kafka_security_protocol not in (
                    "SSL", "SASL_SSL"):
                raise ValueError("require_tls: kafka_security_protocol must be SSL or SASL_SSL")
            if self.database_url and not database_url_verifies_tls(self.database_url):
                raise ValueError("require_tls: the PostgreSQL URL needs sslmode=verify-full "
                                 "(or verify-ca)")
        return self

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumers, admin)."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL_"):
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=(self.kafka_sasl_password.get_secret_value()
                                     if self.kafka_sasl_password else None),
            )
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.kafka_ssl_context()
        return options

    def kafka_ssl_context(self) -> ssl.SSLContext:
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(
            cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
            certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
            keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
            password=(self.kafka_ssl_password.get_secret_value()
                      if self.kafka_ssl_password else None),
        )

    def sqlite_url(self, name: str) -> str:
        return f"sqlite:///{(self.data_dir / f'{name}.db').resolve()}"

    def resolved_database_url(self, name: str) -> str:
        return self.database_url or self.sqlite_url(name)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name


_PLACEHOLDERS = ("change", "placeholder", "example", "secret", "dev-only", "default",
                 "password", "xxxx", "todo")


def is_placeholder(value: str) -> bool:
    """A value nobody should run production on: short, a known filler word, or one repeated
    character."""
    lowered = value.lower()
    return (len(value) < 32 or len(set(value)) < 8
            or any(word in lowered for word in _PLACEHOLDERS))


def database_url_verifies_tls(url: str) -> bool:
    """SQLite is local; a PostgreSQL URL must ask libpq to verify the server's certificate."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        return True
    query = parse_qs(parts.query)
    return query.get("sslmode", [""])[0] in ("verify-ca", "verify-full")

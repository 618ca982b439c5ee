"""Intake settings (environment prefix MOTCUA_INTAKE_ for its own fields)."""

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_INTAKE_", extra="ignore",
                                      populate_by_name=True)

    service_name: str = "intake"
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INTAKE_DATABASE_URL", "DATABASE_URL"),
        description="Intake's database; defaults to intake.db under data_dir.",
    )
    clock_skew_seconds: int = Field(
        default=120, ge=0, description="How far in the future a counter's clock may run."
    )
    batch_max_items: int = Field(default=1000, ge=1, description="Largest POST /v1/events:batch.")
    # Batch requests in flight keep tens of thousands of objects alive (parsed items, cases,
    # payloads, envelopes, rows): at 10,000 the young collector ran some 700 times in a
    # 20-second batch run and walked them, 1.0-1.1 s of intake's 19 s of CPU; at 50,000 and
    # above it ran only at start-up, with the same peak RSS (docs/benchmarks.md, fourteenth
    # pass). Single-case requests hardly reach either.
    gc_young_threshold: int = Field(
        default=100_000, ge=700,
        description="Net allocations between collections of the youngest generation; above "
        "what the batch requests in flight keep alive.")
    write_on_loop: bool = Field(
        default=True,
        description="On PostgreSQL, write the group-commit transactions from the event loop "
        "(psycopg's asynchronous connection) instead of a worker thread.",
    )
    write_transactions: int = Field(
        default=2, ge=1, le=8,
        description="On PostgreSQL, how many group-commit transactions may be in flight at "
        "once, each on a connection of its own (and one more for drawing case numbers); one "
        "more starts once the one before holds its cases' locks and case numbers.",
    )
    pii_keys: SecretStr | None = Field(
        default=None,
        description="Keys encrypting applicant data at rest: `id:base64(32 bytes)`, comma "
        "separated, the first encrypts; required outside development.",
    )

    @model_validator(mode="after")
    def _pii_keys_are_real(self) -> "IntakeSettings":
        from intake.pii import parse_keys

        if self.pii_keys is None:
            if self.environment != "development":
                raise ValueError("pii_keys (MOTCUA_INTAKE_PII_KEYS) is required outside "
                                 "development")
            return self
        keys = parse_keys(self.pii_keys.get_secret_value())  # malformed: fails at start
        if self.environment != "development" and any(kid.startswith("dev") for kid, _ in keys):
            raise ValueError("pii_keys: a key whose id starts with 'dev' is a development key")
        return self

"""Settings read from the environment (prefix ``ESTATE_``), one object per process."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "development-only-secret-change-me-0123456789"


class Mode(StrEnum):
    EMBEDDED = "embedded"
    DISTRIBUTED = "distributed"


class Settings(BaseSettings):
    """Everything a service process needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="ESTATE_", extra="ignore")

    mode: Mode = Mode.EMBEDDED
    service_name: str = "estate-platform"

    kafka_bootstrap: str = "127.0.0.1:39092"
    kafka_client_id: str = "estate-platform"
    topic_partitions: int = Field(default=3, ge=1)

    mongo_url: str = "mongodb://127.0.0.1:37017/"
    mongo_database: str = "estate"

    jwt_secret: str = DEVELOPMENT_JWT_SECRET
    jwt_issuer: str = "estate-platform"
    jwt_audience: str = "estate-platform"
    auth_enabled: bool = True

    otlp_endpoint: str | None = None

    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    """json: one JSON object a line; text: readable lines; auto: text on a terminal, else JSON."""

    consumer_group_prefix: str = ""
    """Prefixed to every consumer group name (environments or test runs sharing one Kafka)."""
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_initial_s: float = Field(default=0.2, ge=0)
    consumer_backoff_max_s: float = Field(default=5.0, ge=0)

    outbox_batch_size: int = Field(default=1000, ge=1)
    outbox_scan_interval_s: float = Field(default=300.0, gt=0)
    outbox_lease_s: float = Field(default=10.0, gt=0)
    """How long a relay's claim to publish a collection lasts unless renewed (renewed at a third)."""
    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    """How often the publishing relay looks for events other replicas wrote."""

    store_timeout_s: float = Field(default=2.0, gt=0)
    """How long a store operation may wait for an unreachable or hung store before giving up."""
    store_query_timeout_s: float = Field(default=60.0, gt=0)
    """How long a query that is not a lone ``_id`` lookup may take (FerretDB 1.x scans for those)."""
    retry_after_s: int = Field(default=5, ge=1)
    """Retry-After sent with 503 answers when a dependency is unavailable."""

    ledger_retention_days: float = Field(default=30.0, gt=0)
    """How long the processed-events ledger remembers an event (longer than any redelivery)."""

    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @model_validator(mode="after")
    def _refuse_development_secret_outside_embedded(self) -> Self:
        if self.mode is Mode.DISTRIBUTED and self.jwt_secret == DEVELOPMENT_JWT_SECRET:
            raise ValueError(
                "ESTATE_JWT_SECRET must be set to a real secret when ESTATE_MODE=distributed"
            )
        if len(self.jwt_secret) < 32:
            raise ValueError("ESTATE_JWT_SECRET must be at least 32 characters long")
        return self

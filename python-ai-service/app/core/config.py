"""Service settings, read from the environment and an optional ``.env`` file.

The process environment overrides ``.env``. Empty values count as unset (``env_ignore_empty``),
so ``OPENAI_API_KEY=`` in a compose file means "no key" rather than an empty key.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.ml.indicators import MIN_CANDLES

LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]
Network = IPv4Network | IPv6Network


class Settings(BaseSettings):
    """Typed service configuration; each field is read from the environment variable of its name."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    PROJECT_NAME: str = "python-ai-service"
    API_V1_STR: str = "/api/v1"
    # Set by the images ("ci" or "full"); named in 503 messages when a backend is absent.
    IMAGE_VARIANT: str = "dev"

    # /docs, /redoc and the OpenAPI schema: a map of the API for anyone who asks, so off unless set.
    API_DOCS: bool = False
    # /capabilities names the Python and library versions only when set (a CVE lookup for free).
    EXPOSE_VERSIONS: bool = False

    LOG_LEVEL: LogLevel = "INFO"
    LOG_JSON: bool = False

    # slowapi/limits syntax, e.g. "600/minute" or "10/second;600/minute"; per client and path.
    RATE_LIMIT: str = "600/minute"
    RATE_LIMIT_ENABLED: bool = True
    # Peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client (an IP address
    # only). Empty trusts no one: behind an ingress, list it, or its clients share one budget.
    TRUSTED_PROXIES: Annotated[tuple[Network, ...], NoDecode] = ()

    MAX_BODY_BYTES: int = Field(default=2 * 1024 * 1024, gt=0)
    # A client that has not sent its whole body by then gets 408 and its worker slot back.
    BODY_READ_TIMEOUT_S: float = Field(default=15.0, gt=0)
    MAX_CANDLES: int = Field(default=5000, ge=MIN_CANDLES)
    # A 422 lists this many errors in full; the rest are only counted (per field).
    VALIDATION_ERRORS_SHOWN: int = Field(default=20, ge=1, le=1000)
    # Worker processes that parse, validate and compute (app.core.workers), each with its own
    # pandas, scikit-learn and signal model: one per core, less one for the event loop.
    CPU_WORKERS: int = Field(default=1, ge=1, le=64)

    SIGNAL_SEED: int = 42
    FORECAST_SEED: int = 0
    FORECAST_EPOCHS: int = Field(default=200, ge=1, le=5000)

    HISTORY_MAX_ITEMS: int = Field(default=1000, ge=1)
    # Entries waiting for the history writer; when full, new ones are dropped and counted.
    HISTORY_QUEUE_SIZE: int = Field(default=1000, ge=1)
    # How long shutdown waits for queued entries to be written before dropping them.
    HISTORY_FLUSH_TIMEOUT_S: float = Field(default=2.0, ge=0)
    MONGODB_URL: SecretStr | None = None
    MONGODB_DB: str = "python_ai_service"
    MONGODB_COLLECTION: str = "history"
    MONGODB_TIMEOUT_MS: int = Field(default=2000, gt=0)

    OPENAI_API_KEY: SecretStr | None = None
    OPENAI_BASE_URL: str | None = None
    OPENAI_MODEL: str = "gpt-4o-mini"
    # The whole call, its one retry included: past it /analysis answers 504.
    OPENAI_DEADLINE_S: float = Field(default=10.0, gt=0, le=60)
    # After this many failed calls in a row, /analysis answers 503 at once for the cool-down.
    OPENAI_BREAKER_FAILURES: int = Field(default=5, ge=1)
    OPENAI_BREAKER_COOLDOWN_S: float = Field(default=30.0, gt=0)

    # Used by `python -m app` only; `uvicorn app.main:app` takes its own flags.
    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=0, le=65535)
    # Idle keep-alive connections and clients that never finish their headers are closed after
    # these; without them a slow client holds a connection for ever.
    KEEP_ALIVE_TIMEOUT_S: int = Field(default=5, ge=1)
    HEADER_READ_TIMEOUT_S: float = Field(default=10.0, gt=0)
    # Connections (open and in flight) beyond this get 503 instead of queueing without bound.
    LIMIT_CONCURRENCY: int = Field(default=200, ge=1)
    # SIGTERM waits this long for in-flight requests; Kubernetes' default grace period is 30 s.
    GRACEFUL_SHUTDOWN_TIMEOUT_S: int = Field(default=10, ge=0)

    @field_validator("RATE_LIMIT")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        # Fail at start-up on a typo rather than on the first request.
        parse_many(value)
        return value

    @field_validator("TRUSTED_PROXIES", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ip_network(part.strip()) for part in value.split(",") if part.strip())
        return value


settings = Settings()

"""Service settings, read from the environment and an optional ``.env`` file.

pydantic-settings is not part of the pinned requirement set, so this is a plain frozen pydantic
model with a small loader: values come from ``.env`` (if present) and are overridden by the process
environment. Empty values count as unset, so ``OPENAI_API_KEY=`` in a compose file means "no key".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.ml.indicators import MIN_CANDLES

LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseModel):
    """Typed service configuration; each field is read from the environment variable of its name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    PROJECT_NAME: str = "python-ai-service"
    API_V1_STR: str = "/api/v1"
    # Set by the images ("ci" or "full"); named in 503 messages when a backend is absent.
    IMAGE_VARIANT: str = "dev"

    LOG_LEVEL: LogLevel = "INFO"
    LOG_JSON: bool = False

    # slowapi/limits syntax, e.g. "600/minute" or "10/second;600/minute"; per client and path.
    RATE_LIMIT: str = "600/minute"
    RATE_LIMIT_ENABLED: bool = True
    MAX_BODY_BYTES: int = Field(default=2 * 1024 * 1024, gt=0)
    MAX_CANDLES: int = Field(default=5000, ge=MIN_CANDLES)

    SIGNAL_SEED: int = 42
    FORECAST_SEED: int = 0
    FORECAST_EPOCHS: int = Field(default=200, ge=1, le=5000)

    HISTORY_MAX_ITEMS: int = Field(default=1000, ge=1)
    MONGODB_URL: SecretStr | None = None
    MONGODB_DB: str = "python_ai_service"
    MONGODB_COLLECTION: str = "history"
    MONGODB_TIMEOUT_MS: int = Field(default=2000, gt=0)

    OPENAI_API_KEY: SecretStr | None = None
    OPENAI_BASE_URL: str | None = None
    OPENAI_MODEL: str = "gpt-4o-mini"
    OPENAI_TIMEOUT_S: float = Field(default=30.0, gt=0)

    @field_validator("RATE_LIMIT")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        # Fail at start-up on a typo rather than on the first request.
        parse_many(value)
        return value

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Settings from ``env_file`` (if present) overlaid with ``environ`` (or os.environ)."""
        raw: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            raw.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        raw.update(os.environ if environ is None else environ)
        known = {name: value for name, value in raw.items() if name in cls.model_fields and value}
        return cls.model_validate(known)


settings = Settings.from_env()

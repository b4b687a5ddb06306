"""Builders for request payloads shared by the service tests."""

from __future__ import annotations

import math
import random
from typing import Any

from app.core.config import Settings

START = 1_700_000_000
STEP = 60


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test app: explicit values only, so the host's environment cannot leak in."""
    values: dict[str, Any] = {
        "IMAGE_VARIANT": "test",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT": "100000/minute",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def make_candles(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` valid candles: a seeded random walk, one minute apart."""
    rng = random.Random(seed)
    candles: list[dict[str, Any]] = []
    close = 100.0
    for i in range(n):
        open_ = close
        close = max(1.0, close * math.exp(rng.gauss(0.0, 0.01)))
        candles.append(
            {
                "timestamp": START + i * STEP,
                "open": open_,
                "high": max(open_, close) * (1 + rng.uniform(0.0, 0.005)),
                "low": min(open_, close) * (1 - rng.uniform(0.0, 0.005)),
                "close": close,
                "volume": rng.uniform(0.0, 1e6),
            }
        )
    return candles


def all_finite_or_null(value: Any) -> bool:
    """True when every number in a decoded JSON document is finite (``None`` allowed)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite_or_null(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite_or_null(v) for v in value)
    return True

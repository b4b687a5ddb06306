"""Request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from app.ml.indicators import MIN_CANDLES

# Bounds keep every downstream computation finite (EMAs and variances of 1e308 overflow).
MAX_PRICE = 1e12
MAX_VOLUME = 1e18
# A forecast is fitted on (window -> next value) pairs; fewer than this many is not a fit.
MIN_TRAINING_PAIRS = 16

Price = Annotated[float, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)]
Volume = Annotated[float, Field(ge=0, le=MAX_VOLUME, allow_inf_nan=False)]
Timestamp = Annotated[int, Field(ge=0, le=2**63 - 1, description="Unix epoch (s or ms)")]


class Candle(BaseModel):
    """One OHLCV candle.

    Fields are declared open, close, high, low so the high/low validators can see open and close
    and report the error on the field that breaks the candle.
    """

    timestamp: Timestamp
    open: Price
    close: Price
    high: Price
    low: Price
    volume: Volume

    @field_validator("high")
    @classmethod
    def _high_is_highest(cls, high: float, info: ValidationInfo) -> float:
        body = [info.data[k] for k in ("open", "close") if k in info.data]
        if body and high < max(body):
            raise ValueError("high must be >= max(open, close)")
        return high

    @field_validator("low")
    @classmethod
    def _low_is_lowest(cls, low: float, info: ValidationInfo) -> float:
        body = [info.data[k] for k in ("open", "close") if k in info.data]
        if body and low > min(body):
            raise ValueError("low must be <= min(open, close)")
        return low


class CandlesRequest(BaseModel):
    """A series of candles, oldest first."""

    candles: list[Candle] = Field(min_length=MIN_CANDLES)

    @field_validator("candles")
    @classmethod
    def _timestamps_increase(cls, candles: list[Candle]) -> list[Candle]:
        for i in range(1, len(candles)):
            if candles[i].timestamp <= candles[i - 1].timestamp:
                raise ValueError(
                    f"timestamps must strictly increase: candles[{i}].timestamp "
                    f"<= candles[{i - 1}].timestamp"
                )
        return candles


class IndicatorSeries(BaseModel):
    """One value per candle; ``null`` while an indicator's window is filling."""

    rsi: list[float | None]
    macd: list[float | None]
    macd_signal: list[float | None]
    macd_hist: list[float | None]
    bb_upper: list[float | None]
    bb_middle: list[float | None]
    bb_lower: list[float | None]
    ema: list[float | None]
    atr: list[float | None]


class IndicatorSnapshot(BaseModel):
    """Indicator values at the last candle."""

    rsi: float | None
    macd: float | None
    macd_signal: float | None
    macd_hist: float | None
    bb_upper: float | None
    bb_middle: float | None
    bb_lower: float | None
    ema: float | None
    atr: float | None


class IndicatorsResponse(BaseModel):
    count: int
    timestamps: list[int]
    series: IndicatorSeries
    latest: IndicatorSnapshot


class SignalResponse(BaseModel):
    direction: Literal["up", "down"]
    probability_up: float
    confidence: float
    as_of: int = Field(description="Timestamp of the last candle the signal is for")
    model_version: str
    features: dict[str, float]


class ForecastRequest(BaseModel):
    """Closes, oldest first; ``window`` comes before ``closes`` so its validator can see it."""

    horizon: int = Field(default=5, ge=1, le=64)
    window: int = Field(default=8, ge=2, le=64)
    closes: list[Price] = Field(min_length=2 + MIN_TRAINING_PAIRS)

    @field_validator("closes")
    @classmethod
    def _enough_for_window(cls, closes: list[float], info: ValidationInfo) -> list[float]:
        window = info.data.get("window")
        if window is not None and len(closes) < window + MIN_TRAINING_PAIRS:
            needed = window + MIN_TRAINING_PAIRS
            raise ValueError(f"need at least {needed} closes to fit window={window}")
        return closes


class ForecastResponse(BaseModel):
    backend: str
    backend_version: str | None
    horizon: int
    window: int
    epochs: int
    seed: int
    forecast: list[float]


class AnalysisRequest(CandlesRequest):
    question: str | None = Field(default=None, max_length=500)

    @field_validator("question")
    @classmethod
    def _printable_text(cls, question: str | None) -> str | None:
        # Forwarded to OpenAI: a lone surrogate cannot be encoded for the call (it was a 500), and
        # control characters have no place in a question.
        if question is None:
            return None
        if any(0xD800 <= ord(c) <= 0xDFFF for c in question):
            raise ValueError("question contains a lone surrogate")
        if any((ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in question):
            raise ValueError("question contains control characters")
        return question


class AnalysisResponse(BaseModel):
    commentary: str
    model: str
    signal: SignalResponse
    latest: IndicatorSnapshot


class LibraryInfo(BaseModel):
    available: bool
    version: str | None


class CapabilitiesResponse(BaseModel):
    image_variant: str
    python: str | None = Field(description="The Python version, with EXPOSE_VERSIONS")
    libraries: dict[str, LibraryInfo]
    forecast_backends: list[str]


SummaryValue = str | int | float | None


class HistoryEntry(BaseModel):
    timestamp: datetime
    endpoint: str
    summary: dict[str, SummaryValue]


class HistoryResponse(BaseModel):
    store: Literal["memory", "mongodb"]
    items: list[HistoryEntry]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class HistoryHealth(BaseModel):
    """The background history writer's counters since start-up."""

    store: Literal["memory", "mongodb"]
    queued: int
    written: int
    dropped: int = Field(description="Entries not recorded because the queue was full")
    failed: int = Field(description="Writes the store refused")


class ReadyResponse(BaseModel):
    # "degraded": serving, but history is not being recorded (still 200: see /ready).
    status: Literal["ready", "degraded"] = "ready"
    checks: dict[str, str]
    history: HistoryHealth | None = None

"""Glue between the API models and the ml package: candles in, response models out.

These functions are CPU-bound; they run in the worker processes (app.worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.ml.indicators import INDICATOR_COLUMNS, compute_indicators, optional_floats
from app.ml.signal_model import SignalModel
from app.schemas import (
    Candle,
    IndicatorSeries,
    IndicatorSnapshot,
    IndicatorsResponse,
    SignalResponse,
)

if TYPE_CHECKING:
    import pandas as pd


def indicator_frame(candles: Sequence[Candle]) -> pd.DataFrame:
    """``compute_indicators`` over the candles' high, low and close."""
    return compute_indicators(
        [c.high for c in candles], [c.low for c in candles], [c.close for c in candles]
    )


def snapshot(frame: pd.DataFrame) -> IndicatorSnapshot:
    """The indicator values at the last candle."""
    last = frame.iloc[-1]
    return IndicatorSnapshot.model_validate(
        dict(zip(INDICATOR_COLUMNS, optional_floats(last[list(INDICATOR_COLUMNS)]), strict=True))
    )


def indicators_response(candles: Sequence[Candle]) -> IndicatorsResponse:
    frame = indicator_frame(candles)
    return IndicatorsResponse(
        count=len(candles),
        timestamps=[c.timestamp for c in candles],
        series=IndicatorSeries.model_validate(
            {name: optional_floats(frame[name]) for name in INDICATOR_COLUMNS}
        ),
        latest=snapshot(frame),
    )


def signal_response(
    model: SignalModel, candles: Sequence[Candle], frame: pd.DataFrame
) -> SignalResponse:
    """The model's signal for the last candle, from the candles' ``indicator_frame``."""
    prediction = model.predict(frame, [c.close for c in candles])
    return SignalResponse(
        direction=prediction.direction,
        probability_up=prediction.probability_up,
        confidence=max(prediction.probability_up, 1.0 - prediction.probability_up),
        as_of=candles[-1].timestamp,
        model_version=model.version,
        features=prediction.features,
    )

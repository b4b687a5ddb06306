"""Technical indicators (RSI, MACD, Bollinger bands, EMA, ATR) computed with pandas and ``ta``.

pandas and ta are imported inside the functions: importing them costs about a second, which
would otherwise be paid before ``/health`` can answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

RSI_WINDOW = 14
MACD_FAST = 12
MACD_SLOW = 26
MACD_SIGNAL = 9
BOLLINGER_WINDOW = 20
BOLLINGER_DEV = 2
EMA_WINDOW = 20
ATR_WINDOW = 14

# The MACD signal line is defined last: it is an EMA over the MACD line, which itself needs
# MACD_SLOW candles. With this many candles every indicator has a value at the last candle.
MIN_CANDLES = MACD_SLOW + MACD_SIGNAL - 1

INDICATOR_COLUMNS = (
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "ema",
    "atr",
)


def compute_indicators(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike
) -> pd.DataFrame:
    """Return one row per candle and one column per name in ``INDICATOR_COLUMNS``.

    Values are NaN where a window has not filled yet (or is undefined, e.g. RSI on flat prices).
    """
    import numpy as np
    import pandas as pd
    from ta.momentum import RSIIndicator
    from ta.trend import MACD, EMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands

    close_s = pd.Series(close, dtype="float64")
    high_s = pd.Series(high, dtype="float64")
    low_s = pd.Series(low, dtype="float64")

    # Flat or extreme series legitimately produce 0/0 and x/0 inside ta; the NaN/inf results are
    # mapped to "no value" by the callers, so numpy's warnings are noise here.
    with np.errstate(all="ignore"):
        macd = MACD(close_s, window_slow=MACD_SLOW, window_fast=MACD_FAST, window_sign=MACD_SIGNAL)
        bands = BollingerBands(close_s, window=BOLLINGER_WINDOW, window_dev=BOLLINGER_DEV)
        atr = AverageTrueRange(high_s, low_s, close_s, window=ATR_WINDOW).average_true_range()
        # ta fills ATR's warm-up with zeros, which would read as "no volatility"; make it NaN.
        atr.iloc[: ATR_WINDOW - 1] = np.nan
        frame = pd.DataFrame(
            {
                "rsi": RSIIndicator(close_s, window=RSI_WINDOW).rsi(),
                "macd": macd.macd(),
                "macd_signal": macd.macd_signal(),
                "macd_hist": macd.macd_diff(),
                "bb_upper": bands.bollinger_hband(),
                "bb_middle": bands.bollinger_mavg(),
                "bb_lower": bands.bollinger_lband(),
                "ema": EMAIndicator(close_s, window=EMA_WINDOW).ema_indicator(),
                "atr": atr,
            }
        )
    return frame.replace([np.inf, -np.inf], np.nan)


def optional_floats(values: Iterable[float]) -> list[float | None]:
    """JSON-safe copy of ``values``: NaN and infinities become ``None``."""
    return [float(v) if math.isfinite(v) else None for v in values]

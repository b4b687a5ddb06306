"""Up/down signal from indicator features with a seeded scikit-learn model.

There is no model file: the images run with a read-only filesystem and ship no weights, so the
model is trained once per process, in memory, on seeded synthetic candles (AR(1) returns, so
momentum and mean reversion are learnable). Training is bounded (a few thousand rows, logistic
regression) and deterministic for a seed; the request path only calls ``predict``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from app.ml.indicators import compute_indicators

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt
    import pandas as pd

FEATURE_NAMES = (
    "rsi",
    "macd_hist_rel",
    "bollinger_pct_b",
    "close_vs_ema",
    "atr_rel",
    "return_1",
    "return_5",
)
MODEL_NAME = "logreg-synthetic-v1"
# Label: does the close rise over the next LABEL_HORIZON candles?
LABEL_HORIZON = 3
_TRAIN_SERIES = 24
_TRAIN_LENGTH = 300
# Bounds the influence of pathological inputs; training features stay well inside this.
_FEATURE_CLIP = 10.0


def feature_matrix(frame: pd.DataFrame, close: pd.Series) -> npt.NDArray[np.float64]:
    """One feature row per candle, in ``FEATURE_NAMES`` order, all finite.

    Undefined ratios (flat prices, zero band width) become 0, the neutral value of each feature.
    """
    import numpy as np
    import pandas as pd

    with np.errstate(all="ignore"):
        band_width = frame["bb_upper"] - frame["bb_lower"]
        columns = [
            frame["rsi"] / 100.0 - 0.5,
            frame["macd_hist"] / close,
            (close - frame["bb_lower"]) / band_width - 0.5,
            close / frame["ema"] - 1.0,
            frame["atr"] / close,
            close.pct_change(1),
            close.pct_change(5),
        ]
        raw: npt.NDArray[np.float64] = pd.concat(columns, axis=1).to_numpy(dtype=np.float64)
    return np.clip(
        np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0), -_FEATURE_CLIP, _FEATURE_CLIP
    )


@dataclass(frozen=True)
class SignalPrediction:
    """Model output for the last candle of a series."""

    direction: Literal["up", "down"]
    probability_up: float
    features: dict[str, float]


class SignalModel:
    """A fitted classifier plus the version string that identifies it."""

    def __init__(self, estimator: Any, seed: int) -> None:
        import sklearn

        self._estimator = estimator
        self.version = f"{MODEL_NAME}+seed{seed}+sklearn{sklearn.__version__}"

    def predict(self, indicators: pd.DataFrame, close: Sequence[float]) -> SignalPrediction:
        """Predict the direction after the last candle from its ``compute_indicators`` frame."""
        import pandas as pd

        close_s = pd.Series(close, dtype="float64")
        features = feature_matrix(indicators, close_s)[-1:]
        probability_up = float(self._estimator.predict_proba(features)[0, 1])
        return SignalPrediction(
            direction="up" if probability_up >= 0.5 else "down",
            probability_up=probability_up,
            features={name: float(v) for name, v in zip(FEATURE_NAMES, features[0], strict=True)},
        )


def _synthetic_training_set(
    seed: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows: list[npt.NDArray[np.float64]] = []
    labels: list[npt.NDArray[np.int64]] = []
    for _ in range(_TRAIN_SERIES):
        phi = rng.uniform(-0.4, 0.6)
        noise = rng.normal(0.0, 0.01, _TRAIN_LENGTH)
        returns = np.zeros(_TRAIN_LENGTH)
        for t in range(1, _TRAIN_LENGTH):
            returns[t] = phi * returns[t - 1] + noise[t]
        close = 100.0 * np.exp(np.cumsum(returns))
        open_ = np.concatenate(([close[0]], close[:-1]))
        wick = np.abs(rng.normal(0.0, 0.003, (2, _TRAIN_LENGTH)))
        high = np.maximum(open_, close) * (1.0 + wick[0])
        low = np.minimum(open_, close) * (1.0 - wick[1])

        close_s = pd.Series(close)
        features = feature_matrix(compute_indicators(high, low, close), close_s)
        future = close_s.shift(-LABEL_HORIZON) > close_s
        # Skip the indicator warm-up and the tail whose future is unknown.
        usable = slice(50, _TRAIN_LENGTH - LABEL_HORIZON)
        rows.append(features[usable])
        labels.append(future.to_numpy()[usable].astype(np.int64))
    return np.vstack(rows), np.concatenate(labels)


def train_signal_model(seed: int) -> SignalModel:
    """Fit the classifier on the synthetic set for ``seed`` (deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _synthetic_training_set(seed)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))
    estimator.fit(x, y)
    return SignalModel(estimator, seed)


_models: dict[int, SignalModel] = {}
_models_lock = threading.Lock()


def trained_signal_model(seed: int) -> SignalModel | None:
    """The model for ``seed`` if it is trained already (never waits)."""
    return _models.get(seed)


def get_signal_model(seed: int) -> SignalModel:
    """The model for ``seed``, trained on first use and then shared by the whole process.

    Sharing is safe because training is deterministic: every app built with the same seed would
    train an identical model. The lock keeps a start-up warm-up and a first request from training
    twice at the same time.
    """
    with _models_lock:
        if seed not in _models:
            _models[seed] = train_signal_model(seed)
        return _models[seed]

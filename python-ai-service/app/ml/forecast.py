"""Next-k forecasts from a tiny model fitted to the posted closes, with torch or TensorFlow.

Both backends implement one interface, :data:`Fitter`: fit a window -> next-value regressor on
normalised data and return a batch predictor. Everything else (normalisation, windowing, the
recursive roll-out) is shared numpy code, so each backend is a dozen lines of standard API.

torch and tensorflow are imported only inside their fitter, on the first forecast: importing
either takes seconds, and the CI image does not have them at all.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from app.ml.capabilities import library_status

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

Predictor = Callable[["FloatArray"], "FloatArray"]
Fitter = Callable[["FloatArray", "FloatArray", int, int], Predictor]
"""``fitter(x, y, seed, epochs)``: x is (n, window), y is (n,); returns a batch predictor."""

_HIDDEN_UNITS = 16
_LEARNING_RATE = 0.01
# Recursive forecasts from a fitted model can run away; keep them within this many standard
# deviations of the posted data so the response is always finite.
_CLAMP_SIGMAS = 10.0


class Backend(StrEnum):
    """Deep-learning backends a forecast can run on (import and distribution names alike)."""

    TORCH = "torch"
    TENSORFLOW = "tensorflow"


class BackendUnavailableError(RuntimeError):
    """The requested backend is not installed (or does not import) in this image."""


@dataclass(frozen=True)
class Forecast:
    """A forecast and what produced it."""

    values: list[float]
    backend: Backend
    backend_version: str | None


def _fit_torch(x: FloatArray, y: FloatArray, seed: int, epochs: int) -> Predictor:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    # One thread: deterministic reductions and no oversubscription of a small container.
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], _HIDDEN_UNITS),
        torch.nn.Tanh(),
        torch.nn.Linear(_HIDDEN_UNITS, 1),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=_LEARNING_RATE)
    loss_fn = torch.nn.MSELoss()
    inputs = torch.from_numpy(x.astype(np.float32))
    targets = torch.from_numpy(y.astype(np.float32)).unsqueeze(1)
    model.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    model.eval()

    def predict(batch: FloatArray) -> FloatArray:
        with torch.no_grad():
            out = model(torch.from_numpy(batch.astype(np.float32)))
        result: FloatArray = out.numpy()[:, 0].astype(np.float64)
        return result

    return predict


def _fit_tensorflow(x: FloatArray, y: FloatArray, seed: int, epochs: int) -> Predictor:
    import numpy as np

    # Must be set before the first import: silence TF's C++ start-up chatter, and give Keras a
    # writable home because the image's root filesystem (including ~) is read-only.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "keras"))
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(x.shape[1],)),
            tf.keras.layers.Dense(_HIDDEN_UNITS, activation="tanh"),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=_LEARNING_RATE), loss="mse")
    model.fit(x, y, epochs=epochs, batch_size=len(x), shuffle=False, verbose=0)

    def predict(batch: FloatArray) -> FloatArray:
        out = model(batch.astype(np.float32), training=False)
        return np.asarray(out, dtype=np.float64)[:, 0]

    return predict


FITTERS: dict[Backend, Fitter] = {Backend.TORCH: _fit_torch, Backend.TENSORFLOW: _fit_tensorflow}

# Seeding is process-global in both frameworks, so two concurrent fits on one backend would
# disturb each other's random streams; one fit per backend at a time keeps results reproducible.
_locks = {backend: threading.Lock() for backend in Backend}


def forecast_with(
    fitter: Fitter,
    closes: Sequence[float],
    *,
    horizon: int,
    window: int,
    seed: int,
    epochs: int,
) -> list[float]:
    """Fit ``fitter`` on sliding windows of ``closes`` and roll it forward ``horizon`` steps."""
    import numpy as np

    series = np.asarray(closes, dtype=np.float64)
    mean = float(series.mean())
    std = float(series.std())
    # A flat series has no scale; 1.0 keeps the arithmetic defined and the forecast flat-ish.
    scale = std if std > 0.0 and np.isfinite(std) else 1.0
    z = (series - mean) / scale

    x = np.lib.stride_tricks.sliding_window_view(z, window)[:-1]
    y = z[window:]
    predict = fitter(np.ascontiguousarray(x), y, seed, epochs)

    recent = list(z[-window:])
    out: list[float] = []
    for _ in range(horizon):
        raw = float(predict(np.asarray([recent[-window:]], dtype=np.float64))[0])
        step = float(np.clip(np.nan_to_num(raw), -_CLAMP_SIGMAS, _CLAMP_SIGMAS))
        recent.append(step)
        out.append(mean + step * scale)
    return out


def run_forecast(
    backend: Backend,
    closes: Sequence[float],
    *,
    horizon: int,
    window: int,
    seed: int,
    epochs: int,
    image_variant: str,
) -> Forecast:
    """Forecast with ``backend``; raise :class:`BackendUnavailableError` if it is not installed."""
    installed = library_status(backend.value, backend.value)
    if not installed.available:
        raise BackendUnavailableError(
            f"{backend.value} is not installed in the '{image_variant}' image; "
            f"use the full image for backend={backend.value}"
        )
    with _locks[backend]:
        try:
            values = forecast_with(
                FITTERS[backend], closes, horizon=horizon, window=window, seed=seed, epochs=epochs
            )
        except ImportError as exc:
            raise BackendUnavailableError(
                f"{backend.value} is installed in the '{image_variant}' image but failed to "
                f"import: {exc}"
            ) from exc
    return Forecast(values=values, backend=backend, backend_version=installed.version)

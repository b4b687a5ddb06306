"""Forecast endpoint on the host: backend selection, validation, the 503 path, and the shared
roll-out with a numpy stand-in for the deep-learning fitters (those run in the full image)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from app.ml import forecast as forecast_module
from app.ml.capabilities import LibraryStatus
from app.ml.forecast import Backend, Predictor, forecast_with

from .conftest import ClientFactory
from .helpers import make_settings

URL = "/api/v1/forecast"
RAMP = [float(v) for v in range(10, 50)]


def lstsq_fitter(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], seed: int, epochs: int
) -> Predictor:
    """Exact linear autoregression: a deterministic stand-in for the torch/keras models."""
    design = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)

    def predict(batch: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = np.column_stack([batch, np.ones(len(batch))]) @ coef
        return result

    return predict


@pytest.fixture
def installed_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend both backends are installed and fit with the numpy stand-in."""
    monkeypatch.setattr(
        forecast_module, "library_status", lambda dist, module: LibraryStatus(True, "0.0-test")
    )
    for backend in Backend:
        monkeypatch.setitem(forecast_module.FITTERS, backend, lstsq_fitter)


@pytest.fixture
def no_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend no backend is installed, whatever this interpreter has."""
    monkeypatch.setattr(
        forecast_module, "library_status", lambda dist, module: LibraryStatus(False, None)
    )


def test_rollout_continues_a_linear_trend() -> None:
    values = forecast_with(lstsq_fitter, RAMP, horizon=5, window=4, seed=0, epochs=1)
    assert values == pytest.approx([50.0, 51.0, 52.0, 53.0, 54.0])


def test_rollout_of_a_flat_series_stays_flat() -> None:
    values = forecast_with(lstsq_fitter, [3.0] * 30, horizon=3, window=4, seed=0, epochs=1)
    assert values == pytest.approx([3.0, 3.0, 3.0])


def test_rollout_is_clamped_and_finite() -> None:
    def exploding(x: Any, y: Any, seed: int, epochs: int) -> Predictor:
        return lambda batch: np.full(len(batch), np.inf)

    values = forecast_with(exploding, RAMP, horizon=4, window=4, seed=0, epochs=1)
    series = np.asarray(RAMP)
    assert np.all(np.isfinite(values))
    assert max(values) <= series.mean() + 10 * series.std() + 1e-9


def test_fitter_receives_windows_and_next_values() -> None:
    seen: dict[str, Any] = {}

    def spy(x: Any, y: Any, seed: int, epochs: int) -> Predictor:
        seen.update(x=x, y=y, seed=seed, epochs=epochs)
        return lambda batch: batch[:, -1]

    forecast_with(spy, RAMP, horizon=1, window=3, seed=9, epochs=12)
    assert seen["x"].shape == (len(RAMP) - 3, 3)
    assert seen["y"].shape == (len(RAMP) - 3,)
    # Each target is the value right after its window (in normalised units).
    assert np.allclose(seen["x"][1:, -1], seen["y"][:-1])
    assert (seen["seed"], seen["epochs"]) == (9, 12)


@pytest.mark.usefixtures("no_backends")
@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_missing_backend_is_503_naming_backend_and_variant(
    client_factory: ClientFactory, backend: str
) -> None:
    client = client_factory(make_settings(IMAGE_VARIANT="ci"))
    response = client.post(URL, params={"backend": backend}, json={"closes": RAMP})
    assert response.status_code == 503
    assert response.json()["detail"] == (
        f"{backend} is not installed in the 'ci' image; use the full image for backend={backend}"
    )


def test_backend_that_fails_to_import_is_503(
    client: TestClient, installed_backends: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(x: Any, y: Any, seed: int, epochs: int) -> Predictor:
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setitem(forecast_module.FITTERS, Backend.TORCH, broken)
    response = client.post(URL, params={"backend": "torch"}, json={"closes": RAMP})
    assert response.status_code == 503
    assert "failed to import" in response.json()["detail"]


@pytest.mark.usefixtures("installed_backends")
@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_backend_selection_dispatches_and_reports(client: TestClient, backend: str) -> None:
    response = client.post(
        URL, params={"backend": backend}, json={"closes": RAMP, "horizon": 3, "window": 4}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["backend"] == backend
    assert body["backend_version"] == "0.0-test"
    assert body["forecast"] == pytest.approx([50.0, 51.0, 52.0])
    assert (body["horizon"], body["window"], body["seed"], body["epochs"]) == (3, 4, 0, 200)
    assert client.get("/api/v1/history").json()["items"][0]["summary"]["backend"] == backend


@pytest.mark.usefixtures("installed_backends")
def test_default_backend_is_torch(client: TestClient) -> None:
    response = client.post(URL, json={"closes": RAMP})
    assert response.status_code == 200
    assert response.json()["backend"] == "torch"


@pytest.mark.parametrize(
    ("params", "payload", "loc"),
    [
        ({"backend": "jax"}, {"closes": RAMP}, ["query", "backend"]),
        ({"backend": "TORCH"}, {"closes": RAMP}, ["query", "backend"]),
        ({}, {"closes": RAMP[:10]}, ["body", "closes"]),
        ({}, {"closes": RAMP, "window": 40}, ["body", "closes"]),
        ({}, {"closes": RAMP, "window": 1}, ["body", "window"]),
        ({}, {"closes": RAMP, "horizon": 0}, ["body", "horizon"]),
        ({}, {"closes": RAMP, "horizon": 1000}, ["body", "horizon"]),
        ({}, {"closes": [*RAMP[:-1], -1.0]}, ["body", "closes", len(RAMP) - 1]),
        ({}, {}, ["body", "closes"]),
    ],
)
def test_invalid_forecast_requests_are_422(
    client: TestClient, params: dict[str, str], payload: dict[str, Any], loc: list[Any]
) -> None:
    response = client.post(URL, params=params, json=payload)
    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]

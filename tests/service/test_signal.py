from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.ml.indicators import MIN_CANDLES
from app.ml.signal_model import FEATURE_NAMES, train_signal_model
from app.schemas import Candle
from app.services.market import indicator_frame, signal_response

from .conftest import ClientFactory
from .helpers import make_candles, make_settings

URL = "/api/v1/signal"


def test_signal_names_direction_probability_and_model(client: TestClient) -> None:
    candles = make_candles(80, seed=3)
    response = client.post(URL, json={"candles": candles})
    assert response.status_code == 200
    body = response.json()
    assert 0.0 <= body["probability_up"] <= 1.0
    assert body["direction"] == ("up" if body["probability_up"] >= 0.5 else "down")
    assert body["confidence"] == pytest.approx(
        max(body["probability_up"], 1 - body["probability_up"])
    )
    assert body["as_of"] == candles[-1]["timestamp"]
    assert body["model_version"].startswith("logreg-synthetic-v1+seed42+sklearn")
    assert list(body["features"]) == list(FEATURE_NAMES)


def test_signal_is_deterministic_across_apps(client_factory: ClientFactory) -> None:
    payload = {"candles": make_candles(MIN_CANDLES, seed=11)}
    first = client_factory().post(URL, json=payload).json()
    second = client_factory().post(URL, json=payload).json()
    assert first == second


def test_retraining_with_the_same_seed_gives_the_same_model() -> None:
    candles = [Candle.model_validate(c) for c in make_candles(60, seed=5)]
    frame = indicator_frame(candles)
    one = signal_response(train_signal_model(7), candles, frame)
    two = signal_response(train_signal_model(7), candles, frame)
    assert one == two
    assert "seed7" in one.model_version


def test_seed_setting_selects_the_model(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(SIGNAL_SEED=7))
    body = client.post(URL, json={"candles": make_candles(MIN_CANDLES)}).json()
    assert "+seed7+" in body["model_version"]


def test_signal_is_recorded_in_history(client: TestClient) -> None:
    client.post(URL, json={"candles": make_candles(MIN_CANDLES)})
    items = client.get("/api/v1/history").json()["items"]
    assert items[0]["endpoint"] == "signal"
    assert items[0]["summary"]["candles"] == MIN_CANDLES
    assert items[0]["summary"]["direction"] in ("up", "down")

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.ml.indicators import ATR_WINDOW, INDICATOR_COLUMNS, MIN_CANDLES, RSI_WINDOW

from .helpers import all_finite_or_null, make_candles

URL = "/api/v1/indicators"


def test_series_align_with_candles(client: TestClient) -> None:
    candles = make_candles(120)
    response = client.post(URL, json={"candles": candles})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 120
    assert body["timestamps"] == [c["timestamp"] for c in candles]
    assert set(body["series"]) == set(INDICATOR_COLUMNS)
    assert all(len(values) == 120 for values in body["series"].values())
    assert all_finite_or_null(body)

    series = body["series"]
    # Warm-up: no value until the window has filled.
    assert series["rsi"][: RSI_WINDOW - 1] == [None] * (RSI_WINDOW - 1)
    assert series["atr"][: ATR_WINDOW - 1] == [None] * (ATR_WINDOW - 1)
    assert all(0.0 <= v <= 100.0 for v in series["rsi"] if v is not None)
    for upper, middle, lower in zip(
        series["bb_upper"], series["bb_middle"], series["bb_lower"], strict=True
    ):
        if middle is not None:
            assert lower <= middle <= upper
    hist = zip(series["macd"], series["macd_signal"], series["macd_hist"], strict=True)
    for macd, signal, diff in hist:
        if diff is not None:
            assert diff == pytest.approx(macd - signal)


def test_minimum_candles_give_every_latest_value(client: TestClient) -> None:
    response = client.post(URL, json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 200
    latest = response.json()["latest"]
    assert all(latest[name] is not None for name in INDICATOR_COLUMNS), latest


def test_flat_prices_give_nulls_not_errors(client: TestClient) -> None:
    candles = [
        {"timestamp": i, "open": 5.0, "high": 5.0, "low": 5.0, "close": 5.0, "volume": 0.0}
        for i in range(MIN_CANDLES)
    ]
    response = client.post(URL, json={"candles": candles})
    assert response.status_code == 200
    assert all_finite_or_null(response.json())


def _with(index: int, **changes: Any) -> dict[str, Any]:
    candles = make_candles(MIN_CANDLES + 5)
    candles[index] = {**candles[index], **changes}
    return {"candles": candles}


def _without(index: int, field: str) -> dict[str, Any]:
    candles = make_candles(MIN_CANDLES + 5)
    del candles[index][field]
    return {"candles": candles}


def _swapped() -> dict[str, Any]:
    candles = make_candles(MIN_CANDLES + 5)
    candles[3], candles[4] = candles[4], candles[3]
    return {"candles": candles}


def _duplicate_timestamp() -> dict[str, Any]:
    candles = make_candles(MIN_CANDLES + 5)
    candles[7]["timestamp"] = candles[6]["timestamp"]
    return {"candles": candles}


INVALID = {
    "too few candles": ({"candles": make_candles(MIN_CANDLES - 1)}, ["body", "candles"]),
    "no candles key": ({"bars": []}, ["body", "candles"]),
    "candles not a list": ({"candles": "many"}, ["body", "candles"]),
    "out of order": (_swapped(), ["body", "candles"]),
    "duplicate timestamp": (_duplicate_timestamp(), ["body", "candles"]),
    "high below close": (_with(5, high=1.0), ["body", "candles", 5, "high"]),
    "low above open": (_with(5, low=1e6), ["body", "candles", 5, "low"]),
    "negative volume": (_with(2, volume=-1.0), ["body", "candles", 2, "volume"]),
    "zero price": (_with(2, open=0.0), ["body", "candles", 2, "open"]),
    "absurd price": (_with(2, close=1e300, high=1e300), ["body", "candles", 2, "close"]),
    "string price": (_with(2, close="cheap"), ["body", "candles", 2, "close"]),
    "null volume": (_with(2, volume=None), ["body", "candles", 2, "volume"]),
    "negative timestamp": (_with(0, timestamp=-5), ["body", "candles", 0, "timestamp"]),
    "missing close": (_without(9, "close"), ["body", "candles", 9, "close"]),
}


@pytest.mark.parametrize(("payload", "loc"), INVALID.values(), ids=INVALID.keys())
def test_invalid_candles_are_422_naming_the_field(
    client: TestClient, payload: dict[str, Any], loc: list[Any]
) -> None:
    response = client.post(URL, json=payload)
    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_422(client: TestClient, value: float) -> None:
    candles = make_candles(MIN_CANDLES)
    candles[0]["close"] = value
    # json.dumps writes NaN/Infinity literals, which the server's JSON parser accepts, so they
    # reach validation (httpx's own encoder refuses them, hence content=).
    body = json.dumps({"candles": candles})
    response = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "candles", 0, "close"]
    assert error["type"] == "finite_number"
    assert error["input"] == str(value)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"{not json", "application/json"), (b"", "application/json")],
)
def test_unparseable_bodies_are_4xx(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post(URL, content=content, headers={"content-type": content_type})
    assert response.status_code in (400, 422)

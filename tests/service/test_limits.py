"""Rate limit (429), request-size limit (413) and candle-count limit (413)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.ml.indicators import MIN_CANDLES

from .conftest import ClientFactory
from .helpers import make_candles, make_settings

CANDLE_ENDPOINTS = ["/api/v1/indicators", "/api/v1/signal", "/api/v1/analysis"]


def test_rate_limit_answers_429(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(RATE_LIMIT="2/minute"))
    statuses = [client.get("/api/v1/capabilities").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "Rate limit exceeded" in client.get("/api/v1/capabilities").json()["detail"]


def test_probes_are_never_rate_limited(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(RATE_LIMIT="1/minute"))
    assert all(client.get("/health").status_code == 200 for _ in range(5))
    assert all(client.get("/ready").status_code == 200 for _ in range(3))


def test_rate_limit_can_be_disabled(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(RATE_LIMIT="1/minute", RATE_LIMIT_ENABLED=False))
    assert all(client.get("/api/v1/capabilities").status_code == 200 for _ in range(5))


@pytest.mark.parametrize("url", CANDLE_ENDPOINTS)
def test_too_many_candles_is_413(client_factory: ClientFactory, url: str) -> None:
    client = client_factory(make_settings(MAX_CANDLES=MIN_CANDLES + 1))
    response = client.post(url, json={"candles": make_candles(MIN_CANDLES + 2)})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"candles: {MIN_CANDLES + 2} items, at most {MIN_CANDLES + 1} allowed"
    )
    assert client.post(url, json={"candles": make_candles(MIN_CANDLES + 1)}).status_code != 413


def test_too_many_candles_wins_over_invalid_candles(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(MAX_CANDLES=MIN_CANDLES))
    response = client.post("/api/v1/indicators", json={"candles": [{}] * 10_000})
    assert response.status_code == 413


def test_too_many_closes_is_413(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(MAX_CANDLES=MIN_CANDLES))
    response = client.post("/api/v1/forecast", json={"closes": [1.0] * (MIN_CANDLES + 1)})
    assert response.status_code == 413


def test_body_over_the_size_limit_is_413(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(MAX_BODY_BYTES=1000))
    response = client.post(
        "/api/v1/indicators", content=b" " * 1001, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "request body is larger than 1000 bytes"


def test_chunked_body_over_the_size_limit_is_413(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(MAX_BODY_BYTES=1000))

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    response = client.post(
        "/api/v1/indicators", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_body_within_the_size_limit_passes(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(MAX_BODY_BYTES=100_000))
    response = client.post("/api/v1/indicators", json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 200

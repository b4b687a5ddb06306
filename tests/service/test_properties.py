"""Property tests: malformed, non-finite, huge and out-of-order candles get 4xx, never 5xx.

TestClient re-raises server exceptions, so a crash fails these tests even before the status
assertion; the assertions pin down which 4xx each kind of damage gets.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from app.ml.indicators import MIN_CANDLES

from .helpers import all_finite_or_null, make_settings

MAX_CANDLES = MIN_CANDLES + 30
ENDPOINTS = ["/api/v1/indicators", "/api/v1/signal"]
FIELDS = ["timestamp", "open", "high", "low", "close", "volume"]

# Bounded so the whole file stays within a few seconds per test on two cores.
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(make_settings(MAX_CANDLES=MAX_CANDLES, RATE_LIMIT_ENABLED=False))
    with TestClient(app) as test_client:
        yield test_client


def post(client: TestClient, url: str, payload: Any) -> int:
    # json.dumps (unlike httpx) writes NaN/Infinity, which the server must then reject.
    body = json.dumps(payload)
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert all_finite_or_null(response.json())
    return response.status_code


prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def valid_candles(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(MIN_CANDLES, MAX_CANDLES))
    timestamp = draw(st.integers(0, 2**40))
    candles = []
    for _ in range(n):
        timestamp += draw(st.integers(1, 10**6))
        open_, close = draw(prices), draw(prices)
        up, down = draw(st.floats(0, 1)), draw(st.floats(0, 0.99))
        candles.append(
            {
                "timestamp": timestamp,
                "open": open_,
                "high": min(max(open_, close) * (1 + up), 1e12),
                "low": min(open_, close) * (1 - down),
                "close": close,
                "volume": draw(st.floats(0, 1e15)),
            }
        )
    return candles


non_numbers = st.one_of(
    st.none(),
    # Letters only: digits would be coerced to numbers ("nan"/"inf" parse but are non-finite).
    st.text(alphabet=string.ascii_letters, max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
# Out of range for every field: above 1e19 exceeds the price, volume and int64 timestamp bounds,
# and nothing may be negative.
out_of_range = st.one_of(
    st.floats(min_value=1e19, allow_nan=False, allow_infinity=False),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    st.integers(max_value=-1),
)


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles())
def test_valid_candles_always_succeed(client: TestClient, url: str, candles: Any) -> None:
    assert post(client, url, {"candles": candles}) == 200


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles(), data=st.data())
def test_broken_values_are_422(client: TestClient, url: str, candles: Any, data: Any) -> None:
    index = data.draw(st.integers(0, len(candles) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    candles[index][field] = data.draw(st.one_of(non_numbers, non_finite, out_of_range))
    assert post(client, url, {"candles": candles}) == 422


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles(), data=st.data())
def test_missing_fields_are_422(client: TestClient, url: str, candles: Any, data: Any) -> None:
    index = data.draw(st.integers(0, len(candles) - 1))
    del candles[index][data.draw(st.sampled_from(FIELDS))]
    assert post(client, url, {"candles": candles}) == 422


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles(), data=st.data())
def test_out_of_order_timestamps_are_422(
    client: TestClient, url: str, candles: Any, data: Any
) -> None:
    i = data.draw(st.integers(1, len(candles) - 1))
    j = data.draw(st.integers(0, i - 1))
    if data.draw(st.booleans()):
        candles[i], candles[j] = candles[j], candles[i]  # swapped order
    else:
        candles[i]["timestamp"] = candles[j]["timestamp"]  # repeated or earlier timestamp
    assert post(client, url, {"candles": candles}) == 422


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles(), data=st.data())
def test_inconsistent_high_low_is_422(
    client: TestClient, url: str, candles: Any, data: Any
) -> None:
    candle = candles[data.draw(st.integers(0, len(candles) - 1))]
    body_low, body_high = sorted((candle["open"], candle["close"]))
    if data.draw(st.booleans()):
        candle["high"] = body_high * data.draw(st.floats(0.01, 0.999))
    else:
        candle["low"] = body_low * data.draw(st.floats(1.001, 100))
    assert post(client, url, {"candles": candles}) == 422


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles(), size=st.integers(0, MIN_CANDLES - 1))
def test_too_few_candles_are_422(client: TestClient, url: str, candles: Any, size: int) -> None:
    assert post(client, url, {"candles": candles[:size]}) == 422


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(
    extra=st.integers(1, 3 * MAX_CANDLES),
    item=st.one_of(st.just({}), non_numbers, non_finite),
)
def test_huge_candle_lists_are_413(client: TestClient, url: str, extra: int, item: Any) -> None:
    assert post(client, url, {"candles": [item] * (MAX_CANDLES + extra)}) == 413


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(payload=st.one_of(json_values, st.fixed_dictionaries({"candles": json_values})))
def test_arbitrary_json_is_rejected_with_4xx(client: TestClient, url: str, payload: Any) -> None:
    assert post(client, url, payload) in (413, 422)

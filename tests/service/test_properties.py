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


# Lone surrogates (a JSON "\\ud800" decodes to one) and control characters: each once crashed
# the error response or was forwarded to OpenAI.
awkward_text = st.one_of(
    st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\x00", "\x1b[31m", "\x7f", "\u0085"]),
    st.text(alphabet=st.characters(categories=["Cs", "Cc"]), min_size=1, max_size=4),
)
non_numbers = st.one_of(
    st.none(),
    # Letters only: digits would be coerced to numbers ("nan"/"inf" parse but are non-finite).
    st.text(alphabet=string.ascii_letters, max_size=5),
    awkward_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
# Extremes: the largest and smallest doubles and negative zero are valid JSON numbers; prices must
# be > 0 and volumes >= 0 (-0.0 is a valid volume), so each is rejected somewhere.
extreme_floats = st.sampled_from([1e308, -1e308, 5e-324, -5e-324, -0.0, 0.0])
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
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        extreme_floats,
        st.text(max_size=8),
        awkward_text,
    ),
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


def post_any(client: TestClient, url: str, payload: Any) -> int:
    """Like ``post`` but for any endpoint: json.dumps keeps lone surrogates as \\ud800 escapes."""
    body = json.dumps(payload)
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    if response.status_code == 503 and "is not installed" in response.text:
        return 422  # valid closes on an image without the backend: an answer about the image
    assert response.status_code < 500, response.text
    response.json()
    return response.status_code


ALL_ENDPOINTS = [*ENDPOINTS, "/api/v1/forecast", "/api/v1/analysis"]
any_value = st.one_of(json_values, non_numbers, non_finite, extreme_floats, out_of_range)


@pytest.mark.parametrize("url", ALL_ENDPOINTS)
@PROPERTY
@given(
    item=st.one_of(st.just({}), any_value, st.fixed_dictionaries({"open": any_value})),
    count=st.integers(1, MAX_CANDLES),
    question=st.one_of(st.none(), awkward_text, st.text(max_size=20)),
)
def test_no_input_ever_yields_a_5xx(
    client: TestClient, url: str, item: Any, count: int, question: Any
) -> None:
    # Thousands of identical invalid items (up to the limit), in every list field at once.
    payload = {"candles": [item] * count, "closes": [item] * count, "question": question}
    assert post_any(client, url, payload) in (413, 422)


@pytest.mark.parametrize("url", ENDPOINTS)
@PROPERTY
@given(candles=valid_candles(), data=st.data())
def test_extreme_floats_are_422(client: TestClient, url: str, candles: Any, data: Any) -> None:
    candle = candles[data.draw(st.integers(0, len(candles) - 1))]
    value = data.draw(extreme_floats)
    field = data.draw(st.sampled_from(FIELDS[1:]))
    in_bounds = 0 <= value <= 1e18 if field == "volume" else 0 < value <= 1e12
    candle[field] = value
    status = post(client, url, {"candles": candles})
    # An in-bounds extreme (5e-324, -0.0 volume) may still break high/low; never a 5xx, and
    # finite output (checked by post) when it is accepted.
    assert status == 422 if not in_bounds else status in (200, 422)

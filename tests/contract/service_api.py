"""The service under test, as the contract meets it: its endpoints, a valid request for each,
its limits, the bodies it must refuse, and where it documents a 503.

The only file of the contract that knows this service's API: adopting the suite for another
service means replacing this module and `test_service.py` (README, "Using this for your own
service"). The campaign that sends these requests is `abuse.py`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

from abuse import Call, Hostile

from service_images.variants import Variant

HOSTILE_ROUNDS = 2  # the hostile table, sent this many times
VALID_ROUNDS = 4  # one small valid request per endpoint, this many times
HEAVY_ROUNDS = 10  # a MAX_CANDLES series to each candle endpoint, this many times

CANDLE_PATHS = ("/api/v1/indicators", "/api/v1/signal", "/api/v1/analysis")
FORECAST = "/api/v1/forecast"
BACKENDS = ("torch", "tensorflow")  # what the forecast endpoint offers
OVERSIZED_BYTES = 3 * 1024 * 1024  # over the service's 2 MiB MAX_BODY_BYTES
MAX_CANDLES = 5000  # the most the service accepts (its MAX_CANDLES)


def candles(count: int = 60, *, reverse: bool = False) -> list[dict[str, float]]:
    """A deterministic, valid OHLCV series (timestamps reversed when `reverse`)."""
    series = []
    for i in range(count):
        close = 100 + 10 * math.sin(i / 5) + i * 0.1
        open_ = close - math.cos(i / 3)
        high, low = max(open_, close) + 0.5, min(open_, close) - 0.5
        stamp = 1_700_000_000 + 60 * (count - i if reverse else i)
        candle = {"timestamp": stamp, "open": open_, "close": close, "high": high, "low": low}
        series.append({**candle, "volume": 1000 + 10 * i})
    return series


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _with_nan(field: str) -> bytes:
    if field == "closes":
        return _json({"closes": [math.nan, math.inf, -math.inf] * 10})  # json writes NaN/Infinity
    series = candles()
    series[10]["close"], series[20]["high"], series[30]["low"] = math.nan, math.inf, -math.inf
    return _json({"candles": series})


def _oversized(f: str) -> bytes:
    return _json({f: "a" * OVERSIZED_BYTES})


def _nested(f: str) -> bytes:
    return b'{"%s": %s%s}' % (f.encode(), b"[" * 50_000, b"]" * 50_000)


BAD_JSON = frozenset({400, 422})
HOSTILE = (
    # 30,000 validation errors each: the answer shows a few and counts the rest.
    Hostile(
        "5000 empty objects", lambda f: _json({f: [{}] * 5000}), frozenset({413, 422}), copies=3
    ),
    # The review's exact body, sent to every endpoint: a JSON escape that decodes to no character.
    # Under MAX_BODY_BYTES, but validated in full it took some 2 GiB: refused at item 5001.
    Hostile(
        "400,000 empty objects",
        lambda f: _json({f: [{}] * 400_000}),
        frozenset({413}),
        reset_ok=True,
        copies=2,
    ),
    Hostile("lone surrogate", lambda f: b'{"candles": "\\ud800"}', frozenset({422})),
    Hostile("surrogate in list", lambda f: b'{"%s": ["\\ud800"]}' % f.encode(), frozenset({422})),
    Hostile("surrogate key", lambda f: b'{"\\udfff": 1, "%s": []}' % f.encode(), frozenset({422})),
    Hostile("oversized 3 MiB", _oversized, frozenset({413}), reset_ok=True),
    Hostile("oversized chunked", _oversized, frozenset({413}), reset_ok=True, chunked=True),
    Hostile(
        "6000 valid candles", lambda f: _json({f: candles(MAX_CANDLES + 1000)}), frozenset({413})
    ),
    Hostile("nested 50000 deep", _nested, BAD_JSON),
    Hostile("NaN/Infinity", _with_nan, frozenset({422})),
    Hostile(
        "non-monotonic timestamps",
        lambda f: _json({f: candles(60, reverse=True)}),
        frozenset({422}),
        fields=("candles",),
    ),
    Hostile("malformed JSON", lambda f: b'{"%s": [{"open": 1,' % f.encode(), BAD_JSON),
    Hostile("invalid UTF-8", lambda f: b'{"%s": "\xff\xfe"}' % f.encode(), BAD_JSON),
    Hostile("5000-digit integer", lambda f: b'{"%s": [1%s]}' % (f.encode(), b"0" * 5000), BAD_JSON),
    Hostile(
        "text/plain body",
        lambda f: _json({f: candles()}),
        frozenset({415}),
        content_type="text/plain",
    ),
    Hostile("UTF-16 JSON", lambda f: json.dumps({f: candles()}).encode("utf-16"), frozenset({400})),
)


def hostile_calls() -> list[Call]:
    paths = [(path, "candles", None) for path in CANDLE_PATHS] + [(FORECAST, "closes", "torch")]
    return [
        Call("POST", path, case.kind, case.body(name), case.content_type, backend, case)
        for case in HOSTILE
        for path, name, backend in paths
        if name in case.fields
        for _ in range(case.copies)
    ]


def valid_calls() -> list[Call]:
    """One small valid request per endpoint (and per forecast backend)."""
    series = _json({"candles": candles()})
    closes = _json({"closes": [c["close"] for c in candles(48)], "horizon": 3})
    calls = [Call("POST", path, "valid", series) for path in CANDLE_PATHS]
    calls += [Call("POST", FORECAST, "valid", closes, backend=b) for b in BACKENDS]
    calls += [Call("GET", path, "valid") for path in ("/api/v1/history", "/api/v1/capabilities")]
    return [*calls, Call("GET", "/ready", "valid")]


def heavy_calls() -> list[Call]:
    """Valid requests with the longest series the service accepts, one per candle endpoint."""
    most = _json({"candles": candles(MAX_CANDLES)})
    return [Call("POST", path, f"valid {MAX_CANDLES} candles", most) for path in CANDLE_PATHS]


# A partial request per kind: the server must close the connection within its timeouts.
SLOW_REQUESTS: dict[str, bytes] = {
    "idle (no bytes)": b"",
    "unfinished headers": b"POST /api/v1/indicators HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ",
    "short body": b"POST /api/v1/indicators HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b'{"candles": [',
}


def burst() -> list[Call]:
    """The hostile cases and the valid requests, interleaved in a fixed order.

    The valid mix leaves out model fits on a real backend (the full image's torch/TensorFlow
    forecasts): each takes seconds of both cores, so on a 2-core machine one queued behind the
    burst outlasts any fair timeout and says nothing about the abuse. The warm-up serves them, and
    the forecast endpoint still gets every hostile input.
    """
    fits = [call for call in valid_calls() if call.path == FORECAST and call.backend]
    valid = [call for call in valid_calls() if call not in fits]
    calls = hostile_calls() * HOSTILE_ROUNDS + valid * VALID_ROUNDS
    calls += heavy_calls() * HEAVY_ROUNDS
    random.Random(0).shuffle(calls)
    return calls


# Where the service documents a 503, and when it applies here; any other 5xx is a defect.
DOCUMENTED_503: dict[str, Callable[[Call, Variant], bool]] = {
    # The backend is not installed in this image (the CI image has neither).
    FORECAST: lambda call, variant: call.backend not in variant.backends,
    # Commentary needs OPENAI_API_KEY, which this container does not get.
    "/api/v1/analysis": lambda call, variant: True,
    # The history store is unreachable (only with MongoDB; this container keeps it in memory).
    "/api/v1/history": lambda call, variant: True,
}


def warm_up_calls() -> list[Call]:
    """One small valid request per endpoint, then one of the largest size each candle endpoint
    accepts: lazy imports, the model and the working set of the largest request count as
    start-up, so the memory budget measures what a burst leaves behind, not first use."""
    return [*valid_calls(), *heavy_calls()]

"""Rate limit (429), request-size limit (413) and candle-count limit (413)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
        f"candles: more than {MIN_CANDLES + 1} items, at most {MIN_CANDLES + 1} allowed"
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


# A body under MAX_BODY_BYTES that holds hundreds of thousands of items: each one invalid, so a
# validation that went through them all made millions of errors (some 2 GiB). The worker's job,
# run in a process of its own: its peak resident memory is this body's.
HUGE_LIST_SCRIPT = """
import json, resource, sys
from app import worker, schemas

model, field = getattr(schemas, sys.argv[1]), sys.argv[2]
limits = worker.Limits(max_items=5000, errors_shown=20)
worker.handle(worker.indicators, model, json.dumps({field: [{}] * 100}).encode(), limits)
body = json.dumps({field: [{}] * 400_000}).encode()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
refused = worker.handle(worker.indicators, model, body, limits)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"status": refused.status_code, "detail": json.loads(refused.content)["detail"],
                  "bytes": len(body), "growth_mib": (after - before) / 1024}))
"""


@pytest.mark.parametrize(
    ("model", "field"),
    [("CandlesRequest", "candles"), ("AnalysisRequest", "candles"), ("ForecastRequest", "closes")],
)
def test_a_huge_list_is_refused_at_its_first_item_past_the_limit(model: str, field: str) -> None:
    """400,000 empty objects in 1.6 MB: 413 at item 5001, where validating them all took over
    1.1 GiB. What is left is pydantic's parse of the JSON (some 60 MiB, bounded by
    MAX_BODY_BYTES)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    output = subprocess.run(
        [sys.executable, "-c", HUGE_LIST_SCRIPT, model, field],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    result = json.loads(output.splitlines()[-1])
    assert result["bytes"] < 2 * 1024 * 1024
    assert result["growth_mib"] < 128, f"peak RSS grew {result['growth_mib']:.0f} MiB"
    assert result["status"] == 413, result
    assert result["detail"] == f"{field}: more than 5000 items, at most 5000 allowed"


@pytest.mark.parametrize(
    ("url", "field"), [*((u, "candles") for u in CANDLE_ENDPOINTS), ("/api/v1/forecast", "closes")]
)
def test_a_huge_list_is_413_on_every_endpoint(
    client_factory: ClientFactory, url: str, field: str
) -> None:
    client = client_factory(make_settings(OPENAI_API_KEY="sk-test"))
    response = client.post(url, json={field: [{}] * 100_000})
    assert response.status_code == 413
    assert response.json()["detail"] == f"{field}: more than 5000 items, at most 5000 allowed"

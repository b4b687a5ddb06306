"""/api/v1/analysis with the real openai client over a fake httpx transport (never the network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.ml.indicators import MIN_CANDLES

from .conftest import ClientFactory
from .helpers import make_candles, make_settings

URL = "/api/v1/analysis"
Handler = Callable[[httpx.Request], httpx.Response]


def completion(content: str | None, model: str = "gpt-test") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def client_with(client_factory: ClientFactory, handler: Handler) -> TestClient:
    fake = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    settings = make_settings(OPENAI_API_KEY="sk-test", OPENAI_MODEL="gpt-test")
    return client_factory(settings, openai_http_client=fake)


def test_without_api_key_is_503(client: TestClient) -> None:
    response = client.post(URL, json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 503
    assert "OPENAI_API_KEY" in response.json()["detail"]


def test_commentary_from_the_model(client_factory: ClientFactory) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=completion("  Momentum is fading.  "))

    client = client_with(client_factory, handler)
    candles = make_candles(60)
    response = client.post(URL, json={"candles": candles, "question": "Buy the dip?"})

    assert response.status_code == 200
    body = response.json()
    assert body["commentary"] == "Momentum is fading."
    assert body["model"] == "gpt-test"
    assert body["signal"]["as_of"] == candles[-1]["timestamp"]
    assert body["latest"]["rsi"] is not None

    [sent] = requests
    assert sent.url.path.endswith("/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-test"
    payload = json.loads(sent.content)
    assert payload["model"] == "gpt-test"
    user_message = payload["messages"][-1]["content"]
    assert "Buy the dip?" in user_message
    assert str(body["signal"]["probability_up"]) in user_message

    history = client.get("/api/v1/history").json()["items"]
    assert history[0]["endpoint"] == "analysis"
    assert history[0]["summary"]["model"] == "gpt-test"


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        (httpx.Response(401, json={"error": {"message": "bad key"}}), "HTTP 401"),
        (httpx.Response(200, json=completion(None)), "no commentary"),
    ],
)
def test_upstream_failures_are_502(
    client_factory: ClientFactory, upstream: httpx.Response, message: str
) -> None:
    client = client_with(client_factory, lambda request: upstream)
    response = client.post(URL, json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 502
    assert message in response.json()["detail"]


def test_question_length_is_validated(client_factory: ClientFactory) -> None:
    client = client_with(client_factory, lambda request: httpx.Response(200, json=completion("x")))
    payload = {"candles": make_candles(MIN_CANDLES), "question": "?" * 501}
    response = client.post(URL, json=payload)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "question"]


def test_analyses_waiting_for_the_model_leave_room_for_other_requests() -> None:
    """An analysis waits for the model's answer with its worker's work done (CPU_WORKERS=2):
    two waiting on a slow model answer do not hold up an indicators request."""
    answer = anyio.Event()
    asked: list[httpx.Request] = []

    async def slow_model(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        await answer.wait()
        return httpx.Response(200, json=completion("Momentum is fading."))

    settings = make_settings(OPENAI_API_KEY="sk-test", OPENAI_MODEL="gpt-test", CPU_WORKERS=2)
    openai = httpx.AsyncClient(transport=httpx.MockTransport(slow_model))
    app = create_app(settings, openai_http_client=openai)
    body = {"candles": make_candles(MIN_CANDLES)}
    codes: list[int] = []

    async def analysis(client: httpx.AsyncClient) -> None:
        codes.append((await client.post(URL, json=body)).status_code)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60)
        async with client, anyio.create_task_group() as analyses:
            analyses.start_soon(analysis, client)
            analyses.start_soon(analysis, client)
            with anyio.fail_after(60):
                while len(asked) < 2:
                    await anyio.sleep(0.01)
                indicators = await client.post("/api/v1/indicators", json=body)
            assert indicators.status_code == 200, indicators.text
            answer.set()

    anyio.run(main)
    assert codes == [200, 200]

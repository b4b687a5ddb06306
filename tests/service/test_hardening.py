"""Hostile input the service must survive: bounded 422s, undecodable strings, proxies and
Retry-After, slow bodies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from app.core.middleware import BodySizeLimitMiddleware
from app.main import create_app
from app.ml.indicators import MIN_CANDLES

from .conftest import ClientFactory
from .helpers import make_candles, make_settings

CANDLE_URLS = ["/api/v1/indicators", "/api/v1/signal", "/api/v1/analysis"]
ALL_URLS = [*CANDLE_URLS, "/api/v1/forecast"]


def post_raw(client: TestClient, url: str, text: str) -> Any:
    return client.post(url, content=text.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("url", CANDLE_URLS)
def test_thousands_of_broken_candles_give_a_small_counted_422(
    client_factory: ClientFactory, url: str
) -> None:
    client = client_factory(make_settings(VALIDATION_ERRORS_SHOWN=20))
    response = client.post(url, json={"candles": [{}] * 5000})
    assert response.status_code == 422
    assert len(response.content) < 10_000  # a few errors shown, the rest counted
    body = response.json()
    assert body["error_count"] == 30_000
    assert len(body["detail"]) == 20
    assert body["detail"][0]["loc"] == ["body", "candles", 0, "timestamp"]
    assert body["errors_by_location"]["body.candles.*.open"] == 5000
    assert sum(body["errors_by_location"].values()) == 30_000


def test_a_few_errors_are_all_shown(client: TestClient) -> None:
    candles = make_candles(MIN_CANDLES)
    candles[3]["open"] = -1
    body = client.post("/api/v1/indicators", json={"candles": candles}).json()
    assert body["error_count"] == len(body["detail"]) >= 1
    assert body["detail"][0]["loc"][:4] == ["body", "candles", 3, "open"]
    assert body["detail"][0]["input"] == -1


@pytest.mark.parametrize("url", ALL_URLS)
def test_json_nested_past_the_recursion_limit_is_4xx(client: TestClient, url: str) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    response = post_raw(client, url, f'{{"candles": {deep}, "closes": {deep}}}')
    assert response.status_code in (400, 422), response.text


BAD_STRINGS = [r'"\ud800"', r'"\udfff x"', r'"\u0000"', r'"\u001b[31m"', r'"a\ud83d"']


@pytest.mark.parametrize("url", ALL_URLS)
@pytest.mark.parametrize("text", BAD_STRINGS)
def test_lone_surrogates_and_control_characters_are_4xx(
    client: TestClient, url: str, text: str
) -> None:
    for payload in (
        f'{{"candles": {text}, "closes": {text}}}',
        f'{{"candles": [{{"timestamp": {text}}}], "closes": [{text}]}}',
    ):
        response = post_raw(client, url, payload)
        assert response.status_code == 422, (payload, response.text)
        assert response.json()["error_count"] >= 1  # a decodable body, whatever the input held


def test_question_with_a_lone_surrogate_is_422(client: TestClient) -> None:
    candles = json.dumps(make_candles(MIN_CANDLES))
    response = post_raw(
        client, "/api/v1/analysis", f'{{"candles": {candles}, "question": "\\ud800"}}'
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "question"]


def test_429_carries_retry_after(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(RATE_LIMIT="1/minute"))
    assert client.get("/api/v1/capabilities").status_code == 200
    response = client.get("/api/v1/capabilities")
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    client_factory: ClientFactory,
) -> None:
    # TestClient's peer is "testclient", which no TRUSTED_PROXIES entry matches.
    client = client_factory(make_settings(RATE_LIMIT="1/minute", TRUSTED_PROXIES="10.0.0.0/8"))
    first = client.get("/api/v1/capabilities", headers={"x-forwarded-for": "198.51.100.1"})
    second = client.get("/api/v1/capabilities", headers={"x-forwarded-for": "198.51.100.2"})
    assert (first.status_code, second.status_code) == (200, 429)


def test_forwarded_for_from_a_trusted_proxy_keys_each_client() -> None:
    settings = make_settings(RATE_LIMIT="1/minute", TRUSTED_PROXIES="10.0.0.0/8,192.0.2.1")
    with TestClient(_FromPeer(create_app(settings), "10.1.2.3")) as client:

        def get(forwarded: str) -> int:
            headers = {"x-forwarded-for": forwarded}
            return client.get("/api/v1/capabilities", headers=headers).status_code

        _assert_keyed_per_client(get)


def _assert_keyed_per_client(get: Callable[[str], int]) -> None:
    assert get("198.51.100.1") == 200
    assert get("198.51.100.2") == 200  # another client: its own budget
    assert get("198.51.100.1") == 429
    # A forged left-most hop does not help: the nearest untrusted hop is the client.
    assert get("203.0.113.9, 198.51.100.2, 192.0.2.1") == 429


class _FromPeer:
    """Rewrites the ASGI peer address, as a request arriving from ``host`` would carry."""

    def __init__(self, app: Any, host: str) -> None:
        self.app, self.host = app, host

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.host, 40000)}
        await self.app(scope, receive, send)


def test_a_body_that_never_finishes_gets_408() -> None:
    sent: list[Message] = []
    reached_app = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal reached_app
        reached_app = True

    async def receive() -> Message:
        if not sent:
            sent.append({"type": "marker"})
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()  # the client stops sending
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodySizeLimitMiddleware(app, max_bytes=1000, read_timeout_s=0.05)
    scope = {"type": "http", "headers": [], "method": "POST", "path": "/"}
    asyncio.run(middleware(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert not reached_app

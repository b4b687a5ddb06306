"""Hostile input the service must survive: bounded 422s, undecodable strings, proxies and
Retry-After, slow bodies."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import anyio
import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, field_validator
from starlette.types import Message

from app.api.routing import ValidatedJSONRoute
from app.core.middleware import BodySizeLimitMiddleware
from app.main import create_app
from app.ml import signal_model
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


class Recorded(BaseModel):
    """A body that notes the thread each validation of it runs in."""

    threads: ClassVar[list[int]] = []
    items: list[int]

    @field_validator("items")
    @classmethod
    def _note_thread(cls, items: list[int]) -> list[int]:
        cls.threads.append(threading.get_ident())
        return items


def test_a_valid_body_is_validated_once_and_off_the_event_loop(client: TestClient) -> None:
    """FastAPI would validate it on the event loop (after our checks had, once already)."""
    served_in = []
    router = APIRouter(route_class=ValidatedJSONRoute)

    @router.post("/recorded")
    async def recorded(body: Recorded) -> int:
        served_in.append(threading.get_ident())
        return len(body.items)

    client.app.include_router(router)  # type: ignore[attr-defined]
    Recorded.threads.clear()
    assert client.post("/recorded", json={"items": [1, 2, 3]}).json() == 3
    assert len(Recorded.threads) == 1, Recorded.threads
    assert Recorded.threads != served_in  # the endpoint runs on the event loop's thread


def test_only_cpu_workers_requests_hold_a_parsed_body() -> None:
    """The third of three concurrent requests stays unparsed until one of two others is done."""
    app = create_app(make_settings(CPU_WORKERS=2))
    router = APIRouter(route_class=ValidatedJSONRoute)
    entered, release = [], anyio.Event()

    @router.post("/held")
    async def held(body: Recorded) -> int:
        entered.append(body)
        await release.wait()
        return len(body.items)

    app.include_router(router)
    Recorded.threads.clear()

    async def three_requests() -> list[int]:
        codes: list[int] = []
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://service")

        async def post() -> None:
            codes.append((await client.post("/held", json={"items": [1]})).status_code)

        async with client, anyio.create_task_group() as requests:
            for _ in range(3):
                requests.start_soon(post)
            with anyio.fail_after(10):
                while len(entered) < 2:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # time enough to parse the third, were it allowed
            assert len(Recorded.threads) == 2, "a third body was parsed"
            release.set()
        return codes

    assert anyio.run(three_requests) == [200, 200, 200]
    assert len(Recorded.threads) == 3


def test_requests_waiting_for_the_model_leave_room_for_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two /signal requests waiting for the model's first training (held back here) do not hold
    up an /indicators request (CPU_WORKERS=2): they wait without their parsed-body places."""
    trained = threading.Event()
    train = signal_model.train_signal_model

    def held_training(seed: int) -> signal_model.SignalModel:
        trained.wait(60)
        return train(seed)

    monkeypatch.setattr(signal_model, "_models", {})
    monkeypatch.setattr(signal_model, "train_signal_model", held_training)
    app = create_app(make_settings(CPU_WORKERS=2))
    body = {"candles": make_candles(MIN_CANDLES)}
    codes: list[int] = []

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60)

        async def signal() -> None:
            codes.append((await client.post("/api/v1/signal", json=body)).status_code)

        async with client, anyio.create_task_group() as signals:
            signals.start_soon(signal)
            signals.start_soon(signal)
            await anyio.sleep(0.2)
            with anyio.fail_after(20):
                indicators = await client.post("/api/v1/indicators", json=body)
            assert indicators.status_code == 200, indicators.text
            assert codes == [], "the signals did not wait for the model"
            trained.set()

    anyio.run(main)
    assert codes == [200, 200]


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

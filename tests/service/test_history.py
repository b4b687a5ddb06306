from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo.errors import ServerSelectionTimeoutError
from service_images.registry import free_port

from app.main import create_history_store
from app.ml.indicators import MIN_CANDLES
from app.schemas import HistoryEntry
from app.services.history import HistoryRecorder, MemoryHistory
from app.services.history.mongo import MongoHistory

from .conftest import ClientFactory
from .helpers import make_candles, make_settings


def flush_history(client: TestClient) -> None:
    """Wait for the background writer, which runs on the client's event loop."""
    client.portal.call(client.app.state.services.recorder.join)  # type: ignore[attr-defined]


def test_memory_history_is_bounded_and_newest_first(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(HISTORY_MAX_ITEMS=3))
    for n in range(MIN_CANDLES, MIN_CANDLES + 5):
        assert client.post("/api/v1/indicators", json={"candles": make_candles(n)}).is_success
    flush_history(client)
    body = client.get("/api/v1/history").json()
    assert body["store"] == "memory"
    assert [item["summary"]["candles"] for item in body["items"]] == [
        MIN_CANDLES + 4,
        MIN_CANDLES + 3,
        MIN_CANDLES + 2,
    ]
    limited = client.get("/api/v1/history", params={"limit": 1}).json()["items"]
    assert len(limited) == 1


@pytest.mark.parametrize("limit", ["0", "501", "many"])
def test_history_limit_is_validated(client: TestClient, limit: str) -> None:
    response = client.get("/api/v1/history", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


def test_store_choice_follows_mongodb_url() -> None:
    assert isinstance(create_history_store(make_settings()), MemoryHistory)
    # motor connects lazily: building the store must not need a server.
    store = create_history_store(make_settings(MONGODB_URL="mongodb://127.0.0.1:9/?connect=false"))
    assert isinstance(store, MongoHistory)
    assert store.kind == "mongodb"
    asyncio.run(store.close())


def entry(n: int) -> HistoryEntry:
    return HistoryEntry(timestamp=datetime.now(UTC), endpoint="signal", summary={"n": n})


class SlowStore(MemoryHistory):
    """A store whose writes never finish: what a recorder sees while MongoDB hangs."""

    async def add(self, entry: HistoryEntry) -> None:
        await asyncio.Event().wait()


def test_recorder_never_waits_drops_when_full_and_stops_bounded() -> None:
    async def scenario() -> tuple[Any, Any]:
        recorder = HistoryRecorder(SlowStore(10), queue_size=2, flush_timeout_s=0.01)
        recorder.start()
        for n in range(5):
            recorder.record(entry(n))  # returns at once although no write ever completes
        await asyncio.sleep(0)  # the writer takes one entry and hangs on it
        during = recorder.stats()
        await recorder.stop()
        return during, recorder.stats()

    during, _ = asyncio.run(scenario())
    assert (during.written, during.failed) == (0, 0)
    # Two fit the queue, three were dropped; the writer then took one and hangs on it.
    assert (during.queued, during.dropped) == (1, 3)


def test_unreachable_mongo_never_delays_a_request(client_factory: ClientFactory) -> None:
    """A real motor client pointed at a closed port: requests answer before server selection
    could have given up, the write fails in the background, /ready says degraded, and /history's
    503 does not leak the driver's message (which names the host and port)."""
    port = free_port()
    timeout_ms = 20_000
    settings = make_settings(
        MONGODB_URL=f"mongodb://127.0.0.1:{port}/", MONGODB_TIMEOUT_MS=timeout_ms
    )
    client = client_factory(settings)
    recorder = client.app.state.services.recorder  # type: ignore[attr-defined]

    response = client.post("/api/v1/indicators", json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 200
    # The request returned while its entry still waits for server selection (20 s).
    stats = recorder.stats()
    assert stats.written == 0
    assert stats.failed == 0

    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["history_mongodb"].startswith("degraded: ")


def test_history_503_is_generic(client_factory: ClientFactory) -> None:
    port = free_port()
    settings = make_settings(MONGODB_URL=f"mongodb://127.0.0.1:{port}/", MONGODB_TIMEOUT_MS=200)
    client = client_factory(settings)
    response = client.get("/api/v1/history")
    assert response.status_code == 503
    assert response.json() == {"detail": "history is unavailable"}
    assert str(port) not in response.text


def test_failed_writes_are_counted_and_reported(client_factory: ClientFactory) -> None:
    port = free_port()
    settings = make_settings(MONGODB_URL=f"mongodb://127.0.0.1:{port}/", MONGODB_TIMEOUT_MS=100)
    client = client_factory(settings)
    assert client.post("/api/v1/indicators", json={"candles": make_candles(MIN_CANDLES)}).is_success
    flush_history(client)
    stats = client.app.state.services.recorder.stats()  # type: ignore[attr-defined]
    assert (stats.written, stats.failed) == (0, 1)
    assert stats.last_error == ServerSelectionTimeoutError.__name__
    history = client.get("/ready").json()["history"]
    assert history["failed"] == 1

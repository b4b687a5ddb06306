from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo.errors import ServerSelectionTimeoutError

from app.ml.indicators import MIN_CANDLES
from app.schemas import HistoryEntry
from app.services.history import MemoryHistory, create_history_store
from app.services.mongo_history import MongoHistory

from .conftest import ClientFactory
from .helpers import make_candles, make_settings


def test_memory_history_is_bounded_and_newest_first(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(HISTORY_MAX_ITEMS=3))
    for n in range(MIN_CANDLES, MIN_CANDLES + 5):
        assert client.post("/api/v1/indicators", json={"candles": make_candles(n)}).is_success
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


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]], error: Exception | None) -> None:
        self.docs = docs
        self.error = error
        self.calls: list[tuple[str, Any]] = []

    def sort(self, key: str, direction: int) -> FakeCursor:
        self.calls.append(("sort", (key, direction)))
        return self

    def limit(self, n: int) -> FakeCursor:
        self.calls.append(("limit", n))
        return self

    async def to_list(self, length: int) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return self.docs[:length]


class FakeCollection:
    def __init__(self, error: Exception | None = None) -> None:
        self.inserted: list[dict[str, Any]] = []
        self.cursor = FakeCursor(self.inserted, error)

    async def insert_one(self, doc: dict[str, Any]) -> None:
        self.inserted.append(dict(doc))

    def find(self, query: dict[str, Any], projection: dict[str, Any]) -> FakeCursor:
        assert (query, projection) == ({}, {"_id": False})
        return self.cursor


class FakeAdmin:
    def __init__(self) -> None:
        self.commands: list[str] = []

    async def command(self, name: str) -> dict[str, Any]:
        self.commands.append(name)
        return {"ok": 1}


class FakeClient:
    def __init__(self) -> None:
        self.admin = FakeAdmin()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def mongo_store(collection: FakeCollection) -> tuple[MongoHistory, FakeClient]:
    fake_client = FakeClient()
    return MongoHistory(fake_client, collection), fake_client  # type: ignore[arg-type]


def test_mongo_history_writes_reads_pings_and_closes() -> None:
    collection = FakeCollection()
    store, fake_client = mongo_store(collection)
    entry = HistoryEntry(timestamp=datetime.now(UTC), endpoint="signal", summary={"candles": 40})

    async def scenario() -> list[HistoryEntry]:
        await store.add(entry)
        await store.ping()
        items = await store.recent(5)
        await store.close()
        return items

    assert asyncio.run(scenario()) == [entry]
    assert collection.inserted[0]["endpoint"] == "signal"
    assert collection.cursor.calls == [("sort", ("timestamp", -1)), ("limit", 5)]
    assert fake_client.admin.commands == ["ping"]
    assert fake_client.closed


def test_unreachable_mongo_gives_503_on_read_and_never_fails_a_request(
    client: TestClient,
) -> None:
    store, _ = mongo_store(FakeCollection(error=ServerSelectionTimeoutError("no servers")))

    async def failing_add(entry: HistoryEntry) -> None:
        raise ServerSelectionTimeoutError("no servers")

    store.add = failing_add  # type: ignore[method-assign]
    client.app.state.services.history = store  # type: ignore[attr-defined]

    response = client.post("/api/v1/indicators", json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 200
    response = client.get("/api/v1/history")
    assert response.status_code == 503
    assert "MongoDB history is unavailable" in response.json()["detail"]

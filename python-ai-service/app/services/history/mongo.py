"""History entries in a MongoDB collection, through motor (imported only when configured)."""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection
from pymongo.errors import PyMongoError

from app.schemas import HistoryEntry
from app.services.history.store import HistoryKind, HistoryUnavailableError


class MongoHistory:
    """Entries as documents in one collection, newest first by ``timestamp``."""

    kind: HistoryKind = "mongodb"

    def __init__(
        self,
        client: AsyncIOMotorClient[dict[str, Any]],
        collection: AsyncIOMotorCollection[dict[str, Any]],
    ) -> None:
        self._client = client
        self._collection = collection

    @classmethod
    def connect(cls, url: str, *, database: str, collection: str, timeout_ms: int) -> MongoHistory:
        """A store for ``url``; motor opens connections lazily, on the first operation."""
        client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
            tz_aware=True,
        )
        return cls(client, client[database][collection])

    async def add(self, entry: HistoryEntry) -> None:
        await self._collection.insert_one(entry.model_dump())

    async def recent(self, limit: int) -> list[HistoryEntry]:
        cursor = self._collection.find({}, {"_id": False}).sort("timestamp", -1).limit(limit)
        try:
            docs = await cursor.to_list(length=limit)
        except PyMongoError as exc:
            # The pymongo message names hosts and topology: for the log, never for a client.
            raise HistoryUnavailableError(f"MongoDB history is unavailable: {exc}") from exc
        return [HistoryEntry.model_validate(doc) for doc in docs]

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def close(self) -> None:
        self._client.close()

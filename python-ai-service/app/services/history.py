"""History of served requests: MongoDB when ``MONGODB_URL`` is set, else a bounded deque."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Literal, Protocol

from loguru import logger

from app.core.config import Settings
from app.schemas import HistoryEntry, SummaryValue


class HistoryUnavailableError(RuntimeError):
    """The history store cannot be read right now."""


class HistoryStore(Protocol):
    """Where history entries go; implementations never let a storage error fail a request."""

    kind: Literal["memory", "mongodb"]

    async def add(self, entry: HistoryEntry) -> None: ...

    async def recent(self, limit: int) -> list[HistoryEntry]:
        """Newest first; raise :class:`HistoryUnavailableError` if the store cannot be read."""

    async def ping(self) -> None:
        """Raise if the store cannot be used."""

    async def close(self) -> None: ...


class MemoryHistory:
    """The newest ``max_items`` entries, lost on restart; needs no server."""

    kind: Literal["memory", "mongodb"] = "memory"

    def __init__(self, max_items: int) -> None:
        # All access happens on the event loop without awaiting in between, so no lock is needed.
        self._items: deque[HistoryEntry] = deque(maxlen=max_items)

    async def add(self, entry: HistoryEntry) -> None:
        self._items.append(entry)

    async def recent(self, limit: int) -> list[HistoryEntry]:
        return list(reversed(self._items))[:limit]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def make_entry(endpoint: str, summary: dict[str, SummaryValue]) -> HistoryEntry:
    """An entry stamped with the current UTC time."""
    return HistoryEntry(timestamp=datetime.now(UTC), endpoint=endpoint, summary=summary)


async def record(store: HistoryStore, entry: HistoryEntry) -> None:
    """Add ``entry``; history is best effort, so a failing store is logged, not raised."""
    try:
        await store.add(entry)
    except Exception:  # any storage failure: history must never fail the request it records
        logger.opt(exception=True).warning(
            "could not record {} in {} history", entry.endpoint, store.kind
        )


def create_history_store(settings: Settings) -> HistoryStore:
    """MongoDB store when configured (motor connects lazily, so this does no I/O), else memory."""
    if settings.MONGODB_URL is None:
        return MemoryHistory(settings.HISTORY_MAX_ITEMS)
    # Imported only when configured: motor and pymongo are not needed for the in-memory store.
    from app.services.mongo_history import MongoHistory

    return MongoHistory.connect(
        settings.MONGODB_URL.get_secret_value(),
        database=settings.MONGODB_DB,
        collection=settings.MONGODB_COLLECTION,
        timeout_ms=settings.MONGODB_TIMEOUT_MS,
    )

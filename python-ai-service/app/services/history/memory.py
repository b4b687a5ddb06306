"""The in-memory store: needs no server, loses everything on restart."""

from __future__ import annotations

from collections import deque

from app.schemas import HistoryEntry
from app.services.history.store import HistoryKind


class MemoryHistory:
    """The newest ``max_items`` entries."""

    kind: HistoryKind = "memory"

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

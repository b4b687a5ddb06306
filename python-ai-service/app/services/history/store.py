"""What every history store provides."""

from __future__ import annotations

from typing import Literal, Protocol

from app.schemas import HistoryEntry

HistoryKind = Literal["memory", "mongodb"]


class HistoryUnavailableError(RuntimeError):
    """The history store cannot be read right now; the message is safe to log, not to show."""


class HistoryStore(Protocol):
    """Where history entries are kept."""

    kind: HistoryKind

    async def add(self, entry: HistoryEntry) -> None:
        """Store one entry; may raise (the recorder logs and counts the failure)."""

    async def recent(self, limit: int) -> list[HistoryEntry]:
        """Newest first; raise :class:`HistoryUnavailableError` if the store cannot be read."""

    async def ping(self) -> None:
        """Raise if the store cannot be used."""

    async def close(self) -> None: ...

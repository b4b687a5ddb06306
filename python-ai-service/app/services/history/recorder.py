"""Writes history entries in the background, so a slow or dead store never delays a response."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from loguru import logger

from app.schemas import HistoryEntry, SummaryValue
from app.services.history.store import HistoryStore


def make_entry(endpoint: str, summary: dict[str, SummaryValue]) -> HistoryEntry:
    """An entry stamped with the current UTC time."""
    return HistoryEntry(timestamp=datetime.now(UTC), endpoint=endpoint, summary=summary)


@dataclass(frozen=True)
class RecorderStats:
    queued: int
    written: int
    dropped: int
    failed: int
    # Type name of the error of the last write, None once a write succeeds again.
    last_error: str | None


class HistoryRecorder:
    """A bounded queue in front of ``store`` with one writer task.

    History is best effort: :meth:`record` never waits, a full queue drops the entry (counted),
    and a failing store is logged once per outage, not once per entry.
    """

    def __init__(self, store: HistoryStore, *, queue_size: int, flush_timeout_s: float) -> None:
        self.store = store
        self._queue: asyncio.Queue[HistoryEntry] = asyncio.Queue(maxsize=queue_size)
        self._flush_timeout_s = flush_timeout_s
        self._writer: asyncio.Task[None] | None = None
        self._written = self._dropped = self._failed = 0
        self._last_error: str | None = None

    def record(self, entry: HistoryEntry) -> None:
        """Queue ``entry`` for writing; drop it if the queue is full."""
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self._dropped += 1
            # Powers of two: an outage under load logs a handful of lines, not one per request.
            if self._dropped & (self._dropped - 1) == 0:
                logger.warning(
                    "{} history queue is full: {} entries dropped so far",
                    self.store.kind,
                    self._dropped,
                )

    def stats(self) -> RecorderStats:
        return RecorderStats(
            queued=self._queue.qsize(),
            written=self._written,
            dropped=self._dropped,
            failed=self._failed,
            last_error=self._last_error,
        )

    def start(self) -> None:
        """Start the writer on the running loop (the app's lifespan calls this)."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever(), name="history-writer")

    async def join(self) -> None:
        """Wait until every queued entry has been written or has failed."""
        await self._queue.join()

    async def stop(self) -> None:
        """Flush for at most ``flush_timeout_s``, then stop the writer; never raises."""
        if self._writer is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), self._flush_timeout_s)
        except TimeoutError:
            logger.warning(
                "{} history: {} entries not written at shutdown",
                self.store.kind,
                self._queue.qsize(),
            )
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def _write_forever(self) -> None:
        while True:
            entry = await self._queue.get()
            try:
                await self.store.add(entry)
            except Exception as exc:  # any storage failure: counted and logged, never raised
                self._failed += 1
                if self._last_error is None:
                    logger.opt(exception=exc).warning(
                        "could not record {} in {} history", entry.endpoint, self.store.kind
                    )
                self._last_error = type(exc).__name__
            else:
                self._written += 1
                if self._last_error is not None:
                    logger.info("{} history is written again", self.store.kind)
                self._last_error = None
            finally:
                self._queue.task_done()

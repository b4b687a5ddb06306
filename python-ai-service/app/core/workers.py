"""The worker processes that do the service's CPU work (app.worker), behind a bounded queue.

CPU work in threads shares the GIL with the event loop: a 5000-candle request's parsing,
validation and indicators held /health back, and pandas kept the service on one core whatever
the machine had. Here the event loop only reads bodies and writes answers; ``processes`` workers
compute, each on a core of its own, and at most as many requests again wait their turn in the
pool's queue. The others wait in the event loop with their raw bytes (at most MAX_BODY_BYTES each,
for at most LIMIT_CONCURRENCY connections).

The workers come from a fork server (no fork of a process with threads); each imports pandas,
ta and scikit-learn and trains the signal model before its first request. They start when
``start()`` is called (the app does it after its first answer, so start-up stays quick), or with
the first job. A worker that dies (the kernel's OOM killer) breaks the pool: the
requests it held get ``WorkersLost`` (503), and the next job starts a new pool.

Tests may pass an executor of their own (threads, so that their patches reach the jobs).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

# Imported by the fork server, once. Not pandas and the rest: a fork server holding them kept
# 34 MiB more resident (measured, one worker), and each worker imports them itself in a second.
PRELOADED = ["app.worker"]


class WorkersLost(Exception):
    """A worker process died (killed, out of memory) while it held this request's work."""


class Workers:
    def __init__(self, processes: int, seed: int, executor: Executor | None = None) -> None:
        self.processes = processes
        self._seed = seed
        self._pool = executor
        self._given = executor
        self._places = anyio.Semaphore(2 * processes)  # running, and one queued per worker

    def _executor(self) -> Executor:
        if self._pool is None:
            from app import worker

            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOADED)
            self._pool = ProcessPoolExecutor(
                self.processes, context, initializer=worker.warm_up, initargs=(self._seed,)
            )
        return self._pool

    def start(self) -> None:
        """Start the workers now rather than with the first job."""
        pool = self._executor()
        for _ in range(self.processes):
            pool.submit(int)  # each submit past the idle workers adds one

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker; waits for a place in the queue first."""
        async with self._places:
            return await self.run_now(func, *args)

    async def run_now(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker, queued behind what is there (a probe's small job)."""
        pool = self._executor()
        try:
            return await asyncio.wrap_future(pool.submit(func, *args))
        except BrokenProcessPool as exc:
            if self._pool is pool and pool is not self._given:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise WorkersLost("a worker process died while computing this request") from exc

    def close(self) -> None:
        """Stop the workers; work in progress is finished first, work queued is dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

"""The worker processes (app.core.workers): started after the first answer, the CPU work in
them and none of it in the event loop's process, and a dead worker costs a 503, not the service."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from app import worker
from app.core.workers import Workers, WorkersLost
from app.ml.indicators import MIN_CANDLES

from .conftest import ClientFactory
from .helpers import make_candles, make_settings


def test_the_workers_start_after_the_first_answer_only(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in the lifespan, which runs before uvicorn binds: it would slow the first /health."""
    started: list[Workers] = []
    monkeypatch.setattr(Workers, "start", lambda workers: started.append(workers))
    client = client_factory()  # the lifespan has run
    assert started == []
    assert client.get("/health").status_code == 200
    assert client.get("/health").status_code == 200
    assert started == [client.app.state.services.workers]  # type: ignore[attr-defined]


def test_a_worker_that_dies_fails_its_job_and_the_next_job_gets_a_new_one() -> None:
    """As when the kernel's OOM killer takes a worker in the middle of a request."""
    workers = Workers(1, seed=42)

    async def jobs() -> None:
        with pytest.raises(WorkersLost):
            await workers.run(os._exit, 1)
        assert await workers.run(pow, 2, 10) == 1024

    try:
        asyncio.run(jobs())
    finally:
        workers.close()


def test_a_lost_worker_is_a_503_with_retry_after(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object) -> None:
        raise BrokenProcessPool("a child process terminated abruptly")

    monkeypatch.setattr(worker, "indicators", killed)
    client = client_factory(make_settings())
    response = client.post("/api/v1/indicators", json={"candles": make_candles(MIN_CANDLES)})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "worker process died" in response.json()["detail"]


def test_a_warm_up_that_fails_leaves_the_worker_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing initializer breaks a process pool: every request would be a 503."""

    def broken(seed: int) -> None:
        raise RuntimeError("no model")

    monkeypatch.setattr(worker, "on_signal", lambda *args: None)
    monkeypatch.setattr(worker, "get_signal_model", broken)
    worker.warm_up(42)  # logged, not raised

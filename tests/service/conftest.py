"""Fixtures for the service tests: apps built from explicit settings, run through TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.workers import Workers
from app.main import create_app

from .helpers import make_settings

ClientFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def in_process() -> Iterator[ThreadPoolExecutor]:
    """The jobs run in this process's threads, so that a test's patches reach them. The worker
    processes themselves are tested in test_workers.py."""
    with ThreadPoolExecutor(2, thread_name_prefix="job") as executor:
        yield executor


@pytest.fixture
def client_factory(in_process: ThreadPoolExecutor) -> Iterator[ClientFactory]:
    """Build started clients (lifespan run) for given settings; all are shut down afterwards."""
    with ExitStack() as stack:

        def make(settings: Settings | None = None, **kwargs: Any) -> TestClient:
            settings = settings or make_settings()
            kwargs.setdefault("workers", Workers(1, settings.SIGNAL_SEED, in_process))
            app = create_app(settings, **kwargs)
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def client(client_factory: ClientFactory) -> TestClient:
    return client_factory()

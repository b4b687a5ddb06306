"""Fixtures for the service tests: apps built from explicit settings, run through TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app

from .helpers import make_settings

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_factory() -> Iterator[ClientFactory]:
    """Build started clients (lifespan run) for given settings; all are shut down afterwards."""
    with ExitStack() as stack:

        def make(settings: Settings | None = None, **kwargs: Any) -> TestClient:
            app = create_app(settings or make_settings(), **kwargs)
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def client(client_factory: ClientFactory) -> TestClient:
    return client_factory()

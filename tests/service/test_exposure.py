"""What the service tells a client about itself: API docs and versions only when enabled."""

from __future__ import annotations

import importlib.metadata

import pytest

from .conftest import ClientFactory
from .helpers import make_settings

DOCS = ["/docs", "/redoc", "/api/v1/openapi.json"]


@pytest.mark.parametrize("path", DOCS)
def test_api_docs_are_off_by_default(client_factory: ClientFactory, path: str) -> None:
    assert client_factory().get(path).status_code == 404


@pytest.mark.parametrize("path", DOCS)
def test_api_docs_can_be_enabled(client_factory: ClientFactory, path: str) -> None:
    assert client_factory(make_settings(API_DOCS=True)).get(path).status_code == 200


def test_capabilities_name_no_version_by_default(client_factory: ClientFactory) -> None:
    body = client_factory().get("/api/v1/capabilities").json()
    assert body["python"] is None
    assert body["libraries"]["scikit-learn"] == {"available": True, "version": None}


def test_capabilities_name_versions_when_enabled(client_factory: ClientFactory) -> None:
    body = client_factory(make_settings(EXPOSE_VERSIONS=True)).get("/api/v1/capabilities").json()
    assert body["python"]
    assert body["libraries"]["scikit-learn"]["version"] == importlib.metadata.version(
        "scikit-learn"
    )

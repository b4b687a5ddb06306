from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from loguru import logger

from app.core.logging import configure_logging
from app.main import create_app

from .helpers import make_settings


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    # The sink captured this test's stderr; rebind to the real one.
    configure_logging(make_settings())


def test_json_logs_carry_loguru_and_stdlib_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_settings(LOG_JSON=True, LOG_LEVEL="INFO"))
    logger.info("from loguru")
    logging.getLogger("uvicorn.error").info("from uvicorn")
    logging.getLogger("some.library").debug("below the level")

    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line)["record"] for line in lines]
    assert [(r["message"], r["level"]["name"]) for r in records] == [
        ("from loguru", "INFO"),
        ("from uvicorn", "INFO"),
    ]


def test_plain_logs_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_settings(LOG_LEVEL="INFO"))
    logger.info("plain line")
    err = capsys.readouterr().err
    assert "plain line" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_a_path_is_logged_with_its_control_characters_escaped() -> None:
    """A percent-encoded control character decodes into the path: an ESC written as is drives
    the terminal that shows the log (newlines are not the risk: the URL parser drops them)."""
    app = create_app(make_settings())
    router = APIRouter()

    @router.get("/boom/{anything}")
    async def boom(anything: str) -> None:
        raise RuntimeError("boom")

    app.include_router(router)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="ERROR")
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/boom/x%1B[2J").status_code == 500
    finally:
        logger.remove(sink)
    [line] = [line for line in lines if "unhandled error" in line]
    assert "\x1b" not in line, line

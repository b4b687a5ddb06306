from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from loguru import logger

from app.core.logging import configure_logging

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

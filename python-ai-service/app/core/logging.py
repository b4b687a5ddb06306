"""loguru set-up: one stderr sink (JSON lines when ``LOG_JSON``), stdlib logging routed into it.

The images run with a read-only root filesystem, so stderr is the only log destination.
"""

from __future__ import annotations

import inspect
import logging
import sys

from loguru import logger

from app.core.config import Settings


class InterceptHandler(logging.Handler):
    """Forward stdlib records (uvicorn, asyncio, ...) to loguru so all output has one format."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Walk out of the logging module so loguru reports the real caller.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: Settings) -> None:
    """Install the stderr sink and take over the root and uvicorn loggers."""
    logger.remove()
    # diagnose=False: loguru would otherwise print local variables (request data) in tracebacks.
    logger.add(
        sys.stderr,
        level=settings.LOG_LEVEL,
        serialize=settings.LOG_JSON,
        backtrace=False,
        diagnose=False,
    )
    # Same threshold for stdlib loggers, so filtered-out records are not even created.
    logging.basicConfig(
        handlers=[InterceptHandler()], level=logger.level(settings.LOG_LEVEL).no, force=True
    )
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True

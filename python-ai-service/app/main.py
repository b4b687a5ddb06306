"""Builds the FastAPI application; ``uvicorn app.main:app`` serves the module-level ``app``.

Nothing heavy is imported here: pandas, ta and scikit-learn load with the first request that needs
them (or the background warm-up), torch and tensorflow with the first forecast on them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIASGIMiddleware
from slowapi.util import get_remote_address

from app.api.deps import ServiceState
from app.api.main import api_router
from app.api.routes import health
from app.core.config import Settings
from app.core.config import settings as env_settings
from app.core.logging import configure_logging
from app.core.middleware import BodySizeLimitMiddleware
from app.ml.signal_model import get_signal_model
from app.services.history import create_history_store

if TYPE_CHECKING:
    import httpx


def _json_safe_error(error: dict[str, object]) -> dict[str, object]:
    """A validation error that always serialises, and stays small.

    The offending input is echoed only when it is a scalar: a NaN or infinity (which JSON cannot
    carry) becomes its string form, and lists/objects (possibly thousands of candles) are dropped.
    """
    safe = dict(error)
    if isinstance(ctx := safe.get("ctx"), dict):
        # pydantic puts the raised exception object here; its message is what a client can use.
        safe["ctx"] = {k: str(v) if isinstance(v, Exception) else v for k, v in ctx.items()}
    value = safe.pop("input", None)
    if isinstance(value, float) and not math.isfinite(value):
        safe["input"] = str(value)
    elif isinstance(value, str | int | float | bool):
        safe["input"] = value
    return safe


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [_json_safe_error(e) for e in errors]
    return JSONResponse(
        {"detail": jsonable_encoder(detail)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    detail = exc.detail if isinstance(exc, RateLimitExceeded) else "too many requests"
    return JSONResponse(
        {"detail": f"Rate limit exceeded: {detail}"}, status_code=status.HTTP_429_TOO_MANY_REQUESTS
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Last resort only: every expected failure has its own 4xx/5xx. This keeps the body JSON and
    # puts the traceback in the log instead of the response.
    logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
    return JSONResponse(
        {"detail": "internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def _log_warmup_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.opt(exception=exc).error("signal model warm-up failed")


def create_app(
    settings: Settings | None = None, *, openai_http_client: httpx.AsyncClient | None = None
) -> FastAPI:
    """Build the service; ``openai_http_client`` exists for tests to inject a fake transport."""
    cfg = env_settings if settings is None else settings
    # Here rather than in the lifespan: uvicorn imports the app before it logs its first line.
    configure_logging(cfg)
    state = ServiceState(
        settings=cfg, history=create_history_store(cfg), openai_http_client=openai_http_client
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "{} starting: image variant {}, history in {}",
            cfg.PROJECT_NAME,
            cfg.IMAGE_VARIANT,
            state.history.kind,
        )
        # Train the signal model off the event loop right after start-up, so /health answers at
        # once and the first /signal usually finds the model ready.
        warmup = asyncio.create_task(asyncio.to_thread(get_signal_model, cfg.SIGNAL_SEED))
        warmup.add_done_callback(_log_warmup_failure)
        yield
        await state.aclose()

    app = FastAPI(
        title=cfg.PROJECT_NAME,
        openapi_url=f"{cfg.API_V1_STR}/openapi.json",
        lifespan=lifespan,
    )
    app.state.services = state

    limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[cfg.RATE_LIMIT],
        enabled=cfg.RATE_LIMIT_ENABLED,
    )
    # Probes must never be throttled: a 429 on /health would get a healthy container killed.
    # exempt() registers the route by name; the wrapper it returns is not needed. slowapi leaves it
    # unannotated, hence the ignores.
    limiter.exempt(health.health)  # type: ignore[no-untyped-call]
    limiter.exempt(health.ready)  # type: ignore[no-untyped-call]
    app.state.limiter = limiter

    # Added last = outermost: throttle before buffering a body.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=cfg.MAX_BODY_BYTES)
    app.add_middleware(SlowAPIASGIMiddleware)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    app.add_exception_handler(Exception, _unhandled)

    app.include_router(health.router)
    app.include_router(api_router, prefix=cfg.API_V1_STR)
    return app


app = create_app()

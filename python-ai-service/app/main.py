"""Builds the FastAPI application; ``uvicorn app.main:app`` serves the module-level ``app``.

Nothing heavy is imported here, nor ever in this process: pandas, ta and scikit-learn load in the
worker processes (app.core.workers), which the first answered request starts, torch and
tensorflow in a worker with the first forecast on them. This is also where the parts are chosen:
the history store follows ``MONGODB_URL``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from loguru import logger
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIASGIMiddleware

from app.api.deps import ServiceState
from app.api.errors import SafeJSONResponse, make_validation_handler, rate_limited, unhandled
from app.api.main import api_router
from app.api.routes import health
from app.api.work import BODY_SCHEMAS, RefusedError, refused_response
from app.core.config import Settings
from app.core.config import settings as env_settings
from app.core.logging import configure_logging
from app.core.middleware import AfterFirstResponse, BodySizeLimitMiddleware, HeadAsGetMiddleware
from app.core.ratelimit import ForwardedForMiddleware, make_limiter
from app.core.workers import Workers
from app.services.history import HistoryRecorder, HistoryStore, MemoryHistory

if TYPE_CHECKING:
    import httpx


def create_history_store(settings: Settings) -> HistoryStore:
    """MongoDB store when configured (motor connects lazily, so this does no I/O), else memory."""
    if settings.MONGODB_URL is None:
        return MemoryHistory(settings.HISTORY_MAX_ITEMS)
    # Imported only when configured: motor and pymongo are not needed for the in-memory store.
    from app.services.history.mongo import MongoHistory

    return MongoHistory.connect(
        settings.MONGODB_URL.get_secret_value(),
        database=settings.MONGODB_DB,
        collection=settings.MONGODB_COLLECTION,
        timeout_ms=settings.MONGODB_TIMEOUT_MS,
    )


def create_app(
    settings: Settings | None = None,
    *,
    history: HistoryStore | None = None,
    workers: Workers | None = None,
    openai_http_client: httpx.AsyncClient | None = None,
) -> FastAPI:
    """Build the service; ``history``, ``workers`` and ``openai_http_client`` let tests supply
    their own (workers given are not stopped with the app)."""
    cfg = env_settings if settings is None else settings
    # Here rather than in the lifespan: uvicorn imports the app before it logs its first line.
    configure_logging(cfg)
    store = create_history_store(cfg) if history is None else history
    state = ServiceState(
        settings=cfg,
        history=store,
        recorder=HistoryRecorder(
            store, queue_size=cfg.HISTORY_QUEUE_SIZE, flush_timeout_s=cfg.HISTORY_FLUSH_TIMEOUT_S
        ),
        workers=Workers(cfg.CPU_WORKERS, cfg.SIGNAL_SEED) if workers is None else workers,
        openai_http_client=openai_http_client,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "{} starting: image variant {}, history in {}",
            cfg.PROJECT_NAME,
            cfg.IMAGE_VARIANT,
            store.kind,
        )
        state.recorder.start()
        yield
        # Bounded by HISTORY_FLUSH_TIMEOUT_S, so SIGTERM never waits on a dead history store.
        await state.aclose()
        if workers is None:
            state.workers.close()

    app = FastAPI(
        title=cfg.PROJECT_NAME,
        openapi_url=f"{cfg.API_V1_STR}/openapi.json" if cfg.API_DOCS else None,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        # A redirect to the slash-less path would be built from the client's Host header.
        redirect_slashes=False,
    )
    app.state.services = state

    limiter = make_limiter(cfg)
    # Probes must never be throttled: a 429 on /health would get a healthy container killed.
    # exempt() registers the route by name; the wrapper it returns is not needed. slowapi leaves it
    # unannotated, hence the ignores.
    limiter.exempt(health.health)  # type: ignore[no-untyped-call]
    limiter.exempt(health.ready)  # type: ignore[no-untyped-call]
    app.state.limiter = limiter

    # Added last = outermost: throttle before buffering a body.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=cfg.MAX_BODY_BYTES,
        read_timeout_s=cfg.BODY_READ_TIMEOUT_S,
    )
    app.add_middleware(SlowAPIASGIMiddleware)
    app.add_middleware(ForwardedForMiddleware, trusted=cfg.TRUSTED_PROXIES)
    app.add_middleware(HeadAsGetMiddleware)
    # After the first answer, not in the lifespan: that runs before the socket is bound.
    app.add_middleware(AfterFirstResponse, start=state.workers.start)
    app.add_exception_handler(
        RequestValidationError, make_validation_handler(cfg.VALIDATION_ERRORS_SHOWN)
    )
    app.add_exception_handler(RateLimitExceeded, rate_limited)
    app.add_exception_handler(RefusedError, refused_response)
    app.add_exception_handler(Exception, unhandled)

    app.include_router(health.router)
    app.include_router(api_router, prefix=cfg.API_V1_STR)
    _add_body_schemas(app)
    return app


def _add_body_schemas(app: FastAPI) -> None:
    """The body models the computing routes read themselves (work.json_body), in the schema."""
    openapi = app.openapi

    def with_bodies() -> dict[str, Any]:
        schema = openapi()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(BODY_SCHEMAS)
        return schema

    app.openapi = with_bodies  # type: ignore[method-assign]


app = create_app()

"""Liveness and readiness probes (not rate limited, not under /api/v1)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from loguru import logger
from starlette.concurrency import run_in_threadpool

from app.api.deps import HistoryDep, SettingsDep
from app.ml.signal_model import get_signal_model
from app.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> HealthResponse:
    """Liveness: the process serves HTTP. Touches no dependency."""
    return HealthResponse()


@router.get(
    "/ready",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "A dependency is not ready"}},
)
async def ready(settings: SettingsDep, history: HistoryDep) -> ReadyResponse:
    """Readiness: the signal model is trained (training it now if needed) and history answers."""
    checks: dict[str, str] = {}
    failed = False
    # A probe reports failures instead of raising them, whatever their type.
    try:
        await run_in_threadpool(get_signal_model, settings.SIGNAL_SEED)
        checks["signal_model"] = "ok"
    except Exception as exc:
        logger.opt(exception=exc).error("signal model is not loadable")
        checks["signal_model"] = f"error: {type(exc).__name__}"
        failed = True
    try:
        await history.ping()
        checks[f"history_{history.kind}"] = "ok"
    except Exception as exc:
        logger.warning("{} history is not reachable: {}", history.kind, exc)
        checks[f"history_{history.kind}"] = f"error: {type(exc).__name__}"
        failed = True
    if failed:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail={"status": "not ready", "checks": checks}
        )
    return ReadyResponse(checks=checks)

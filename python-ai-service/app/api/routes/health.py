"""Liveness and readiness probes (not rate limited, not under /api/v1)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status
from loguru import logger

from app import worker
from app.api.deps import HistoryDep, RecorderDep, SettingsDep, StateDep
from app.schemas import HealthResponse, HistoryHealth, ReadyResponse

router = APIRouter(tags=["health"])

# Probes time out after 1 s by default; a ping waiting out server selection must not take it.
HISTORY_PING_TIMEOUT_S = 0.5


@router.get("/health")
async def health() -> HealthResponse:
    """Liveness: the process serves HTTP. Touches no dependency."""
    return HealthResponse()


@router.get(
    "/ready",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "The signal model failed"}},
)
async def ready(
    state: StateDep, settings: SettingsDep, history: HistoryDep, recorder: RecorderDep
) -> ReadyResponse:
    """Readiness: a worker has the signal model trained (training it now if needed); history is
    reported.

    History is best effort: an unreachable store makes the service "degraded" (200), not
    unready, because taking every pod out of the load balancer for want of a log of past
    requests would turn a history outage into a full outage.
    """
    checks: dict[str, str] = {}
    # A probe reports failures instead of raising them, whatever their type.
    try:
        await state.workers.run_now(worker.ready, settings.SIGNAL_SEED)
        checks["signal_model"] = "ok"
    except Exception as exc:
        logger.opt(exception=exc).error("signal model is not loadable")
        checks["signal_model"] = f"error: {type(exc).__name__}"
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail={"status": "not ready", "checks": checks}
        ) from exc
    stats = recorder.stats()
    problem = stats.last_error
    try:
        await asyncio.wait_for(history.ping(), HISTORY_PING_TIMEOUT_S)
    except Exception as exc:
        logger.warning("{} history is not reachable: {!r}", history.kind, exc)
        problem = type(exc).__name__
    checks[f"history_{history.kind}"] = "ok" if problem is None else f"degraded: {problem}"
    return ReadyResponse(
        status="ready" if problem is None else "degraded",
        checks=checks,
        history=HistoryHealth(
            store=history.kind,
            queued=stats.queued,
            written=stats.written,
            dropped=stats.dropped,
            failed=stats.failed,
        ),
    )

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from app import worker
from app.api.deps import CommentatorDep, RecorderDep, SettingsDep
from app.api.work import WorkDep, json_body
from app.schemas import AnalysisRequest, AnalysisResponse
from app.services.commentary import (
    CommentaryCoolingDownError,
    CommentaryFailedError,
    CommentaryTimeoutError,
)
from app.services.history import make_entry

router = APIRouter(prefix="/analysis", tags=["analysis"])


async def _facts(request: Request, work: WorkDep, settings: SettingsDep) -> worker.Facts:
    """A dependency, declared before the commentator's: a bad body is a 4xx even without it."""
    return await work.on_body(request, AnalysisRequest, worker.analysis_facts, settings.SIGNAL_SEED)


@router.post(
    "",
    openapi_extra=json_body(AnalysisRequest),
    responses={
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"},
        status.HTTP_502_BAD_GATEWAY: {"description": "The OpenAI API failed"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "description": "OPENAI_API_KEY is not set, or OpenAI failed repeatedly (Retry-After)"
        },
        status.HTTP_504_GATEWAY_TIMEOUT: {"description": "No answer within OPENAI_DEADLINE_S"},
    },
)
async def analysis(
    facts: Annotated[worker.Facts, Depends(_facts)],
    commentator: CommentatorDep,
    recorder: RecorderDep,
) -> AnalysisResponse:
    """Indicators and signal at the last candle, with commentary from an OpenAI model."""
    latest, signal = facts.latest, facts.signal
    try:
        commentary, used_model = await commentator.comment(latest, signal, facts.question)
    except CommentaryTimeoutError as exc:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, detail=str(exc)) from exc
    except CommentaryFailedError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=str(exc)) from exc
    except CommentaryCoolingDownError as exc:
        retry_after = {"Retry-After": str(math.ceil(exc.retry_after_s))}
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers=retry_after
        ) from exc
    recorder.record(
        make_entry(
            "analysis",
            {"candles": facts.candles, "direction": signal.direction, "model": used_model},
        )
    )
    return AnalysisResponse(commentary=commentary, model=used_model, signal=signal, latest=latest)

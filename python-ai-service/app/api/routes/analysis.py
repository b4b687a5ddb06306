from __future__ import annotations

import math

from fastapi import APIRouter, Depends, HTTPException, Request, status

from app.api.deps import CommentatorDep, CPUDep, RecorderDep, SignalModelDep, checked_body
from app.api.routing import ValidatedJSONRoute, release_body_slot
from app.ml.signal_model import SignalModel
from app.schemas import AnalysisRequest, AnalysisResponse, Candle, IndicatorSnapshot, SignalResponse
from app.services.commentary import (
    CommentaryCoolingDownError,
    CommentaryFailedError,
    CommentaryTimeoutError,
)
from app.services.history import make_entry
from app.services.market import indicator_frame, signal_response, snapshot

router = APIRouter(prefix="/analysis", tags=["analysis"], route_class=ValidatedJSONRoute)


def _facts(model: SignalModel, candles: list[Candle]) -> tuple[IndicatorSnapshot, SignalResponse]:
    frame = indicator_frame(candles)
    return snapshot(frame), signal_response(model, candles, frame)


@router.post(
    "",
    dependencies=[Depends(checked_body(AnalysisRequest, "candles"))],
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
    request: Request,
    body: AnalysisRequest,
    commentator: CommentatorDep,
    model: SignalModelDep,
    cpu: CPUDep,
    recorder: RecorderDep,
) -> AnalysisResponse:
    """Indicators and signal at the last candle, with commentary from an OpenAI model."""
    latest, signal = await cpu.run(_facts, model, body.candles)
    release_body_slot(request)  # what is left is waiting for the model's answer
    try:
        commentary, used_model = await commentator.comment(latest, signal, body.question)
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
            {"candles": len(body.candles), "direction": signal.direction, "model": used_model},
        )
    )
    return AnalysisResponse(commentary=commentary, model=used_model, signal=signal, latest=latest)

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app import worker
from app.api.deps import RecorderDep, SettingsDep
from app.api.work import WorkDep, encoded_response, json_body
from app.schemas import CandlesRequest, SignalResponse
from app.services.history import make_entry

router = APIRouter(prefix="/signal", tags=["signal"])


@router.post(
    "",
    response_model=SignalResponse,
    openapi_extra=json_body(CandlesRequest),
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"}},
)
async def signal(
    request: Request, work: WorkDep, settings: SettingsDep, recorder: RecorderDep
) -> Response:
    """Up/down after the last candle, with the probability and the model version."""
    done = await work.on_body(request, CandlesRequest, worker.signal, settings.SIGNAL_SEED)
    recorder.record(make_entry("signal", done.facts))
    return encoded_response(done)

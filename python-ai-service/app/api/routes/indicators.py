from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app import worker
from app.api.deps import RecorderDep
from app.api.work import WorkDep, encoded_response, json_body
from app.schemas import CandlesRequest, IndicatorsResponse
from app.services.history import make_entry

router = APIRouter(prefix="/indicators", tags=["indicators"])


@router.post(
    "",
    response_model=IndicatorsResponse,
    openapi_extra=json_body(CandlesRequest),
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"}},
)
async def indicators(request: Request, work: WorkDep, recorder: RecorderDep) -> Response:
    """RSI, MACD, Bollinger bands, EMA and ATR for every candle (``null`` during warm-up)."""
    done = await work.on_body(request, CandlesRequest, worker.indicators)
    recorder.record(make_entry("indicators", done.facts))
    return encoded_response(done)

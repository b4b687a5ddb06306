from __future__ import annotations

from fastapi import APIRouter, Depends, status

from app.api.deps import CPUDep, RecorderDep, checked_body
from app.api.routing import ValidatedJSONRoute
from app.schemas import CandlesRequest, IndicatorsResponse
from app.services.history import make_entry
from app.services.market import indicators_response

router = APIRouter(prefix="/indicators", tags=["indicators"], route_class=ValidatedJSONRoute)


@router.post(
    "",
    dependencies=[Depends(checked_body(CandlesRequest, "candles"))],
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"}},
)
async def indicators(
    body: CandlesRequest, cpu: CPUDep, recorder: RecorderDep
) -> IndicatorsResponse:
    """RSI, MACD, Bollinger bands, EMA and ATR for every candle (``null`` during warm-up)."""
    result = await cpu.run(indicators_response, body.candles)
    recorder.record(make_entry("indicators", {"candles": result.count, "rsi": result.latest.rsi}))
    return result

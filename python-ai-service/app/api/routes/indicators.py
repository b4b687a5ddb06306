from __future__ import annotations

from fastapi import APIRouter, Depends, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import HistoryDep, limit_items
from app.schemas import CandlesRequest, IndicatorsResponse
from app.services.history import make_entry, record
from app.services.market import indicators_response

router = APIRouter(prefix="/indicators", tags=["indicators"])


@router.post(
    "",
    dependencies=[Depends(limit_items("candles"))],
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"}},
)
async def indicators(body: CandlesRequest, history: HistoryDep) -> IndicatorsResponse:
    """RSI, MACD, Bollinger bands, EMA and ATR for every candle (``null`` during warm-up)."""
    result = await run_in_threadpool(indicators_response, body.candles)
    await record(
        history, make_entry("indicators", {"candles": result.count, "rsi": result.latest.rsi})
    )
    return result

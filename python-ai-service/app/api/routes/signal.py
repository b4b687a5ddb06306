from __future__ import annotations

from fastapi import APIRouter, Depends, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import HistoryDep, SignalModelDep, limit_items
from app.ml.signal_model import SignalModel
from app.schemas import Candle, CandlesRequest, SignalResponse
from app.services.history import make_entry, record
from app.services.market import indicator_frame, signal_response

router = APIRouter(prefix="/signal", tags=["signal"])


def _signal(model: SignalModel, candles: list[Candle]) -> SignalResponse:
    return signal_response(model, candles, indicator_frame(candles))


@router.post(
    "",
    dependencies=[Depends(limit_items("candles"))],
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"}},
)
async def signal(
    body: CandlesRequest, model: SignalModelDep, history: HistoryDep
) -> SignalResponse:
    """Up/down after the last candle, with the probability and the model version."""
    result = await run_in_threadpool(_signal, model, body.candles)
    await record(
        history,
        make_entry(
            "signal",
            {
                "candles": len(body.candles),
                "direction": result.direction,
                "probability_up": result.probability_up,
                "model_version": result.model_version,
            },
        ),
    )
    return result

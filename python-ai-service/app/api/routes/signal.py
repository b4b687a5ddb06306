from __future__ import annotations

from fastapi import APIRouter, Depends, status

from app.api.deps import CPUDep, RecorderDep, SignalModelDep, checked_body
from app.api.routing import ValidatedJSONRoute
from app.ml.signal_model import SignalModel
from app.schemas import Candle, CandlesRequest, SignalResponse
from app.services.history import make_entry
from app.services.market import indicator_frame, signal_response

router = APIRouter(prefix="/signal", tags=["signal"], route_class=ValidatedJSONRoute)


def _signal(model: SignalModel, candles: list[Candle]) -> SignalResponse:
    return signal_response(model, candles, indicator_frame(candles))


@router.post(
    "",
    dependencies=[Depends(checked_body(CandlesRequest, "candles"))],
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many candles"}},
)
async def signal(
    body: CandlesRequest, model: SignalModelDep, cpu: CPUDep, recorder: RecorderDep
) -> SignalResponse:
    """Up/down after the last candle, with the probability and the model version."""
    result = await cpu.run(_signal, model, body.candles)
    recorder.record(
        make_entry(
            "signal",
            {
                "candles": len(body.candles),
                "direction": result.direction,
                "probability_up": result.probability_up,
                "model_version": result.model_version,
            },
        )
    )
    return result

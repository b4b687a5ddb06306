from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from app import worker
from app.api.deps import RecorderDep, SettingsDep
from app.api.work import WorkDep, encoded_response, json_body
from app.ml.forecast import Backend, BackendUnavailableError
from app.schemas import ForecastRequest, ForecastResponse
from app.services.history import make_entry

router = APIRouter(prefix="/forecast", tags=["forecast"])


@router.post(
    "",
    response_model=ForecastResponse,
    openapi_extra=json_body(ForecastRequest),
    responses={
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many closes"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Backend not in this image"},
    },
)
async def forecast(
    request: Request,
    work: WorkDep,
    settings: SettingsDep,
    recorder: RecorderDep,
    backend: Annotated[Backend, Query(description="Deep-learning backend to fit with")] = (
        Backend.TORCH
    ),
) -> Response:
    """Fit a small seeded model to the closes and forecast the next ``horizon`` values."""
    fit = worker.ForecastSettings(
        backend, settings.FORECAST_SEED, settings.FORECAST_EPOCHS, settings.IMAGE_VARIANT
    )
    try:
        done = await work.on_body(request, ForecastRequest, worker.forecast, fit)
    except BackendUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    recorder.record(make_entry("forecast", done.facts))
    return encoded_response(done)

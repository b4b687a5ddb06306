from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from app.api.deps import CPUDep, RecorderDep, SettingsDep, checked_body
from app.api.routing import ValidatedJSONRoute
from app.ml.forecast import Backend, BackendUnavailableError, run_forecast
from app.schemas import ForecastRequest, ForecastResponse
from app.services.history import make_entry

router = APIRouter(prefix="/forecast", tags=["forecast"], route_class=ValidatedJSONRoute)


@router.post(
    "",
    dependencies=[Depends(checked_body(ForecastRequest, "closes"))],
    responses={
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Too many closes"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Backend not in this image"},
    },
)
async def forecast(
    body: ForecastRequest,
    settings: SettingsDep,
    cpu: CPUDep,
    recorder: RecorderDep,
    backend: Annotated[Backend, Query(description="Deep-learning backend to fit with")] = (
        Backend.TORCH
    ),
) -> ForecastResponse:
    """Fit a small seeded model to the closes and forecast the next ``horizon`` values."""
    try:
        result = await cpu.run(
            run_forecast,
            backend,
            body.closes,
            horizon=body.horizon,
            window=body.window,
            seed=settings.FORECAST_SEED,
            epochs=settings.FORECAST_EPOCHS,
            image_variant=settings.IMAGE_VARIANT,
        )
    except BackendUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    recorder.record(
        make_entry(
            "forecast",
            {"backend": backend.value, "closes": len(body.closes), "horizon": body.horizon},
        )
    )
    return ForecastResponse(
        backend=result.backend.value,
        backend_version=result.backend_version,
        horizon=body.horizon,
        window=body.window,
        epochs=settings.FORECAST_EPOCHS,
        seed=settings.FORECAST_SEED,
        forecast=result.values,
    )

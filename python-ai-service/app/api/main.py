from fastapi import APIRouter

from app.api.routes import analysis, capabilities, forecast, history, indicators, signal

api_router = APIRouter()
api_router.include_router(capabilities.router)
api_router.include_router(indicators.router)
api_router.include_router(signal.router)
api_router.include_router(forecast.router)
api_router.include_router(analysis.router)
api_router.include_router(history.router)

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from app.api.deps import HistoryDep
from app.schemas import HistoryResponse
from app.services.history import HistoryUnavailableError

router = APIRouter(prefix="/history", tags=["history"])


@router.get(
    "", responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Store unreachable"}}
)
async def history(
    store: HistoryDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> HistoryResponse:
    """The most recent served requests, newest first."""
    try:
        items = await store.recent(limit)
    except HistoryUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    return HistoryResponse(store=store.kind, items=items)

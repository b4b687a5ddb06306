from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from loguru import logger

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
        # The driver's message names hosts, ports and topology: the log gets it, clients do not.
        logger.warning("{}", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="history is unavailable"
        ) from exc
    return HistoryResponse(store=store.kind, items=items)

"""Request dependencies and their ``Annotated`` aliases."""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, HTTPException, Request, status

from app.core.config import Settings
from app.ml.signal_model import SignalModel, get_signal_model
from app.services.commentary import CommentaryUnavailableError, Commentator, build_commentator
from app.services.history import HistoryStore

if TYPE_CHECKING:
    import httpx


@dataclass
class ServiceState:
    """Everything one app instance owns, kept on ``app.state.services``."""

    settings: Settings
    history: HistoryStore
    # Only tests pass a client, to route OpenAI calls through a fake transport.
    openai_http_client: httpx.AsyncClient | None = None
    commentator: Commentator | None = None
    # get_commentator runs in the thread pool; two first requests must not build two clients.
    commentator_lock: threading.Lock = field(default_factory=threading.Lock)

    async def aclose(self) -> None:
        await self.history.close()
        if self.commentator is not None:
            await self.commentator.aclose()


def get_state(request: Request) -> ServiceState:
    return cast(ServiceState, request.app.state.services)


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_history(state: StateDep) -> HistoryStore:
    return state.history


HistoryDep = Annotated[HistoryStore, Depends(get_history)]


def get_model(settings: SettingsDep) -> SignalModel:
    # A plain def: FastAPI runs it in the thread pool, so first-use training never blocks the loop.
    return get_signal_model(settings.SIGNAL_SEED)


SignalModelDep = Annotated[SignalModel, Depends(get_model)]


def get_commentator(state: StateDep) -> Commentator:
    # A plain def, so the one-time import of openai happens in the thread pool, off the loop.
    with state.commentator_lock:
        if state.commentator is None:
            try:
                state.commentator = build_commentator(state.settings, state.openai_http_client)
            except CommentaryUnavailableError as exc:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
        return state.commentator


CommentatorDep = Annotated[Commentator, Depends(get_commentator)]


def limit_items(field: str) -> Callable[[Request, Settings], Coroutine[Any, Any, None]]:
    """A dependency answering 413 when the JSON body's ``field`` list exceeds ``MAX_CANDLES``.

    It runs before FastAPI validates the body (sub-dependencies are solved first), so an
    oversized series is refused as too large rather than validated item by item; FastAPI has
    already parsed the JSON and ``request.json()`` returns that cached value.
    """

    async def check(request: Request, settings: SettingsDep) -> None:
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            # Not (parseable) JSON: the body's own validation answers that with 4xx.
            return
        items = body.get(field) if isinstance(body, dict) else None
        if isinstance(items, list) and len(items) > settings.MAX_CANDLES:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                detail=f"{field}: {len(items)} items, at most {settings.MAX_CANDLES} allowed",
            )

    return check

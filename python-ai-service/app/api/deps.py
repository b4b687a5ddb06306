"""Request dependencies and their ``Annotated`` aliases."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, HTTPException, Request, status

from app.core.config import Settings
from app.core.workers import Workers
from app.services.commentary import CommentaryUnavailableError, Commentator, build_commentator
from app.services.history import HistoryRecorder, HistoryStore

if TYPE_CHECKING:
    import httpx


@dataclass
class ServiceState:
    """Everything one app instance owns, kept on ``app.state.services``."""

    settings: Settings
    history: HistoryStore
    recorder: HistoryRecorder
    workers: Workers
    # Only tests pass a client, to route OpenAI calls through a fake transport.
    openai_http_client: httpx.AsyncClient | None = None
    commentator: Commentator | None = None
    # get_commentator runs in the thread pool; two first requests must not build two clients.
    commentator_lock: threading.Lock = field(default_factory=threading.Lock)

    async def aclose(self) -> None:
        await self.recorder.stop()
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


def get_recorder(state: StateDep) -> HistoryRecorder:
    return state.recorder


RecorderDep = Annotated[HistoryRecorder, Depends(get_recorder)]


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

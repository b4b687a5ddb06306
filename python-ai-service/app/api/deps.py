"""Request dependencies and their ``Annotated`` aliases."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast, get_args

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.api.errors import BoundedValidationError, summarize_errors
from app.core.config import Settings
from app.core.memory import release_free_heap
from app.ml.signal_model import SignalModel, get_signal_model, trained_signal_model
from app.services.commentary import CommentaryUnavailableError, Commentator, build_commentator
from app.services.history import HistoryRecorder, HistoryStore

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")


@dataclass
class ServiceState:
    """Everything one app instance owns, kept on ``app.state.services``."""

    settings: Settings
    history: HistoryStore
    recorder: HistoryRecorder
    # Shared by every CPU-bound computation: at most CPU_WORKERS run at once, the rest wait.
    cpu: CapacityLimiter
    # Requests past body parsing, until their response is ready (ValidatedJSONRoute).
    parsed_bodies: CapacityLimiter
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


class BodySlot:
    """A request's place among those with a parsed body: given back once, at the end or early."""

    def __init__(self, limiter: CapacityLimiter) -> None:
        self._limiter = limiter
        self._held = False

    async def __aenter__(self) -> BodySlot:
        await self._limiter.acquire_on_behalf_of(self)
        self._held = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limiter.release_on_behalf_of(self)

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Given back for the block (a wait on something else), taken again after it."""
        if not self._held:
            yield
            return
        self.release()
        try:
            yield
        finally:
            await self._limiter.acquire_on_behalf_of(self)
            self._held = True


def body_slot(request: Request) -> BodySlot | None:
    """The request's parsed-body place, on ValidatedJSONRoute's routes."""
    slot: BodySlot | None = getattr(request.state, "body_slot", None)
    return slot


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


class CPUWork:
    """Runs CPU-bound functions in the thread pool, at most ``CPU_WORKERS`` at a time.

    The last one of a busy spell then hands the heap's free memory back to the system, in its
    worker thread (``release_free_heap``): a burst would otherwise leave it with glibc for good.
    """

    def __init__(self, limiter: CapacityLimiter) -> None:
        self._limiter = limiter

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await to_thread.run_sync(
            partial(self._work, func, args, kwargs), limiter=self._limiter
        )

    def _work(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        try:
            return func(*args, **kwargs)
        finally:
            if self._limiter.borrowed_tokens <= 1:  # none but this one's
                release_free_heap()


def get_cpu(state: StateDep) -> CPUWork:
    return CPUWork(state.cpu)


CPUDep = Annotated[CPUWork, Depends(get_cpu)]


async def get_model(request: Request, settings: SettingsDep) -> SignalModel:
    """The signal model. Until the start-up warm-up has trained it, a request waits for it in
    the thread pool, without its parsed-body place (ValidatedJSONRoute): other requests go on."""
    seed = settings.SIGNAL_SEED
    if (model := trained_signal_model(seed)) is not None:
        return model
    slot = body_slot(request)
    if slot is None:
        return await to_thread.run_sync(get_signal_model, seed)
    async with slot.paused():
        return await to_thread.run_sync(get_signal_model, seed)


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


# Above this many errors, pydantic's errors() (native code that holds the GIL throughout, ~40 ms
# for 30,000 errors) is replaced by validating the list's items one by one in Python, which lets
# the event loop's thread take the GIL between items.
_BULK_ERRORS = 1000


@lru_cache
def _item_adapter(model: type[BaseModel], field: str) -> TypeAdapter[Any]:
    (item_type,) = get_args(model.model_fields[field].annotation)
    return TypeAdapter(item_type)


def _item_errors(model: type[BaseModel], field: str, items: list[Any]) -> list[dict[str, Any]]:
    adapter = _item_adapter(model, field)
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            adapter.validate_python(item)
        except ValidationError as exc:
            errors += [
                {**e, "loc": ("body", field, index, *e["loc"])}
                for e in exc.errors(include_url=False)
            ]
    return errors


def _validation_summary(
    model: type[BaseModel], field: str, body: Any, shown: int
) -> dict[str, Any] | None:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        total = exc.error_count()
        if total > _BULK_ERRORS:
            # Many errors come only from many broken items (the list is at most MAX_CANDLES).
            summary = summarize_errors(_item_errors(model, field, body[field]), shown)
            summary["error_count"] = total
            return summary
        # FastAPI reports body errors under "body"; keep the same locations.
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        return summarize_errors(errors, shown)
    return None


def checked_body(
    model: type[BaseModel], field: str
) -> Callable[[Request, ServiceState], Coroutine[Any, Any, None]]:
    """A dependency that refuses what ValidatedJSONRoute's body parsing did not validate.

    Sub-dependencies run before FastAPI's body validation, so this turns an invalid body into a
    bounded 422 in the thread pool: 5000 broken candles make 30,000 errors, and building (let
    alone encoding) them on the loop stalled every other request for over half a second. A valid
    body arrives as ``model`` already, which FastAPI takes as it is; a list over ``MAX_CANDLES``
    never gets here (ValidatedJSONRoute answers 413).
    """

    async def check(request: Request, state: StateDep) -> None:
        settings = state.settings
        try:
            body = await request.json()
        except (ValueError, RecursionError):
            # Not (parseable) JSON: FastAPI's own parsing answers that with 4xx.
            return
        if isinstance(body, model):  # validated already (ValidatedJSONRoute)
            return
        # Under the CPU limiter: twenty such bodies at once would otherwise be twenty threads
        # contending with the event loop for the GIL.
        summary = await CPUWork(state.cpu).run(
            _validation_summary, model, field, body, settings.VALIDATION_ERRORS_SHOWN
        )
        if summary is not None:
            raise BoundedValidationError(summary)

    return check

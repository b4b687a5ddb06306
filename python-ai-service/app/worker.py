"""The service's CPU work, done in its worker processes (app.core.workers): bytes in, an answer out.

A job gets a request's raw body. It parses and validates it with pydantic's JSON parser, every
list capped at ``MAX_CANDLES`` (pydantic-core checks that before each item, so 400,000 empty
objects under the body-size limit are refused at item 5001 instead of making 2.4 million errors),
computes, and encodes the response. The event loop's process only moves bytes: it imports none of
pandas, ta or scikit-learn, and no computation shares its GIL, so /health answers whatever the
workers are doing.

A body that does not validate becomes its 4xx here too, counted and bounded (errors.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from signal import SIG_IGN, SIGINT
from signal import signal as on_signal
from typing import Annotated, Any, TypeVar, get_origin

from fastapi import status
from loguru import logger
from pydantic import BaseModel, Field, ValidationError, create_model

from app.api.errors import encode_json, summarize_errors
from app.ml.forecast import Backend, run_forecast
from app.ml.signal_model import get_signal_model
from app.schemas import (
    AnalysisRequest,
    CandlesRequest,
    ForecastRequest,
    ForecastResponse,
    IndicatorSnapshot,
    SignalResponse,
)
from app.services.market import indicator_frame, indicators_response, signal_response, snapshot

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


@dataclass(frozen=True)
class Limits:
    """What bounds a body's work: the settings a job needs, sent along with each body."""

    max_items: int
    errors_shown: int


@dataclass(frozen=True)
class Refused:
    """A request answered without computing: its status and JSON body, encoded."""

    status_code: int
    content: bytes


@dataclass(frozen=True)
class Encoded:
    """A computed response, encoded, and what the history entry records of it."""

    content: bytes
    facts: dict[str, Any]


def warm_up(seed: int) -> None:
    """A new worker's first task: the signal model, trained before any request waits for it.

    Ctrl-C reaches the whole process group: the server stops its workers itself, without a
    KeyboardInterrupt traceback from each.
    """
    on_signal(SIGINT, SIG_IGN)
    try:
        get_signal_model(seed)
    except Exception:  # best effort (a failing initializer breaks the pool): /signal says why
        logger.opt(exception=True).error("signal model warm-up failed")


def ready(seed: int) -> None:
    get_signal_model(seed)


def _list_fields(model: type[BaseModel]) -> list[str]:
    return [n for n, info in model.model_fields.items() if get_origin(info.annotation) is list]


@lru_cache
def capped(model: type[M], max_items: int) -> type[M]:
    """``model`` with every list field limited to ``max_items`` (a subclass: validators stay)."""
    fields = model.model_fields
    lists: dict[str, Any] = {
        name: (Annotated[fields[name].annotation, Field(max_length=max_items)], fields[name])
        for name in _list_fields(model)
    }
    return create_model(model.__name__, __base__=model, **lists)


def _refused(status_code: int, detail: Any) -> Refused:
    return Refused(status_code, encode_json(detail))


def _refusal(model: type[BaseModel], exc: ValidationError, body: bytes, limits: Limits) -> Refused:
    errors = exc.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        if not _is_utf8(body):
            # RFC 8259 §8.1: JSON between systems is UTF-8 (without a byte order mark).
            not_utf8 = {"detail": "request body is not UTF-8 JSON"}
            return _refused(status.HTTP_400_BAD_REQUEST, not_utf8)
        # JSON to the json module (a lone surrogate is) but not to pydantic's parser: validated
        # as Python instead, so that a list too long is a 413 and an error names its field.
        errors = _python_errors(model, body, limits.max_items) or errors
    too_long = [str(e["loc"][0]) for e in errors if e["type"] == "too_long" and len(e["loc"]) == 1]
    if too_long:
        most = limits.max_items
        detail = f"{too_long[0]}: more than {most} items, at most {most} allowed"
        return _refused(status.HTTP_413_CONTENT_TOO_LARGE, {"detail": detail})
    # FastAPI reports body errors under "body"; keep the same locations.
    located = [{**e, "loc": ("body", *e["loc"])} for e in errors]
    summary = summarize_errors(located, limits.errors_shown)
    return _refused(status.HTTP_422_UNPROCESSABLE_CONTENT, summary)


def _python_errors(model: type[BaseModel], body: bytes, max_items: int) -> list[Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested past Python's recursion limit
        return []
    if isinstance(parsed, dict):
        for name in _list_fields(model):
            if isinstance(items := parsed.get(name), list) and len(items) > max_items:
                return [{"type": "too_long", "loc": (name,)}]  # not one item validated
    try:
        capped(model, max_items).model_validate(parsed)
    except ValidationError as exc:
        return list(exc.errors(include_url=False))
    return []


def _is_utf8(body: bytes) -> bool:
    if json.detect_encoding(body) != "utf-8":
        return False
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def handle(
    job: Callable[..., R], model: type[M], body: bytes, limits: Limits, *args: Any
) -> R | Refused:
    """``job(parsed body, *args)``, or the 4xx that the body gets instead."""
    try:
        parsed = capped(model, limits.max_items).model_validate_json(body)
    except ValidationError as exc:
        return _refusal(model, exc, body, limits)
    return job(parsed, *args)


def indicators(body: CandlesRequest) -> Encoded:
    result = indicators_response(body.candles)
    return Encoded(encode_json(result), {"candles": result.count, "rsi": result.latest.rsi})


def signal(body: CandlesRequest, seed: int) -> Encoded:
    candles = body.candles
    result = signal_response(get_signal_model(seed), candles, indicator_frame(candles))
    facts = {
        "candles": len(candles),
        "direction": result.direction,
        "probability_up": result.probability_up,
        "model_version": result.model_version,
    }
    return Encoded(encode_json(result), facts)


@dataclass(frozen=True)
class Facts:
    """What an analysis asks the commentator about (the rest of its work waits on I/O)."""

    candles: int
    question: str | None
    latest: IndicatorSnapshot
    signal: SignalResponse


def analysis_facts(body: AnalysisRequest, seed: int) -> Facts:
    frame = indicator_frame(body.candles)
    signal = signal_response(get_signal_model(seed), body.candles, frame)
    return Facts(len(body.candles), body.question, snapshot(frame), signal)


@dataclass(frozen=True)
class ForecastSettings:
    backend: Backend
    seed: int
    epochs: int
    image_variant: str


def forecast(body: ForecastRequest, settings: ForecastSettings) -> Encoded:
    """BackendUnavailableError (pickled back to the route) when the backend is not installed."""
    result = run_forecast(
        settings.backend,
        body.closes,
        horizon=body.horizon,
        window=body.window,
        seed=settings.seed,
        epochs=settings.epochs,
        image_variant=settings.image_variant,
    )
    response = ForecastResponse(
        backend=result.backend.value,
        backend_version=result.backend_version,
        horizon=body.horizon,
        window=body.window,
        epochs=settings.epochs,
        seed=settings.seed,
        forecast=result.values,
    )
    facts = {"backend": settings.backend.value, "closes": len(body.closes), "horizon": body.horizon}
    return Encoded(encode_json(response), facts)

"""A route class that parses and validates JSON bodies in the thread pool, in one step.

FastAPI reads a JSON body with ``request.json()``, then validates it against the endpoint's body
model on the event loop: for 5000 candles that is tens of milliseconds of validators during which
no other request, /health included, is served. Here ``json()`` (FastAPI's documented
custom-request pattern) does both in a worker thread under the CPU limiter, with pydantic's own
JSON parser (no intermediate dicts), and returns the model, which FastAPI's validation then takes
as it is. A body that does not validate is parsed with ``json.loads`` instead, for the
``checked_body`` dependency to report (or, not JSON at all, for FastAPI's own 4xx).

A parsed body lives until its request's work is done (5000 candles: some 2.5 MB of small
objects), so only ``CPU_WORKERS`` requests at a time get that far; the others wait with their
raw bytes, which BodySizeLimitMiddleware has already read. Twenty parsed bodies waiting for a
worker had left the service's small-object heap tens of MiB bigger after a burst. An endpoint
whose remaining work is waiting on I/O gives its place up early (``release_body_slot``), and a
dependency that waits on something else gives it up meanwhile (``BodySlot.paused``).

Every list of the body model is validated with ``max_length=MAX_CANDLES``, which pydantic-core
checks before each item: a body of 400,000 invalid items under the size limit is refused (413)
at item 5001, where validating them all made 2.4 million errors and took some 1.1 GiB.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Annotated, Any, TypeVar, get_origin

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError, create_model

from app.api.deps import BodySlot, CPUWork, body_slot, get_state

M = TypeVar("M", bound=BaseModel)


class TooManyItemsError(HTTPException):
    def __init__(self, field: str, max_items: int) -> None:
        detail = f"{field}: more than {max_items} items, at most {max_items} allowed"
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, detail=detail)


class NotUTF8Error(HTTPException):
    """RFC 8259 §8.1: JSON between systems is UTF-8 (without a byte order mark)."""

    def __init__(self) -> None:
        super().__init__(status.HTTP_400_BAD_REQUEST, detail="request body is not UTF-8 JSON")


def _is_json(content_type: str | None) -> bool:
    """What FastAPI reads as JSON; no Content-Type at all is taken as JSON too, as FastAPI does."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


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


def _too_long_field(exc: ValidationError, fields: int) -> str | None:
    """The top-level list that ``exc`` cut short, if any. A list cut short is one error;
    thousands come from items, which errors() would hold the GIL to build (checked_body
    summarises those without it)."""
    if exc.error_count() > fields:
        return None
    for error in exc.errors(include_url=False, include_input=False):
        if error["type"] == "too_long" and len(error["loc"]) == 1:
            return str(error["loc"][0])
    return None


def parse_body(model: type[BaseModel] | None, body: bytes, max_items: int) -> Any:
    """The body as ``model`` when it is a valid one, else as plain JSON; 413 for a list over
    ``max_items``, found without validating (or keeping) the items past it."""
    if model is not None:
        try:
            return capped(model, max_items).model_validate_json(body)
        except ValidationError as exc:
            too_long = _too_long_field(exc, len(model.model_fields))
        # Raised out here: the ValidationError holds the whole list as Python objects (its
        # input), and as the 413's context it would live until a full garbage collection.
        if too_long is not None:
            raise TooManyItemsError(too_long, max_items)
    # Not JSON to pydantic (a lone surrogate is, to json), or not valid: the dependencies report it,
    # validating it again, so its lists are bounded here too. json.loads would read UTF-16/32.
    if json.detect_encoding(body) != "utf-8":
        raise NotUTF8Error
    try:
        parsed = json.loads(body.decode())
    except UnicodeDecodeError:
        raise NotUTF8Error from None
    for name in _list_fields(model) if model is not None and isinstance(parsed, dict) else ():
        if isinstance(items := parsed.get(name), list) and len(items) > max_items:
            raise TooManyItemsError(name, max_items)
    return parsed


def release_body_slot(request: Request) -> None:
    """For an endpoint whose CPU work is done and whose remaining work is waiting on I/O (an
    OpenAI answer): another request may parse its body meanwhile."""
    if (slot := body_slot(request)) is not None:
        slot.release()


class ValidatedJSONRequest(Request):
    model: type[BaseModel] | None = None

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            state = get_state(self)
            self._json = await CPUWork(state.cpu).run(
                parse_body, self.model, body, state.settings.MAX_CANDLES
            )
        return self._json


class ValidatedJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        model = self.body_model()

        async def validate_off_loop(request: Request) -> Response:
            if model is not None and not _is_json(request.headers.get("content-type")):
                raise HTTPException(
                    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="the body must be JSON"
                )
            validating = ValidatedJSONRequest(request.scope, request.receive)
            validating.model = model
            async with BodySlot(get_state(request).parsed_bodies) as slot:
                validating.state.body_slot = slot
                return await handler(validating)

        return validate_off_loop

    def body_model(self) -> type[BaseModel] | None:
        """The model the whole body is (one body parameter, not embedded), if any."""
        params = self.dependant.body_params
        if len(params) != 1 or getattr(params[0].field_info, "embed", False):
            return None
        annotation = params[0].field_info.annotation
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        return annotation if is_model else None

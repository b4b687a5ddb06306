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
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from anyio import to_thread
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from app.api.deps import BodySlot, body_slot, get_state


def parse_body(model: type[BaseModel] | None, body: bytes) -> Any:
    """The body as ``model`` when it is a valid one, else as plain JSON."""
    if model is not None:
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass
    return json.loads(body)


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
            limiter = get_state(self).cpu
            self._json = await to_thread.run_sync(parse_body, self.model, body, limiter=limiter)
        return self._json


class ValidatedJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        model = self.body_model()

        async def validate_off_loop(request: Request) -> Response:
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

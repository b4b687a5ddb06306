"""A request's CPU work, sent to the worker processes with its raw body (app.worker).

The routes that compute take the ``Request`` rather than a body model: FastAPI would parse and
validate the body on the event loop, which is the work the workers are for. Their OpenAPI entry
names the body model all the same (``json_body``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, Response, status
from pydantic import BaseModel

from app import worker
from app.api.deps import StateDep
from app.core.workers import Workers, WorkersLost

R = TypeVar("R")

BODY_SCHEMAS: dict[str, Any] = {}
"""The schemas the body models refer to, for the OpenAPI document's components (main.py)."""


class RefusedError(Exception):
    """The workers' answer to a body they did not compute on: a 400, 413 or 422."""

    def __init__(self, refused: worker.Refused) -> None:
        self.refused = refused


async def refused_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RefusedError)
    return Response(exc.refused.content, exc.refused.status_code, media_type="application/json")


def _is_json(content_type: str | None) -> bool:
    """What FastAPI reads as JSON; no Content-Type at all is taken as JSON too, as FastAPI does."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class Work:
    def __init__(self, workers: Workers, limits: worker.Limits) -> None:
        self._workers = workers
        self._limits = limits

    async def on_body(
        self, request: Request, model: type[BaseModel], job: Callable[..., R], *args: Any
    ) -> R:
        """``job(body as model, *args)`` in a worker; RefusedError for a body it refused."""
        if not _is_json(request.headers.get("content-type")):
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "the body must be JSON")
        body = await request.body()
        try:
            done: R | worker.Refused = await self._workers.run(
                worker.handle, job, model, body, self._limits, *args
            )
        except WorkersLost as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}
            ) from exc
        if isinstance(done, worker.Refused):
            raise RefusedError(done)
        return done


def get_work(state: StateDep) -> Work:
    settings = state.settings
    limits = worker.Limits(settings.MAX_CANDLES, settings.VALIDATION_ERRORS_SHOWN)
    return Work(state.workers, limits)


WorkDep = Annotated[Work, Depends(get_work)]


def encoded_response(encoded: worker.Encoded) -> Response:
    return Response(encoded.content, media_type="application/json")


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a ``model`` body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    BODY_SCHEMAS.update(schema.pop("$defs", {}))
    BODY_SCHEMAS[model.__name__] = schema
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": reference}}},
        "responses": {
            "400": {"description": "The body is not UTF-8"},
            "415": {"description": "The body is not JSON"},
            "422": {"description": "The body does not validate (errors counted, a few shown)"},
        },
    }

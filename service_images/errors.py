"""Errors a user can act on: each is one line saying what is wrong and what to do, and an exit code.

tasks.py and noxfile.py turn them into `invoke.Exit` / `session.error`; nothing shows a traceback
for these unless `SERVICE_IMAGES_DEBUG=1` is set.
"""

from __future__ import annotations

from collections.abc import Iterable


class ToolError(Exception):
    """A failure with a one-line explanation for the user and a distinct exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownVariant(ToolError):
    exit_code = 2

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown image variant {name!r}: choose one of {', '.join(known)}.")


class EngineUnreachable(ToolError):
    exit_code = 3


class BuildKitMissing(ToolError):
    exit_code = 4


class MissingFile(ToolError):
    exit_code = 5


class BaseImageMissing(ToolError):
    exit_code = 6


class BadCABundle(ToolError):
    exit_code = 7


class BuildFailed(ToolError):
    exit_code = 8


class RequirementsProblem(ToolError):
    exit_code = 9


class BudgetExceeded(ToolError):
    exit_code = 10


class AuditUnavailable(ToolError):
    exit_code = 11

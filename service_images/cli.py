"""The one adapter between the package and a command line: errors and log noise.

invoke tasks, nox sessions and the `python -m service_images...` entry points all run their work
inside `user_errors()`: a ToolError becomes one `error: ...` line on stderr and the error's exit
code (no traceback unless SERVICE_IMAGES_DEBUG=1), so a failure exits the same way whichever tool
started it; an error the Docker engine answers (a full disk, say) becomes an EngineError.
`set_up()`, first thing in every entry point: SIGTERM (a cancelled CI job, `timeout`, `kill`)
unwinds as Ctrl-C does, so what a command started is removed then too; and third-party debug
logging (the docker SDK, urllib3), which nox would otherwise show, stays out of the output unless
SERVICE_IMAGES_DEBUG=1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

import docker.errors

from service_images.errors import EngineError, Interrupted, ToolError, disk_filled

DEBUG_VARIABLE = "SERVICE_IMAGES_DEBUG"
NOISY_LOGGERS = ("docker", "urllib3", "httpx", "httpcore", "paramiko", "matplotlib", "PIL")


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Exit with the error's code and its one line; a traceback only when debugging."""
    try:
        try:
            yield
        except docker.errors.APIError as error:
            reason = error.explanation or str(error)
            raise EngineError(f"the Docker engine failed a request: {reason}") from error
        except KeyboardInterrupt:
            # What the command started (containers, private engines) was removed on the way out.
            raise Interrupted("interrupted.") from None
        except OSError as error:
            if (full := disk_filled(error)) is None:
                raise
            raise full from error
    except ToolError as error:
        if debugging():
            raise
        print(f"error: {error.message}", file=sys.stderr, flush=True)
        raise SystemExit(error.exit_code) from None


def set_up() -> None:
    interrupt_on_sigterm()
    quiet_logs()


def interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread: every `with` block on the way out
    (containers, private engines, temporary directories) cleans up, and `user_errors()` exits
    130. Python's default would end the process at once and leave all of them behind."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def quiet_logs() -> None:
    """Library loggers at WARNING, unless SERVICE_IMAGES_DEBUG=1 asks for everything."""
    if debugging():
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

"""``python -m app``: uvicorn configured from the settings, with the timeouts a server needs.

``uvicorn app.main:app`` still works; this adds what its flags cannot express from one place: a
deadline for a request's headers, no ``server`` header, and the settings' timeouts and limits.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.core.config import settings

# Answered whatever LIMIT_CONCURRENCY says: a 503 to the health check gets a busy container
# killed, which turns a load spike into an outage.
PROBE_PATHS = frozenset({"/health", "/ready"})


class HeaderDeadlineH11Protocol(H11Protocol):
    """h11 that closes a connection whose request headers are not complete in time, and serves
    the probes past LIMIT_CONCURRENCY.

    uvicorn only times out idle keep-alive connections; a client sending one header byte at a
    time would otherwise hold a connection (and a LIMIT_CONCURRENCY slot) for ever.
    """

    # uvicorn reads this once per request, just after it has set ``self.scope`` for it.
    @property
    def limit_concurrency(self) -> int | None:
        scope = getattr(self, "scope", None)
        return None if scope is not None and scope["path"] in PROBE_PATHS else self._limit

    @limit_concurrency.setter
    def limit_concurrency(self, value: int | None) -> None:
        self._limit = value

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(
            settings.HEADER_READ_TIMEOUT_S, self._headers_overdue
        )

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def handle_events(self) -> None:
        super().handle_events()
        if not self._awaiting_headers():
            self._header_deadline.cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._awaiting_headers():
            # The next request on this keep-alive connection gets its own deadline (idle time
            # included; uvicorn's keep-alive timeout usually closes an idle one first).
            self._header_deadline.cancel()
            self._header_deadline = self.loop.call_later(
                settings.HEADER_READ_TIMEOUT_S + settings.KEEP_ALIVE_TIMEOUT_S,
                self._headers_overdue,
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.cancel()
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


class Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # uvicorn re-raises SIGTERM after a clean shutdown, so the process would exit 143; a
            # SIGTERM is how an orchestrator stops the service normally, so exit 0 instead.
            self._captured_signals.clear()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--host", default=settings.HOST, help="address to bind (HOST)")
    parser.add_argument("--port", type=int, default=settings.PORT, help="port to bind (PORT)")
    args = parser.parse_args()
    config = uvicorn.Config(
        "app.main:app",
        host=args.host,
        port=args.port,
        http=HeaderDeadlineH11Protocol,
        # The app reads X-Forwarded-For itself (ForwardedForMiddleware): uvicorn's would take
        # any string for the client's address, and name it in every access log line.
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=settings.KEEP_ALIVE_TIMEOUT_S,
        limit_concurrency=settings.LIMIT_CONCURRENCY,
        timeout_graceful_shutdown=settings.GRACEFUL_SHUTDOWN_TIMEOUT_S,
        # Logging is configured by the app (loguru); uvicorn's own dictConfig would undo it.
        log_config=None,
    )
    Server(config).run()


if __name__ == "__main__":
    main()

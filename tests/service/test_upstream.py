"""/api/v1/analysis against a real socket that accepts and never answers, or refuses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.ml.indicators import MIN_CANDLES
from app.services import commentary

from .conftest import ClientFactory
from .helpers import make_candles, make_settings

URL = "/api/v1/analysis"


class SilentServer:
    """Accepts every connection and never sends a byte; counts what it accepted."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The openai client's own httpx client honours the environment's proxies.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def client_for(client_factory: ClientFactory, port: int, **settings: object) -> TestClient:
    client = client_factory(
        make_settings(
            OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", **settings
        )
    )
    assert client.get("/ready").status_code == 200  # the signal model trained: not timed
    return client


def analyse(client: TestClient) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    response = client.post(URL, json={"candles": make_candles(MIN_CANDLES)})
    return response.status_code, dict(response.headers), time.monotonic() - started


def test_a_silent_upstream_is_504_within_the_deadline(
    client_factory: ClientFactory, silent: SilentServer
) -> None:
    client = client_for(client_factory, silent.port, OPENAI_DEADLINE_S=1.0)
    status, _, seconds = analyse(client)
    assert status == 504
    assert seconds < 5, f"held {seconds:.1f} s for a 1 s deadline"


def test_a_refused_connection_is_502(client_factory: ClientFactory) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    status, _, _ = analyse(client_for(client_factory, port))
    assert status == 502


def test_a_dead_upstream_opens_the_breaker(
    client_factory: ClientFactory, silent: SilentServer
) -> None:
    client = client_for(
        client_factory,
        silent.port,
        OPENAI_DEADLINE_S=0.5,
        OPENAI_BREAKER_FAILURES=2,
        OPENAI_BREAKER_COOLDOWN_S=60,
    )
    assert [analyse(client)[0] for _ in range(2)] == [504, 504]
    tried = len(silent.accepted)
    status, headers, _ = analyse(client)
    assert status == 503
    assert 1 <= int(headers["retry-after"]) <= 60
    assert len(silent.accepted) == tried, "the open breaker still called the upstream"


def test_the_breaker_reopens_on_one_failure_after_its_cool_down_and_closes_on_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(commentary.time, "monotonic", lambda: now[0])
    breaker = commentary.Breaker(failures=3, cooldown_s=10)
    for _ in range(3):
        breaker.check()
        breaker.record(ok=False)
    with pytest.raises(commentary.CommentaryCoolingDownError):
        breaker.check()
    now[0] = 10.5  # cooled down: one more failure opens it again
    breaker.check()
    breaker.record(ok=False)
    with pytest.raises(commentary.CommentaryCoolingDownError):
        breaker.check()
    now[0] = 21.0
    breaker.record(ok=True)  # a success: three failures in a row again before it opens
    for _ in range(2):
        breaker.record(ok=False)
    breaker.check()

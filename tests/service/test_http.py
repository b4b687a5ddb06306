"""HTTP framing and semantics: uvicorn's (h11) against a real server, the app's via TestClient."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient
from service_images.registry import free_port

from app.ml.indicators import MIN_CANDLES

from .helpers import make_candles

SERVICE_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "python-ai-service")
GET_ROUTES = ["/health", "/ready", "/api/v1/capabilities", "/api/v1/history"]


@contextmanager
def serving(**settings: str) -> Iterator[tuple[tuple[str, int], subprocess.Popen[str]]]:
    """`python -m app`, the images' command, on a free loopback port; its stderr is piped."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SERVICE_ROOT, "PORT": str(port), **settings}
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5, trust_env=False)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        # /ready trains the signal model on first use: done here, not inside a test's wait.
        httpx.get(f"http://127.0.0.1:{port}/ready", timeout=120, trust_env=False)
        yield ("127.0.0.1", port), process
    finally:
        process.terminate()
        process.communicate(timeout=20)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    with serving(LOG_LEVEL="WARNING") as (address, _):
        yield address


def exchange(address: tuple[str, int], request: bytes, wait_s: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes; what came back, and whether the server closed the connection."""
    with socket.create_connection(address, timeout=wait_s) as connection:
        connection.sendall(request)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
    return received, True


def test_content_length_with_transfer_encoding_is_400_and_closed(
    server: tuple[str, int],
) -> None:
    body = json.dumps({"candles": make_candles(MIN_CANDLES)}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (
        b"POST /api/v1/indicators HTTP/1.1\r\nHost: service\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked
    )
    received, closed = exchange(server, request)
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert closed, "the connection stayed open after a request with both framings"


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_200_without_a_body(server: tuple[str, int], path: str) -> None:
    request = f"HEAD {path} HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n".encode()
    received, _ = exchange(server, request)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert body == b""


def test_a_trailing_slash_never_redirects_to_the_clients_host(client: TestClient) -> None:
    response = client.get(
        "/api/v1/capabilities/", headers={"host": "evil.example"}, follow_redirects=False
    )
    assert "evil.example" not in response.headers.get("location", "")
    assert response.status_code == 404


UTF_16_32 = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", [*UTF_16_32, "utf-8-sig"])
def test_json_that_is_not_utf8_is_400(client: TestClient, encoding: str) -> None:
    body = json.dumps({"candles": make_candles(MIN_CANDLES)}).encode(encoding)
    response = client.post(
        "/api/v1/indicators", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text[:200]
    assert response.json()["detail"] == "request body is not UTF-8 JSON"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(client: TestClient, content_type: str) -> None:
    body = json.dumps({"candles": make_candles(MIN_CANDLES)})
    response = client.post(
        "/api/v1/indicators", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 415, response.text[:200]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    body = json.dumps({"candles": make_candles(MIN_CANDLES)})
    response = client.post(
        "/api/v1/indicators", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text[:200]


def test_no_server_header(server: tuple[str, int]) -> None:
    response = httpx.get(f"http://{server[0]}:{server[1]}/health", trust_env=False)
    assert "server" not in response.headers


def test_only_an_ip_address_from_x_forwarded_for_is_the_client() -> None:
    """From a trusted proxy, a hop that is no IP address neither keys the rate limit nor reaches
    the log: both forged values below count as the proxy itself."""
    settings = {"TRUSTED_PROXIES": "127.0.0.1", "RATE_LIMIT": "1/minute", "LOG_LEVEL": "INFO"}
    with serving(**settings) as ((host, port), process):
        codes = [
            httpx.get(
                f"http://{host}:{port}/api/v1/capabilities",
                headers={"x-forwarded-for": forged},
                trust_env=False,
            ).status_code
            for forged in ("forged-1", "forged-2 \u001b[31m")
        ]
        process.terminate()
        _, log = process.communicate(timeout=20)
    assert codes == [200, 429]
    assert "forged" not in log


def test_probes_answer_while_idle_connections_fill_the_limit() -> None:
    """LIMIT_CONCURRENCY counts open connections: idle ones (a client's pool, or an attack) had
    the health check answered 503 and the container killed. The API itself stays limited."""
    with serving(LOG_LEVEL="WARNING", LIMIT_CONCURRENCY="5") as ((host, port), _):
        idle = [socket.create_connection((host, port)) for _ in range(8)]
        try:
            with httpx.Client(base_url=f"http://{host}:{port}", trust_env=False) as client:
                codes = {path: client.get(path).status_code for path in GET_ROUTES}
        finally:
            for connection in idle:
                connection.close()
    assert codes == {
        "/health": 200,
        "/ready": 200,
        "/api/v1/capabilities": 503,
        "/api/v1/history": 503,
    }

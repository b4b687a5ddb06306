"""/health, /ready, /api/v1/capabilities and the lazy-import start-up contract."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from service_images.registry import free_port

import app as app_package
from app.ml.indicators import MIN_CANDLES
from app.schemas import HistoryEntry

from .conftest import ClientFactory
from .helpers import make_candles, make_settings

SERVICE_ROOT = Path(app_package.__file__).resolve().parent.parent
HEAVY_MODULES = ("pandas", "sklearn", "ta", "torch", "tensorflow", "openai", "motor")


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_each_check(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"signal_model": "ok", "history_memory": "ok"}
    assert body["history"]["store"] == "memory"


class _UnreachableHistory:
    kind = "mongodb"

    async def add(self, entry: HistoryEntry) -> None:
        raise ConnectionError("down")

    async def recent(self, limit: int) -> list[HistoryEntry]:
        raise ConnectionError("down")

    async def ping(self) -> None:
        raise ConnectionError("down")

    async def close(self) -> None:
        return None


def test_ready_is_degraded_not_503_when_history_is_unreachable(
    client_factory: ClientFactory,
) -> None:
    # History is best effort: the pod stays in the load balancer and says what is wrong.
    client = client_factory(history=_UnreachableHistory())
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"] == {"signal_model": "ok", "history_mongodb": "degraded: ConnectionError"}


def test_capabilities_match_installed_packages(client_factory: ClientFactory) -> None:
    client = client_factory(make_settings(IMAGE_VARIANT="ci", EXPOSE_VERSIONS=True))
    body = client.get("/api/v1/capabilities").json()
    assert body["image_variant"] == "ci"
    assert body["libraries"]["scikit-learn"] == {
        "available": True,
        "version": importlib.metadata.version("scikit-learn"),
    }
    for name in ("torch", "tensorflow"):
        installed = importlib.util.find_spec(name) is not None
        assert body["libraries"][name]["available"] is installed
        assert (name in body["forecast_backends"]) is installed


def _run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(SERVICE_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_event_loops_process_imports_no_ml_library_even_once_it_computed() -> None:
    # A fresh interpreter, because this test process has long imported pandas and friends. The
    # worker processes import them; the one that serves the probes never does.
    code = f"""
import json, sys
from fastapi.testclient import TestClient
from app import main
candles = {make_candles(MIN_CANDLES)!r}
with TestClient(main.create_app()) as client:
    assert client.get("/health").status_code == 200
    assert client.get("/api/v1/capabilities").status_code == 200
    indicators = client.post("/api/v1/indicators", json={{"candles": candles}})
    assert indicators.status_code == 200, indicators.text
    assert indicators.json()["count"] == len(candles)
print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))
"""
    assert json.loads(_run_python(code)) == []


def test_uvicorn_serves_health_and_json_logs(tmp_path: Path) -> None:
    """The image's command starts, answers /health and logs JSON under LOG_JSON=true.

    The time bound is loose on purpose: the 3 s budget is the CI image's, checked by the image
    contract tests; here it only catches a gross regression (the import test above is the
    precise guard against heavy imports at start-up) without flaking on a busy machine.
    """
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SERVICE_ROOT), "LOG_JSON": "true", "IMAGE_VARIANT": "ci"}
    # uvicorn's CLI dies of the SIGTERM it re-raises, before multiprocessing removes the worker
    # fork server's socket directory: it goes to tmp_path, not /tmp (`python -m app` exits 0).
    env["TMPDIR"] = str(tmp_path)
    started = time.monotonic()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = started + 15.0
        status = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code
                break
            except httpx.TransportError:
                time.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    assert status == 200, stderr
    assert elapsed < 10.0, f"/health took {elapsed:.2f} s"
    # LOG_JSON=true: every log line, uvicorn's included, is a JSON record.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no log output"
    assert all(json.loads(line)["record"]["message"] is not None for line in lines)

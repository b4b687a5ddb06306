"""The service in the image: healthy, answering, and honest about its backends."""

from __future__ import annotations

import math
import time
from typing import Any

import docker
import docker.models.containers
import docker.models.images
import httpx
import pytest
from conftest import STARTUP_DEADLINE_S, Background, Emulation
from service_api import BACKENDS, candles

from service_images.containers import Service
from service_images.variants import Variant


def test_becomes_healthy(service: Service, emulation: Emulation) -> None:
    service.wait_until("healthy", emulation.scaled(STARTUP_DEADLINE_S))
    health = service.container.attrs["State"]["Health"]
    assert health["FailingStreak"] == 0, health["Log"][-3:]


def test_health_answers(service: Service) -> None:
    response = service.get("/health")
    assert response.status_code == 200, response.text


def test_capabilities_match_the_variant(service: Service, variant: Variant) -> None:
    response = service.get("/api/v1/capabilities")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["image_variant"] == variant.name
    available = {name for name, lib in body["libraries"].items() if lib["available"]}
    assert "scikit-learn" in available, body
    assert available & set(BACKENDS) == set(variant.backends), body
    assert set(body["forecast_backends"]) == set(variant.backends), body


def test_indicators_compute(service: Service) -> None:
    response = service.post("/api/v1/indicators", json={"candles": candles()})
    assert response.status_code == 200, response.text
    latest = response.json()["latest"]
    assert all(isinstance(latest[name], float) for name in ("rsi", "macd", "ema", "atr")), latest


def test_forecast_runs_or_says_which_image_lacks_the_backend(
    service: Service, variant: Variant
) -> None:
    closes = [c["close"] for c in candles(48)]
    for backend in BACKENDS:
        response = service.post(
            "/api/v1/forecast", params={"backend": backend}, json={"closes": closes, "horizon": 3}
        )
        if backend in variant.backends:
            assert response.status_code == 200, f"{backend}: {response.text}"
            forecast = response.json()["forecast"]
            assert len(forecast) == 3, forecast
            assert all(math.isfinite(v) for v in forecast), forecast
        else:
            assert response.status_code == 503, f"{backend}: {response.text}"
            assert backend in response.text, response.text
            assert variant.name in response.text, response.text


def test_runs_hardened(service: Service) -> None:
    """The session's container, which every other test uses, runs hardened: really so."""
    host_config = service.container.attrs["HostConfig"]
    hardening = {
        "read-only root": host_config["ReadonlyRootfs"],
        "no capabilities": host_config["CapDrop"] == ["ALL"],
        "no-new-privileges": "no-new-privileges" in (host_config["SecurityOpt"] or []),
        "only /tmp writable": set(host_config["Tmpfs"] or {}) == {"/tmp"},
    }
    assert all(hardening.values()), f"the session's container is not hardened: {hardening}"
    code, output = service.run("sh", "-c", "touch /app/probe-write", timeout=10)
    assert "Read-only file system" in output, f"a write to /app: exit {code}, {output!r}"
    response = service.post("/api/v1/indicators", json={"candles": candles()})
    assert response.status_code == 200, f"{response.text}\n{service.logs()}"


def test_answers_within_the_health_checks_start_period(
    background: Background,
    image: docker.models.images.Image,
    variant: Variant,
    emulation: Emulation,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The container answers /health before its HEALTHCHECK's start period is over, so no failed
    check ever counts against it. The time is reported; its budget is the bench's."""
    answered_after = background.answered.result()
    check = image.attrs["Config"].get("Healthcheck") or {}
    start_period = emulation.scaled(check.get("StartPeriod", 0) / 1e9)
    with capsys.disabled():
        print(
            f"\nstart-up: /health answered {answered_after:.2f} s after the container started, "
            f"beside the contract's own work (start period {start_period:g} s; the bench times "
            f"it alone against {variant.budgets.health_s:g} s)"
        )
    assert answered_after <= start_period, (
        f"/health answered {answered_after:.2f} s after the container started, after the "
        f"health check's {start_period:g} s start period"
    )


@pytest.mark.stops_the_service
def test_sigterm_exits_0_within_budget(
    service: Service, variant: Variant, emulation: Emulation
) -> None:
    """`docker stop`'s SIGTERM, with a client's keep-alive connection open: exit 0, in time."""
    budget = variant.budgets.stop_s
    with httpx.Client(trust_env=False) as client:
        assert client.get(service.url + "/health", timeout=5).status_code == 200
        service.container.kill(signal="SIGTERM")
        seconds = wait_for_exit(service.container, emulation.scaled(budget))
        state = service.container.attrs["State"]
        assert seconds is not None, (
            f"still {state['Status']} {emulation.scaled(budget):g} s after SIGTERM (budget "
            f"{budget:g} s)\n{service.logs()}"
        )
        assert state["ExitCode"] == 0, (
            f"exit code {state['ExitCode']} {seconds:.2f} s after SIGTERM, expected 0\n"
            f"{service.logs()}"
        )
    emulation.skip_time_budget(f"stop (exit 0 after {seconds:.2f} s under emulation)")
    assert seconds <= budget, f"exit 0 {seconds:.2f} s after SIGTERM; the budget is {budget:g} s"


def wait_for_exit(container: docker.models.containers.Container, deadline_s: float) -> float | None:
    """Seconds until the container exited, or None if it still runs after `deadline_s`."""
    started = time.monotonic()
    while (seconds := time.monotonic() - started) <= deadline_s:
        container.reload()
        if container.status == "exited":
            return seconds
        time.sleep(0.05)
    return None

"""The one way to start a container of an image: its service on loopback, always removed."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import docker.models.containers
import httpx

from service_images import ledger
from service_images.errors import ServiceNotReady, ToolError
from service_images.variants import PROJECT_LABEL

SERVICE_PORT = "8000/tcp"
PROBE = (Path(__file__).parent / "image_probe.py").read_text(encoding="utf-8")
"""What an image holds, from inside it: `python -c PROBE REQUEST` (image_probe.py says what)."""


@dataclass
class Service:
    """A running container of an image, its service port published on 127.0.0.1 only."""

    container: docker.models.containers.Container
    url: str
    started: float
    """time.monotonic() when the container was started."""

    def logs(self) -> str:
        with contextlib.suppress(docker.errors.NotFound):
            return bytes(self.container.logs(tail=80)).decode(errors="replace")
        return "(container gone)"

    # trust_env=False: an HTTP(S)_PROXY of the machine must not route loopback calls.
    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 60)
        return httpx.get(self.url + path, trust_env=False, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 180)  # the full image fits torch/TensorFlow models
        return httpx.post(self.url + path, trust_env=False, **kwargs)

    def run(self, *command: str, timeout: int = 240, user: str = "") -> tuple[int, str]:
        """Run a command in the container; coreutils' timeout kills it after `timeout` s."""
        try:
            exit_code, output = self.container.exec_run(
                ["timeout", str(timeout), *command], user=user
            )
        except docker.errors.APIError as error:  # 409: the container is not running (any more)
            raise ServiceNotReady(
                f"cannot run {command[0]} in the container: {error.explanation or error}; its "
                f"last logs:\n{self.logs()}"
            ) from error
        assert isinstance(output, bytes)  # neither streamed nor demultiplexed
        return -1 if exit_code is None else exit_code, output.decode(errors="replace")

    def probe(self, request: Mapping[str, Any], timeout: int = 240) -> dict[str, Any]:
        """The in-image probe's answer (PROBE), from one exec in this container."""
        code, output = self.run("python", "-c", PROBE, json.dumps(request), timeout=timeout)
        if code != 0:
            raise ToolError(f"the probe failed in the container (exit {code}):\n{output[-3000:]}")
        answer: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return answer

    def wait_until(self, state: Literal["answers", "healthy"], deadline_s: float) -> float:
        """Poll until /health answers, or Docker reports `healthy`; seconds since the start."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self.container.reload()
            health = self.container.attrs["State"].get("Health", {}).get("Status")
            if self.container.status == "exited" or health == "unhealthy":
                break
            if state == "healthy":
                if health == "healthy":
                    return time.monotonic() - self.started
            else:
                with contextlib.suppress(httpx.TransportError):
                    if self.get("/health", timeout=1).status_code == 200:
                        return time.monotonic() - self.started
            time.sleep(0.05)
        elapsed = time.monotonic() - self.started
        if self.container.status == "exited":
            code = self.container.attrs["State"].get("ExitCode")
            what = f"the container exited (code {code}) {elapsed:.1f} s after it started"
        elif health == "unhealthy":
            what = f"Docker reported the container unhealthy {elapsed:.1f} s after it started"
        else:
            goal = "answer /health" if state == "answers" else "become healthy"
            what = f"the container did not {goal} within {deadline_s:.0f} s"
        raise ServiceNotReady(f"{what}; its last logs:\n{self.logs()}")


@contextlib.contextmanager
def running(sdk: docker.DockerClient, image: str, **run_options: Any) -> Iterator[Service]:
    """Start the image's own default command; the container is always removed afterwards (and
    carries this checkout's label, so `invoke clean` finds it if this process is killed)."""
    # Loopback only, on a port the engine picks (the stubs do not know None means that).
    ports: dict[str, Any] = {SERVICE_PORT: ("127.0.0.1", None)}
    labels = {PROJECT_LABEL: "true", **ledger.container_labels(), **run_options.pop("labels", {})}
    container = sdk.containers.create(image, ports=ports, labels=labels, **run_options)
    try:
        started = time.monotonic()
        container.start()
        container.reload()
        published = container.ports.get(SERVICE_PORT)
        if not published:  # it already exited: no port is published for a stopped container
            logs = bytes(container.logs(tail=80)).decode(errors="replace")
            raise ServiceNotReady(
                f"the container {container.status} at once (no port {SERVICE_PORT} published); "
                f"its last logs:\n{logs}"
            )
        host_port = published[0]["HostPort"]
        yield Service(container, f"http://127.0.0.1:{host_port}", started)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

"""The Docker engine and the BuildKit front end the machine offers.

Builds go through the docker CLI (docker-py's builder is the legacy one: no `RUN --mount`, no
`--secret`); everything else (inspect, run, exec, stats) goes through the docker SDK. Both honour
DOCKER_HOST.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

import docker
import docker.errors

from service_images.errors import BaseImageMissing, BuildKitMissing, EngineUnreachable


def client() -> docker.DockerClient:
    """A connected SDK client, or EngineUnreachable saying what to do."""
    where = os.environ.get("DOCKER_HOST", "the default socket")
    try:
        sdk = docker.from_env(timeout=120)
        sdk.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:160]
        raise EngineUnreachable(
            f"cannot reach the Docker engine at {where} ({reason}); "
            "start it (scripts/bootstrap.sh does) or point DOCKER_HOST at one."
        ) from None
    return sdk


@dataclass(frozen=True)
class BuildFrontEnd:
    """How to run a BuildKit build with the client on this machine."""

    command: tuple[str, ...]
    env: dict[str, str]
    description: str
    supports_builder: bool


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@functools.cache
def build_front_end() -> BuildFrontEnd:
    """The buildx plugin when present, else a pre-23 client with BuildKit built in."""
    if shutil.which("docker") is None:
        raise BuildKitMissing("no docker client on PATH: install one (scripts/bootstrap.sh does).")
    buildx = _run("docker", "buildx", "version")
    if buildx.returncode == 0:
        version = buildx.stdout.split()[1] if buildx.stdout.split()[1:] else "?"
        return BuildFrontEnd(
            ("docker", "buildx", "build", "--load"), {}, f"docker buildx {version}", True
        )
    client_version = _run("docker", "version", "--format", "{{.Client.Version}}").stdout.strip()
    major = client_version.split(".")[0]
    if major.isdigit() and int(major) < 23:
        # Clients before 23.0 carry BuildKit themselves and use it when asked to.
        return BuildFrontEnd(
            ("docker", "build"),
            {"DOCKER_BUILDKIT": "1"},
            f"docker {client_version} (built-in BuildKit)",
            False,
        )
    raise BuildKitMissing(
        f"the docker client ({client_version or 'unknown version'}) has no buildx plugin, so it "
        "cannot build with BuildKit: install docker-buildx (scripts/bootstrap.sh does)."
    )


def image_exists(sdk: docker.DockerClient, tag: str) -> bool:
    try:
        sdk.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_base_image(sdk: docker.DockerClient, image: str) -> None:
    """Make sure the base image is local, pulling it where a registry is reachable."""
    if image_exists(sdk, image):
        return
    try:
        sdk.images.pull(image)
    except docker.errors.APIError:
        raise BaseImageMissing(
            f"base image {image} is neither here nor pullable: run `invoke base-image` to build "
            "an equivalent from Debian packages, or pass --base-image."
        ) from None

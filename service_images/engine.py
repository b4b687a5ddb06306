"""The Docker engine: the only module that runs the docker CLI or opens an SDK client.

Builds go through the CLI (docker-py's builder is the legacy one: no `RUN --mount`, no
`--secret`), as do BuildKit's cache commands and `docker import`; everything else (inspect, run,
exec, stats) goes through the docker SDK. Both honour DOCKER_HOST.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from service_images.errors import BaseImageMissing, BuildKitMissing, EngineError, EngineUnreachable


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


def cli(
    *args: str,
    timeout: float = 600,
    stdin: IO[bytes] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS...`, output captured; the caller decides what a non-zero exit means."""
    return subprocess.run(
        ["docker", *args],
        stdin=stdin,
        env={**os.environ, **env} if env else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_word(*args: str, index: int = 0) -> str | None:
    """One word of a docker command's output (a version, say), or None when it fails."""
    try:
        result = cli(*args, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = result.stdout.split()
    return words[index] if result.returncode == 0 and len(words) > index else None


MIN_ENGINE = 26
"""The oldest Docker Engine the project supports: the oldest proven here (Debian 13's 26.1)."""
CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"


@dataclass(frozen=True)
class EngineFacts:
    """What the engine is, as far as the images' builds and checks depend on it."""

    version: str
    store: str
    """`containerd` (the containerd image store), else the classic store's graph driver."""
    cgroup_version: str
    buildkit: str
    """The version of BuildKit the default builder runs, as buildx reports it."""

    @property
    def major(self) -> int:
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    @property
    def containerd_store(self) -> bool:
        return self.store == "containerd"

    def describe(self) -> str:
        store = "containerd image store" if self.containerd_store else f"{self.store} store"
        return f"Docker Engine {self.version} ({store}, cgroup v{self.cgroup_version})"

    def limits(self) -> list[str]:
        """What this engine cannot do that the project uses; empty on a current engine."""
        found = []
        if self.major < MIN_ENGINE:
            found.append(
                f"it is older than Docker {MIN_ENGINE}, the oldest supported: before 25 it ignores "
                "HEALTHCHECK --start-interval, and BuildKit before 0.12 rejects it"
            )
        if not self.containerd_store:
            found += [
                "the classic store keeps one platform per tag (no --platform "
                "linux/amd64,linux/arm64) and exports no build cache on the docker driver "
                "(--cache-to needs --builder, a docker-container builder)",
                "a push compresses every layer again (gzip, one core); the containerd store "
                "pushes the layers as BuildKit compressed them",
            ]
        return found


def facts(sdk: docker.DockerClient) -> EngineFacts:
    info = sdk.info()
    return EngineFacts(
        version=str(info.get("ServerVersion", "unknown")),
        store=_store(info),
        cgroup_version=str(info.get("CgroupVersion", "?")),
        buildkit=buildkit_version(),
    )


def _store(info: Mapping[str, Any]) -> str:
    status = {str(key): str(value) for key, value in info.get("DriverStatus") or []}
    if status.get("driver-type") == CONTAINERD_SNAPSHOTTER:
        return "containerd"
    return str(info.get("Driver", "unknown"))


def containerd_store(sdk: docker.DockerClient) -> bool:
    """Whether the engine keeps images in the containerd store (one tag, several platforms)."""
    return _store(sdk.info()) == "containerd"


@functools.cache
def buildx_version() -> str:
    """The buildx plugin's version: every build goes through it (BuildKitMissing without it)."""
    if shutil.which("docker") is None:
        raise BuildKitMissing("no docker client on PATH: install one (scripts/bootstrap.sh does).")
    found = cli("buildx", "version", timeout=30)
    if found.returncode != 0:
        raise BuildKitMissing(
            "the docker client has no buildx plugin, so it cannot build with BuildKit: install "
            "docker-buildx (scripts/bootstrap.sh does)."
        )
    words = found.stdout.split()
    return words[1] if len(words) > 1 else "?"


def buildkit_version(builder: str | None = None) -> str:
    """BuildKit's version in the builder (`docker buildx inspect`), or "unknown"."""
    found = cli("buildx", "inspect", *([builder] if builder else []), timeout=60)
    for line in found.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "BuildKit version" and value.strip():
            return value.strip()
    return "unknown"


def build_command(args: Sequence[str]) -> list[str]:
    buildx_version()
    return ["docker", "buildx", "build", *args]


def run_build(
    args: Sequence[str], *, echo: IO[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run a BuildKit build (`args` after `docker buildx build`); (exit code, output lines).

    Output is echoed line by line to `echo` (stdout by default) while it runs, and kept for the
    failure report.
    """
    lines: list[str] = []
    out = echo or sys.stdout
    with subprocess.Popen(
        build_command(args),
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                out.write(line)
                lines.append(line.rstrip("\n"))
            out.flush()
        except BaseException:
            process.terminate()  # the build stops with its caller (a full disk, Ctrl-C)
            raise
    return process.returncode, lines


def run_build_on_terminal(args: Sequence[str]) -> int:
    """A build that draws BuildKit's own display (`--progress tty`): nothing to capture."""
    return subprocess.run(build_command(args), check=False).returncode


def load_archive(path: Path) -> None:
    """`docker load` an OCI archive: the containerd store keeps its blobs as they are, so the
    image pushes with the digests the archive has."""
    with path.open("rb") as archive:
        loaded = cli("load", "--quiet", stdin=archive, timeout=3600)
    if loaded.returncode != 0:
        reason = (loaded.stderr or loaded.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EngineError(f"docker load of the built image failed: {reason[0]}")


def engine_id(sdk: docker.DockerClient) -> str:
    """The engine's own id (`docker info`): what this checkout made is recorded per engine."""
    return str(sdk.info().get("ID") or os.environ.get("DOCKER_HOST", "default"))


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

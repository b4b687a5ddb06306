"""The Docker engine: the only module that runs the docker CLI or opens an SDK client.

Builds go through the CLI (docker-py's builder is the legacy one: no `RUN --mount`, no
`--secret`), as do BuildKit's cache commands and `docker import`; everything else (inspect, run,
exec, stats) goes through the docker SDK. Both honour DOCKER_HOST.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

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


def cli(
    *args: str, timeout: float = 600, stdin: IO[bytes] | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS...`, output captured; the caller decides what a non-zero exit means."""
    return subprocess.run(
        ["docker", *args],
        stdin=stdin,
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


@dataclass(frozen=True)
class BuildFrontEnd:
    """How to run a BuildKit build with the client on this machine."""

    command: tuple[str, ...]
    env: dict[str, str]
    description: str
    is_buildx: bool
    """buildx can use other builders, import/export cache and list cache records."""


@functools.cache
def build_front_end() -> BuildFrontEnd:
    """The buildx plugin when present, else a pre-23 client with BuildKit built in."""
    if shutil.which("docker") is None:
        raise BuildKitMissing("no docker client on PATH: install one (scripts/bootstrap.sh does).")
    buildx = cli("buildx", "version", timeout=30)
    if buildx.returncode == 0:
        version = buildx.stdout.split()[1] if buildx.stdout.split()[1:] else "?"
        return BuildFrontEnd(
            ("docker", "buildx", "build", "--load"), {}, f"docker buildx {version}", True
        )
    client_version = cli("version", "--format", "{{.Client.Version}}", timeout=30).stdout.strip()
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


def run_build(
    args: Sequence[str], *, echo: IO[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run a BuildKit build (`args` after the front end's command); (exit code, output lines).

    Output is echoed line by line to `echo` (stdout by default) while it runs, and kept for the
    failure report.
    """
    front_end = build_front_end()
    command = [*front_end.command, *args]
    lines: list[str] = []
    out = echo or sys.stdout
    with subprocess.Popen(
        command,
        env={**os.environ, **front_end.env, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            lines.append(line.rstrip("\n"))
        out.flush()
    return process.returncode, lines


def run_build_on_terminal(args: Sequence[str]) -> int:
    """A build that draws BuildKit's own display (`--progress tty`): nothing to capture."""
    front_end = build_front_end()
    command = [*front_end.command, *args]
    return subprocess.run(command, env={**os.environ, **front_end.env}, check=False).returncode


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


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the SDK's `image.save()`), for tarfile.

    `seen`, if given, gets every chunk first: the contract looks for needles in every byte of
    the saved image while the same pass reads its layers.
    """

    def __init__(
        self, chunks: Iterable[bytes], seen: Callable[[bytes], None] | None = None
    ) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._seen = seen
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            if self._seen is not None:
                self._seen(chunk)
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_saved(
    chunks: Iterable[bytes], seen: Callable[[bytes], None] | None = None
) -> tarfile.TarFile:
    """`docker save`'s stream as a tar read front to back, 1 MiB at a time (tarfile's default
    of 10 KiB records costs seconds of CPU over a large image); `seen` as for ChunkReader."""
    stream = io.BufferedReader(ChunkReader(chunks, seen), 8 << 20)
    return tarfile.open(fileobj=stream, mode="r|", bufsize=1 << 20)

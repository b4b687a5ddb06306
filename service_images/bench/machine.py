"""Facts about the machine a bench runs on: hardware, engine, tool versions, other builds."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker

from service_images import engine
from service_images.variants import VARIANTS


def is_build_command(argv: Sequence[str]) -> bool:
    """Whether a process is a docker build (`docker build`, `docker buildx build`, ...)."""
    if not argv or Path(argv[0]).name not in {"docker", "docker-buildx"}:
        return False
    words = [word for word in argv[1:] if not word.startswith("-")][:3]
    for index, word in enumerate(words):
        if word == "build" and (index == 0 or words[index - 1] in {"buildx", "image", "builder"}):
            return True
    return False


def other_builds(proc: Path = Path("/proc"), own_pid: int | None = None) -> list[tuple[int, str]]:
    """Docker builds running on this machine that are not ours: (pid, command line)."""
    own = os.getpid() if own_pid is None else own_pid
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv if word]
        if is_build_command(words):
            found.append((int(entry.name), " ".join(words)[:120]))
    return sorted(found)


def machine_facts(sdk: docker.DockerClient) -> dict[str, Any]:
    info = sdk.info()
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1) if memory_kib else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "docker_server": sdk.version().get("Version"),
        "buildx": engine.cli_word("buildx", "version", index=1) or "none",
        "cgroup_version": info.get("CgroupVersion"),
        "storage_driver": info.get("Driver"),
        "image_store": "containerd" if engine.containerd_store(sdk) else "classic",
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _buildkit_version() -> str | None:
    inspected = engine.cli("buildx", "inspect", timeout=30)
    for line in inspected.stdout.splitlines():
        if line.lower().startswith("buildkit"):
            return line.split(":", 1)[1].strip()
    return None


def tool_versions() -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "docker CLI": engine.cli_word("version", "--format", "{{.Client.Version}}"),
        "BuildKit": _buildkit_version(),
    }
    uv = re.search(r"^ARG UV_VERSION=(\S+)", VARIANTS["ci"].dockerfile.read_text(), re.MULTILINE)
    versions["uv (in our images)"] = uv.group(1) if uv else None
    for distribution in ("docker", "rich", "matplotlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[f"{distribution} (Python)"] = importlib.metadata.version(distribution)
    return {name: version for name, version in versions.items() if version}

"""The platforms the images are built for: linux/amd64 and linux/arm64, CPython 3.11.

One lock per variant covers both (markers such as `platform_machine == 'x86_64'` say which entries
a platform installs); this module says what each platform is to every reader: the docker
`--platform`, the marker environment the lock is evaluated in, the wheel tags it installs, its
Debian architecture and the base image tag that holds it. A platform other than the host's is
built and run under QEMU user emulation (binfmt_misc), where every timing is slower.
"""

from __future__ import annotations

import platform as host
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.tags import Tag, compatible_tags, cpython_tags

from service_images.errors import UnknownPlatform

PYTHON = (3, 11)
GLIBC = (2, 36)  # Debian 12 (bookworm), the base image's C library: newest manylinux it runs
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Platform:
    docker: str
    """As `docker --platform` and image configs say it: linux/amd64."""
    machine: str
    """`platform_machine` in the lock's markers, uname -m: x86_64."""
    debian: str
    """Debian's architecture name (mmdebstrap --architectures): amd64."""
    legacy_manylinux: tuple[str, ...]
    """The pre-PEP 600 manylinux names of this architecture, newest first."""

    @property
    def arch(self) -> str:
        """The image config's `Architecture`: amd64, arm64."""
        return self.docker.split("/", 1)[1]

    @property
    def native(self) -> bool:
        return self.machine == host.machine()

    def marker_environment(self) -> dict[str, str]:
        """The PEP 508 environment of the images' Python on this platform."""
        return {
            "implementation_name": "cpython",
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "python_full_version": f"{PYTHON[0]}.{PYTHON[1]}.0",
            "python_version": f"{PYTHON[0]}.{PYTHON[1]}",
            "sys_platform": "linux",
        }

    def installs(self, marker: str | None) -> bool:
        """Whether a lock entry with this marker (None: no marker) is installed here."""
        if not marker:
            return True
        # Marker.evaluate fills what is not given from this process: everything is given.
        return Marker(marker).evaluate(self.marker_environment())

    def wheel_tags(self) -> frozenset[Tag]:
        """Tags of the wheels uv may install here (CPython 3.11, glibc up to Debian 12's)."""
        platforms = [
            f"manylinux_{GLIBC[0]}_{minor}_{self.machine}" for minor in range(GLIBC[1], 16, -1)
        ]
        platforms += [f"{name}_{self.machine}" for name in self.legacy_manylinux]
        return frozenset(
            [
                *cpython_tags(PYTHON, abis=[f"cp{PYTHON[0]}{PYTHON[1]}"], platforms=platforms),
                *compatible_tags(PYTHON, f"cp{PYTHON[0]}{PYTHON[1]}", platforms),
            ]
        )

    def emulation_ready(self) -> bool:
        """The host runs this platform's binaries: natively, or through a registered QEMU."""
        if self.native:
            return True
        entry = BINFMT_DIR / f"qemu-{self.machine}"
        try:
            return entry.is_file() and entry.read_text().startswith("enabled")
        except OSError:
            return False


PLATFORMS: dict[str, Platform] = {
    p.docker: p
    for p in (
        Platform(
            "linux/amd64", "x86_64", "amd64", ("manylinux2014", "manylinux2010", "manylinux1")
        ),
        Platform("linux/arm64", "aarch64", "arm64", ("manylinux2014",)),
    )
}


def get_platform(name: str | None) -> Platform:
    """A platform by its docker name (arm64 and amd64 alone too); None: the host's."""
    if name is None:
        return host_platform()
    wanted = name if "/" in name else f"linux/{name}"
    try:
        return PLATFORMS[wanted]
    except KeyError:
        raise UnknownPlatform(name, tuple(PLATFORMS)) from None


def host_platform() -> Platform:
    for candidate in PLATFORMS.values():
        if candidate.native:
            return candidate
    raise UnknownPlatform(host.machine(), tuple(PLATFORMS))


def by_architecture(arch: str) -> Platform:
    """The platform of an image config's `Architecture` (amd64, arm64)."""
    return get_platform(f"linux/{arch}")


def base_image_for(base_image: str, target: Platform, *, one_platform_per_tag: bool) -> str:
    """The local tag of `base_image` for `target`. The containerd image store keeps both
    platforms under one tag; the classic store one platform per tag, so there another platform
    than the host's has a tag of its own (`python:3.11-slim-arm64`)."""
    if not one_platform_per_tag or target.native or "@" in base_image:
        return base_image
    name, _, tag = base_image.rpartition(":")
    if not name or "/" in tag:  # no tag: `python`, `host:5000/python`
        return f"{base_image}:latest-{target.arch}"
    return f"{name}:{tag}-{target.arch}"

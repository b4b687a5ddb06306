"""Debian packages pinned by hash: `debian-tools.lock` (the builds') and `debian-host.lock`
(the set-up's).

- debian-tools.lock: binutils for the install steps. The Dockerfiles' `tools` stage fetches these
  bookworm packages by their sha256 (apt-helper, without `apt-get update`: downloading and parsing
  Debian's index took longer than the CI image's installs) and unpacks them; the install steps
  mount that stage to strip what they install, so no image carries them. Where a pinned file is
  gone from Debian's archive (a point release replaced it), the stage installs binutils with
  apt-get instead and says so.
- debian-host.lock: what scripts/bootstrap.sh installs on a Debian 12 host from Debian 13: the
  Docker engine (Debian 12's is 20.10), containerd, the CLI, buildx and cosign.

`invoke lock` writes both from the archive's index, for every platform the images are built for
(`render`). Columns: architecture, pool path, sha256.
"""

from __future__ import annotations

import lzma
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from service_images.errors import IndexUnreachable, MissingFile
from service_images.platforms import PLATFORMS, Platform
from service_images.variants import ROOT

MIRROR = "https://deb.debian.org/debian"
ENTRY = re.compile(r"^(?P<arch>[a-z0-9]+) (?P<path>pool/\S+\.deb) (?P<sha256>[0-9a-f]{64})$")


def binutils(target: Platform) -> set[str]:
    """strip and readelf for `target` (binutils-x86-64-linux-gnu) and the libraries they load."""
    return {
        f"binutils-{target.machine.replace('_', '-')}-linux-gnu",
        "libbinutils",
        "libctf-nobfd0",
    }


def host_packages(target: Platform) -> set[str]:
    return {"docker.io", "containerd", "docker-cli", "docker-buildx", "cosign"}


@dataclass(frozen=True)
class DebianLock:
    path: Path
    suite: str
    packages: Callable[[Platform], set[str]]
    header: str


TOOLS = DebianLock(
    ROOT / "debian-tools.lock",
    "bookworm",  # the base image's Debian release
    binutils,
    """\
# binutils' strip and readelf for the images' install steps (mounted, never in an image): Debian
# bookworm's packages for each architecture, fetched by sha256 from the archive's pool.
# Written by `invoke lock` from the archive's index. Columns: architecture, pool path, sha256.
""",
)
HOST = DebianLock(
    ROOT / "debian-host.lock",
    "trixie",
    host_packages,
    """\
# What scripts/bootstrap.sh installs on a Debian 12 (bookworm) host from Debian 13 (trixie): the
# Docker engine, containerd, the docker CLI, buildx and cosign, fetched by sha256 from the archive's
# pool. Debian 12's own engine is 20.10 (2020); these run there with Debian 12's glibc and runc.
# Written by `invoke lock` from the archive's index. Columns: architecture, pool path, sha256.
""",
)
LOCKS = (TOOLS, HOST)
LOCK = TOOLS.path  # the one the builds mount


def stanzas(index: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Debian `Packages` index, as field -> value (first lines only)."""
    for paragraph in index.split("\n\n"):
        fields = (line.split(":", 1) for line in paragraph.splitlines() if line[:1].strip())
        yield {name: value.strip() for name, value in fields}


def entries(lock: DebianLock, target: Platform, index: str) -> list[str]:
    """The lock lines of `target`'s packages, read from its `Packages` index."""
    wanted = lock.packages(target)
    found = {
        stanza["Package"]: f"{target.debian} {stanza['Filename']} {stanza['SHA256']}"
        for stanza in stanzas(index)
        if stanza.get("Package") in wanted
    }
    if missing := wanted - set(found):
        raise MissingFile(
            f"Debian {lock.suite} has no {', '.join(sorted(missing))} for {target.debian}: "
            "no lock file was written."
        )
    return [found[name] for name in sorted(found)]


def fetch_index(suite: str, target: Platform) -> str:
    import httpx  # here: the requirements check imports this module and never fetches

    url = f"{MIRROR}/dists/{suite}/main/binary-{target.debian}/Packages.xz"
    try:
        # trust_env: the machine's proxy and CA bundle, as for pip and uv.
        response = httpx.get(url, follow_redirects=True, timeout=120)
        response.raise_for_status()
    except httpx.HTTPStatusError as error:
        if error.response.status_code < 500 and error.response.status_code != 407:
            raise MissingFile(f"Debian's archive has no index {url}: {error}") from None
        raise IndexUnreachable(f"Debian's archive did not answer for {url}: {error}") from None
    except httpx.HTTPError as error:
        raise IndexUnreachable(
            f"Debian's archive is unreachable ({url}: {error or type(error).__name__}); "
            "check the network or proxy: nothing was written."
        ) from None
    return lzma.decompress(response.content).decode("utf-8")


def render(lock: DebianLock) -> str:
    """The lock's text for every platform in platforms.PLATFORMS, from Debian's index."""
    lines = [
        line
        for target in PLATFORMS.values()
        for line in entries(lock, target, fetch_index(lock.suite, target))
    ]
    return lock.header + "\n".join(lines) + "\n"


def lock_problems(root: Path) -> Iterator[str]:
    """Each lock is there, well formed, and pins each platform's packages."""
    for lock in LOCKS:
        yield from _problems(lock, root / lock.path.name)


def _problems(lock: DebianLock, path: Path) -> Iterator[str]:
    if not path.is_file():
        yield f"{path.name} is missing: run `invoke lock`."
        return
    pinned: dict[str, set[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if not (match := ENTRY.match(line)):
            yield f"{path.name} line {number} is not `arch pool/....deb sha256`: run `invoke lock`."
            continue
        package = match["path"].rsplit("/", 1)[1].split("_", 1)[0]
        pinned.setdefault(match["arch"], set()).add(package)
    for target in PLATFORMS.values():
        if missing := lock.packages(target) - pinned.get(target.debian, set()):
            yield (
                f"{path.name} pins no {', '.join(sorted(missing))} for {target.debian}: "
                "run `invoke lock`."
            )

"""binutils for the install steps, pinned by hash: `debian-tools.lock`.

The Dockerfiles' `tools` stage fetches these Debian packages by their sha256 (apt-helper, without
`apt-get update`: downloading and parsing Debian's index took longer than the CI image's installs)
and unpacks them; the install steps mount that stage to strip what they install, so no image
carries them. Where a pinned file is gone from Debian's archive (a point release replaced it),
the stage installs binutils with apt-get instead and says so. `invoke lock` writes the lock from
the archive's index, for every platform the images are built for (`render`).
"""

from __future__ import annotations

import lzma
import re
from collections.abc import Iterator
from pathlib import Path

from service_images.errors import IndexUnreachable, MissingFile
from service_images.platforms import PLATFORMS, Platform
from service_images.variants import ROOT

LOCK = ROOT / "debian-tools.lock"
MIRROR = "https://deb.debian.org/debian"
SUITE = "bookworm"  # the base image's Debian release
HEADER = f"""\
# binutils' strip and readelf for the images' install steps (mounted, never in an image): Debian
# {SUITE}'s packages for each architecture, fetched by sha256 from the archive's pool.
# Written by `invoke lock` from the archive's index. Columns: architecture, pool path, sha256.
"""
ENTRY = re.compile(r"^(?P<arch>[a-z0-9]+) (?P<path>pool/\S+\.deb) (?P<sha256>[0-9a-f]{64})$")


def packages(target: Platform) -> set[str]:
    """strip and readelf for `target` (binutils-x86-64-linux-gnu) and the libraries they load."""
    binutils = f"binutils-{target.machine.replace('_', '-')}-linux-gnu"
    return {binutils, "libbinutils", "libctf-nobfd0"}


def stanzas(index: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Debian `Packages` index, as field -> value (first lines only)."""
    for paragraph in index.split("\n\n"):
        fields = (line.split(":", 1) for line in paragraph.splitlines() if line[:1].strip())
        yield {name: value.strip() for name, value in fields}


def entries(target: Platform, index: str) -> list[str]:
    """The lock lines of `target`'s packages, read from its `Packages` index."""
    wanted = packages(target)
    found = {
        stanza["Package"]: f"{target.debian} {stanza['Filename']} {stanza['SHA256']}"
        for stanza in stanzas(index)
        if stanza.get("Package") in wanted
    }
    if missing := wanted - set(found):
        raise MissingFile(
            f"Debian {SUITE} has no {', '.join(sorted(missing))} for {target.debian}: "
            "no lock file was written."
        )
    return [found[name] for name in sorted(found)]


def fetch_index(target: Platform) -> str:
    import httpx  # here: the requirements check imports this module and never fetches

    url = f"{MIRROR}/dists/{SUITE}/main/binary-{target.debian}/Packages.xz"
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


def render() -> str:
    """debian-tools.lock's text for every platform in platforms.PLATFORMS, from Debian's index."""
    lines = [line for target in PLATFORMS.values() for line in entries(target, fetch_index(target))]
    return HEADER + "\n".join(lines) + "\n"


def lock_problems(root: Path) -> Iterator[str]:
    """The lock is there, well formed, and pins each platform's packages."""
    path = root / LOCK.name
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
        if missing := packages(target) - pinned.get(target.debian, set()):
            yield (
                f"{path.name} pins no {', '.join(sorted(missing))} for {target.debian}: "
                "run `invoke lock`."
            )

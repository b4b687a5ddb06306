"""debian-tools.lock's entries, read from a Debian `Packages` index (no network here)."""

from __future__ import annotations

import pytest

from service_images import debian_tools
from service_images.errors import MissingFile
from service_images.platforms import get_platform

AMD64 = get_platform("linux/amd64")


def stanza(package: str, version: str = "2.40-2", **fields: str) -> str:
    lines = [
        f"Package: {package}",
        f"Version: {version}",
        "Description: a multi-line field",
        " whose continuation lines: look like fields",
        f"Filename: pool/main/b/binutils/{package}_{version}_amd64.deb",
        f"SHA256: {package[:1] * 64}",
    ]
    return "\n".join(lines + [f"{name}: {value}" for name, value in fields.items()]) + "\n"


def test_each_wanted_package_gives_its_pool_path_and_hash() -> None:
    wanted = sorted(debian_tools.binutils(AMD64))
    assert wanted == ["binutils-x86-64-linux-gnu", "libbinutils", "libctf-nobfd0"]
    index = "\n".join(stanza(name) for name in [*wanted, "binutils-aarch64-linux-gnu", "gcc"])
    assert debian_tools.entries(debian_tools.TOOLS, AMD64, index) == [
        f"amd64 pool/main/b/binutils/{name}_2.40-2_amd64.deb {name[:1] * 64}" for name in wanted
    ]


def test_a_package_the_index_lacks_is_named() -> None:
    index = stanza("libbinutils") + "\n" + stanza("libctf-nobfd0")
    with pytest.raises(MissingFile, match="Debian bookworm has no binutils-x86-64-linux-gnu"):
        debian_tools.entries(debian_tools.TOOLS, AMD64, index)

"""Fixtures the tooling tests share."""

from __future__ import annotations

import pytest

from service_images import debian_tools
from service_images.platforms import Platform


@pytest.fixture
def debian_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's indexes, as the real Debian locks pin them: `invoke lock` in a test resolves on
    PyPI only (Debian's Packages.xz is tens of MB; debian_tools' own tests read an index)."""
    pinned = {
        lock.suite: [
            line.split()
            for line in lock.path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        ]
        for lock in debian_tools.LOCKS
    }

    def fetch_index(suite: str, target: Platform) -> str:
        return "\n\n".join(
            f"Package: {path.rpartition('/')[2].split('_')[0]}\nFilename: {path}\nSHA256: {sha256}"
            for arch, path, sha256 in pinned[suite]
            if arch == target.debian
        )

    monkeypatch.setattr(debian_tools, "fetch_index", fetch_index)

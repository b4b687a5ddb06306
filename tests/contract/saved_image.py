"""One streaming pass over `docker save`: what each layer installs, which files it should not
carry, and which needles it holds.

Reading a 9 GB image costs about a minute, so the contract reads it once, while the probe runs in
the container, and the tests that need its layers (the install tiers, leftovers, the build's CA
bundle) share the result. The needles are the build's CA certificates that the image's own trust
stores do not hold: a line of each one's signature, unique to it.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from service_images import engine
from service_images.variants import normalise

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.S)
# A distribution the image's venv holds: opt/venv/lib/python3.X/site-packages/NAME-VER.dist-info/
VENV_DIST_INFO = re.compile(r"^opt/venv/lib/python[\d.]+/site-packages/([^/]+?)-[^/-]+\.dist-info/")


@dataclass
class Layer:
    path: str
    distributions: set[str] = field(default_factory=set)
    leftovers: list[str] = field(default_factory=list)
    """Files at or under a `leftover` pattern (a later layer deleting them frees no byte)."""


@dataclass
class SavedImage:
    layers: list[Layer]
    """In the image's order, base first."""
    found: set[bytes]
    """The needles that occur anywhere in the saved image (layers, config, history)."""


class NeedleSearch:
    """Which needles occur in a stream of chunks, also across chunk boundaries."""

    def __init__(self, needles: set[bytes]) -> None:
        self._needles = needles
        self._overlap = max(map(len, needles), default=1) - 1
        self._tail = b""
        self.found: set[bytes] = set()

    def __call__(self, chunk: bytes) -> None:
        window = self._tail + chunk
        self.found |= {needle for needle in self._needles if needle in window}
        self._tail = window[-self._overlap :] if self._overlap else b""


def scan(chunks: Iterable[bytes], needles: set[bytes], leftover: Iterable[str] = ()) -> SavedImage:
    """Read a `docker save` stream once: each layer's venv distributions, its files at or under
    a `leftover` pattern (shell-style `*`, absolute), and the needles."""
    search = NeedleSearch(needles)
    patterns = (re.escape(pattern.lstrip("/")).replace(r"\*", ".*") for pattern in leftover)
    under = re.compile(f"(?:{'|'.join(patterns)})(?:/.*)?")
    layers: dict[str, Layer] = {}
    order: list[str] = []
    with engine.open_saved(chunks, search) as saved:
        for member in saved:
            blob = saved.extractfile(member) if member.isfile() else None
            if blob is None:
                continue
            if member.name.endswith("layer.tar"):
                layer = layers.setdefault(member.name, Layer(member.name))
                with tarfile.open(fileobj=blob, mode="r|", bufsize=1 << 20) as content:
                    for entry in content:
                        name = entry.name.removeprefix("./")
                        if match := VENV_DIST_INFO.match(name):
                            layer.distributions.add(normalise(match[1]))
                        elif leftover and not entry.isdir() and under.fullmatch(name):
                            layer.leftovers.append(f"/{name}")
            elif member.name == "manifest.json":
                order = list(json.loads(blob.read())[0]["Layers"])
    return SavedImage([layers.get(path, Layer(path)) for path in order], search.found)


def certificates(pem: bytes) -> set[bytes]:
    return {b"".join(body.split()) for body in PEM.findall(pem)}


def signature_line(certificate: bytes) -> bytes:
    """The last full 64-character line of a PEM body: unique to the certificate (subjects recur
    across renewals), and how its bytes would appear in a file."""
    lines = [certificate[start : start + 64] for start in range(0, len(certificate) - 64, 64)]
    return lines[-1]


def foreign_needles(bundle: bytes, own_stores: bytes) -> set[bytes]:
    """Needles for the bundle's certificates that the image's own trust stores do not hold."""
    return {signature_line(cert) for cert in certificates(bundle) - certificates(own_stores)}

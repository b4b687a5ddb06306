"""One streaming pass over `docker save`: what each layer installs, which files it should not
carry, its size, and which needles it holds.

Reading a 9 GB image costs about a minute, so the contract reads it once, while the probe runs in
the container, and the tests that need its layers (the install tiers, leftovers, the size, the
build's CA bundle) share the result. Layers are read uncompressed whatever the image store wrote
(service_images/archive.py). The needles are the build's CA certificates that the image's own
trust stores do not hold: a line of each one's signature, unique to it.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from service_images import archive
from service_images.variants import normalise

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.S)
# A distribution the image's venv holds: opt/venv/lib/python3.X/site-packages/NAME-VER.dist-info/
VENV_DIST_INFO = re.compile(r"^opt/venv/lib/python[\d.]+/site-packages/([^/]+?)-[^/-]+\.dist-info/")


@dataclass
class Layer:
    path: str
    uncompressed_bytes: int = 0
    distributions: set[str] = field(default_factory=set)
    leftovers: list[str] = field(default_factory=list)
    """Files at or under a `leftover` pattern (a later layer deleting them frees no byte)."""


@dataclass
class SavedImage:
    layers: list[Layer]
    """In the image's order, base first."""
    found: set[bytes]
    """The needles that occur anywhere in the saved image (layers, config, history)."""

    @property
    def uncompressed_bytes(self) -> int:
        return sum(layer.uncompressed_bytes for layer in self.layers)


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
    a `leftover` pattern (shell-style `*`, absolute), its size, and the needles."""
    searches: dict[str, NeedleSearch] = {}
    patterns = (re.escape(pattern.lstrip("/")).replace(r"\*", ".*") for pattern in leftover)
    under = re.compile(f"(?:{'|'.join(patterns)})(?:/.*)?")
    layers: dict[str, Layer] = {}

    def on_layer(found: archive.Layer, content: tarfile.TarFile) -> None:
        layer = layers.setdefault(found.name, Layer(found.name))
        for entry in content:
            name = entry.name.removeprefix("./")
            if match := VENV_DIST_INFO.match(name):
                layer.distributions.add(normalise(match[1]))
            elif leftover and not entry.isdir() and under.fullmatch(name):
                layer.leftovers.append(f"/{name}")

    def seen(found: archive.Layer, chunk: bytes) -> None:
        searches.setdefault(found.name, NeedleSearch(needles))(chunk)

    saved = archive.read(chunks, on_layer, seen if needles else None)
    hits = {needle for search in searches.values() for needle in search.found}
    # The configs (with the history) and manifests.
    hits |= {needle for blob in saved.metadata.values() for needle in needles if needle in blob}
    for found in saved.layers:
        layers[found.name].uncompressed_bytes = found.uncompressed_bytes
    return SavedImage([layers[found.name] for found in saved.layers], hits)


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

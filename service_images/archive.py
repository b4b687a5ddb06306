"""`docker save`'s stream, read once front to back, in the format of either image store.

The classic (overlay2) store writes a docker-archive: one uncompressed `<id>/layer.tar` per
layer. The containerd store writes the OCI layout: `blobs/sha256/<digest>`, each layer as the
store holds it (gzip or zstd). `read()` hands every layer's uncompressed tar to the caller, counts
its bytes both ways, and returns the layers in the image's order (`manifest.json`, which both
formats carry) with the small JSON blobs (configs, manifests) as they are.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, cast

import docker
import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
METADATA_LIMIT = 16 << 20  # a config or manifest; anything larger that is no layer is skipped
RECORD = 1 << 20  # tarfile's default of 10 KiB records costs seconds of CPU over a large image


@dataclass
class Layer:
    name: str
    """Its path in the archive."""
    compression: str
    """gzip, zstd, or none (a docker-archive's layer.tar)."""
    stored_bytes: int
    """Its size in the archive: compressed, unless `compression` is none."""
    uncompressed_bytes: int = 0


@dataclass
class SavedImage:
    layers: list[Layer]
    """In the image's order, base first."""
    metadata: dict[str, bytes] = field(default_factory=dict)
    """Archive path -> content of every small non-layer file (configs, manifests, index)."""

    @property
    def uncompressed_bytes(self) -> int:
        return sum(layer.uncompressed_bytes for layer in self.layers)


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the SDK's `image.save()`)."""

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


class _Counted(io.RawIOBase):
    """Reads `inner`, counting the bytes and showing each chunk to `seen`."""

    def __init__(self, inner: IO[bytes], seen: Callable[[bytes], None] | None) -> None:
        self._inner = inner
        self._seen = seen
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        if data and self._seen is not None:
            self._seen(data)
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def compression(head: bytes) -> str | None:
    """How a blob that starts with `head` is a layer: gzip, zstd, none (a tar); None: no layer."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head[257:262] == b"ustar":
        return "none"
    return None


def decompressed(blob: IO[bytes], kind: str) -> IO[bytes]:
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=blob, mode="rb"))
    if kind == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    return blob


def open_stream(chunks: Iterable[bytes]) -> tarfile.TarFile:
    """A `docker save` stream as a tar read front to back."""
    return tarfile.open(
        fileobj=io.BufferedReader(ChunkReader(chunks), 8 << 20), mode="r|", bufsize=RECORD
    )


def read(
    chunks: Iterable[bytes],
    on_layer: Callable[[Layer, tarfile.TarFile], None] | None = None,
    seen: Callable[[Layer, bytes], None] | None = None,
) -> SavedImage:
    """Read a `docker save` stream once.

    `on_layer(layer, content)` gets each layer's uncompressed tar, to iterate (in archive order,
    which is not the image's); `seen(layer, chunk)` every uncompressed chunk of it.
    """
    layers: dict[str, Layer] = {}
    metadata: dict[str, bytes] = {}
    with open_stream(chunks) as saved:
        for member in saved:
            blob = saved.extractfile(member) if member.isfile() else None
            if blob is None:
                continue
            kind = compression(blob.peek(512)[:512])  # type: ignore[attr-defined]
            if kind is None:
                if member.size <= METADATA_LIMIT:
                    metadata[member.name] = blob.read()
                continue
            layer = Layer(member.name, kind, member.size)
            layers[member.name] = layer
            shown = None if seen is None else (lambda chunk, layer=layer: seen(layer, chunk))
            counted = _Counted(decompressed(blob, kind), shown)
            stream = io.BufferedReader(counted, RECORD)
            if on_layer is not None:
                with tarfile.open(fileobj=stream, mode="r|", bufsize=RECORD) as content:
                    on_layer(layer, content)
            while stream.read(RECORD):  # the end-of-archive padding, or all of it unread
                pass
            layer.uncompressed_bytes = counted.count
    order = layer_order(metadata)
    return SavedImage([layers[name] for name in order if name in layers], metadata)


def layer_order(metadata: dict[str, bytes]) -> list[str]:
    """The layers' archive paths in the image's order, from `manifest.json` (first image)."""
    manifest = metadata.get("manifest.json")
    if manifest is None:
        return []
    return list(json.loads(manifest)[0]["Layers"])


def read_image(sdk: docker.DockerClient, reference: str) -> SavedImage:
    """`docker save` of one local image, read (sizes and metadata only)."""
    return read(sdk.images.get(reference).save(chunk_size=8 << 20))

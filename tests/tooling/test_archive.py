"""archive.read: `docker save` as either image store writes it, layers read uncompressed."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
import zstandard

from service_images import archive


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as written:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            written.addfile(info, io.BytesIO(data))
    return out.getvalue()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


BASE = tar_of({"etc/os-release": b"ID=debian\n" * 500})
VENV = tar_of({"opt/venv/lib/python3.11/site-packages/x-1.dist-info/METADATA": bytes(range(256))})
COMPRESS = {
    "none": lambda data: data,
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def saved(kind: str) -> bytes:
    """A two-layer image as `docker save` writes it: layer names sort against the image's order,
    and manifest.json comes last, as in the OCI layout the containerd store writes."""
    blobs = {"blobs/sha256/bb": COMPRESS[kind](BASE), "blobs/sha256/aa": COMPRESS[kind](VENV)}
    manifest = [{"Config": "blobs/sha256/cc", "Layers": ["blobs/sha256/bb", "blobs/sha256/aa"]}]
    files = {
        "blobs/sha256/aa": blobs["blobs/sha256/aa"],
        "blobs/sha256/bb": blobs["blobs/sha256/bb"],
        "blobs/sha256/cc": b'{"history": []}',
        "manifest.json": json.dumps(manifest).encode(),
    }
    return tar_of(files)


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_layers_are_read_uncompressed_in_the_image_s_order(kind: str) -> None:
    entries: dict[str, list[str]] = {}
    seen: dict[str, bytearray] = {}

    def on_layer(layer: archive.Layer, content: tarfile.TarFile) -> None:
        entries[layer.name] = [entry.name for entry in content]

    def show(layer: archive.Layer, chunk: bytes) -> None:
        seen.setdefault(layer.name, bytearray()).extend(chunk)

    result = archive.read(chunked(saved(kind), 777), on_layer, show)
    assert [layer.name for layer in result.layers] == ["blobs/sha256/bb", "blobs/sha256/aa"]
    assert [layer.compression for layer in result.layers] == [kind, kind]
    assert [layer.uncompressed_bytes for layer in result.layers] == [len(BASE), len(VENV)]
    assert result.uncompressed_bytes == len(BASE) + len(VENV)
    assert entries["blobs/sha256/bb"] == ["etc/os-release"]
    assert bytes(seen["blobs/sha256/aa"]) == VENV, "every uncompressed byte is shown once"
    assert result.metadata["blobs/sha256/cc"] == b'{"history": []}'


def test_stored_bytes_are_the_compressed_size() -> None:
    result = archive.read([saved("gzip")])
    assert [layer.stored_bytes for layer in result.layers] == [
        len(gzip.compress(BASE)),
        len(gzip.compress(VENV)),
    ]


def test_an_empty_stream_reads_as_end_of_file() -> None:
    assert archive.ChunkReader([]).read() == b""

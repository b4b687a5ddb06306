"""engine.ChunkReader and open_saved: `docker save`'s byte chunks as a tar, seen on the way."""

from __future__ import annotations

import io
import tarfile

from service_images.engine import ChunkReader, open_saved


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def test_tarfile_reads_every_member_through_odd_sized_chunks() -> None:
    files = {"a/layer.tar": bytes(range(256)) * 300, "manifest.json": b"[]"}
    seen: list[bytes] = []
    with open_saved(chunked(tar_of(files), 777), seen.append) as archive:
        read = {}
        for member in archive:
            blob = archive.extractfile(member)
            assert blob is not None
            read[member.name] = blob.read()
    assert read == files
    assert b"".join(seen) == tar_of(files), "every chunk is seen once, in order"


def test_an_empty_stream_reads_as_end_of_file() -> None:
    assert ChunkReader([]).read() == b""

"""The build context never carries secrets into the CI image.

A temporary copy of the repository holds only what Dockerfile.ci copies, plus `.env` files, keys,
a `.git` directory and tests that all carry a random marker. The CI image is built from that copy
with the real build code, saved with `docker save`, and every layer file, the config and the
history are searched for the marker. A second marker in a source file the image must contain
proves the search sees into the layers (so an empty result means something).

    pytest tests/build/test_build_context.py        # needs a Docker engine; ~20 s with a warm cache
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import docker
import docker.errors
import pytest

from service_images import archive, inputs
from service_images.build import BuildOptions, build_image
from service_images.variants import IMAGE_NAME, get_variant

# Files a careless context would ship, relative to the repository root. Each must stay out of the
# image; those under python-ai-service/app sit inside a directory the Dockerfile copies whole.
PLANTED_SECRETS = (
    ".env",
    ".env.production",
    "python-ai-service/.env",
    "python-ai-service/app/.env",
    "python-ai-service/app/core/.env.local",
    "python-ai-service/app/deploy.key",
    "python-ai-service/app/tls.pem",
    "python-ai-service/app/tests/test_secret.py",
    ".git/config",
    "tests/conftest.py",
    "reports/tests.xml",
)
# A source file the image must contain: the positive control for the search.
PROBE_SOURCE = "python-ai-service/app/_build_context_probe.py"


def make_context(destination: Path, marker: str, probe: str) -> None:
    """A copy of the repository with what the CI build needs, plus the planted secrets."""
    inputs.copy(destination, inputs.for_builds([get_variant("ci")]))
    for relative in PLANTED_SECRETS:
        path = destination / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"SECRET={marker}  # planted in {relative}\n", encoding="utf-8")
    (destination / PROBE_SOURCE).write_text(f'PROBE = "{probe}"\n', encoding="utf-8")


def found_in(stream: IO[bytes], needles: set[bytes], chunk_size: int = 1 << 20) -> set[bytes]:
    """Which of the needles the stream holds, read in chunks (also across chunk boundaries)."""
    overlap = max(map(len, needles), default=1) - 1
    found: set[bytes] = set()
    tail = b""
    while chunk := stream.read(chunk_size):
        window = tail + chunk
        found |= {needle for needle in needles if needle in window}
        tail = window[-overlap:] if overlap else b""
    return found


def occurrences(chunks: Iterable[bytes], needles: set[bytes]) -> dict[bytes, list[str]]:
    """Where each needle occurs in a `docker save` stream: layer files (by name or content), and
    the config, history and manifests."""
    hits: dict[bytes, list[str]] = {needle: [] for needle in needles}

    def on_layer(layer: archive.Layer, content: tarfile.TarFile) -> None:
        for entry in content:
            data = content.extractfile(entry) if entry.isfile() else None
            named = {
                needle for needle in needles if needle in f"{entry.name} {entry.linkname}".encode()
            }
            for needle in named | (found_in(data, needles) if data is not None else set()):
                hits[needle].append(f"{layer.name}: /{entry.name}")

    saved = archive.read(chunks, on_layer)
    for name, blob in saved.metadata.items():
        for needle in needles:
            if needle in blob:
                hits[needle].append(name)
    return hits


@pytest.fixture
def unique_tag(docker_client: docker.DockerClient) -> Iterator[str]:
    """A tag no one else uses; the image is removed afterwards, whatever happened."""
    tag = f"{IMAGE_NAME}:build-context-{secrets.token_hex(6)}"
    yield tag
    with contextlib.suppress(docker.errors.ImageNotFound):  # the build failed before tagging
        docker_client.images.remove(tag)


def test_secrets_in_the_context_never_reach_the_image(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    unique_tag: str,
) -> None:
    marker, probe = f"leak-{secrets.token_hex(16)}", f"probe-{secrets.token_hex(16)}"
    context = tmp_path / "context"
    make_context(context, marker, probe)

    build_image(get_variant("ci"), BuildOptions(context=context, tag=unique_tag))

    image = docker_client.images.get(unique_tag)
    found = occurrences(image.save(chunk_size=8 << 20), {probe.encode(), marker.encode()})
    probes, leaks = found[probe.encode()], found[marker.encode()]

    assert probes, (
        f"the probe {PROBE_SOURCE} is not in the saved image: the search cannot see into its "
        "layers, so it proves nothing"
    )
    metadata = json.dumps([image.attrs, image.history()]).encode()
    if marker.encode() in metadata:
        leaks.append("image inspect / history")
    assert not leaks, "secrets from the build context reached the image:\n" + "\n".join(leaks)


def test_found_in_finds_a_needle_across_chunks() -> None:
    data = b"x" * 10 + b"needle" + b"y" * 10
    assert found_in(io.BytesIO(data), {b"needle", b"needles"}, chunk_size=13) == {b"needle"}

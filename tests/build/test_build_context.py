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
import re
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import docker
import docker.errors
import pytest

from service_images import tiers
from service_images.build import BuildOptions, build_image
from service_images.variants import IMAGE_NAME, ROOT, get_variant

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
COPY = re.compile(r"^\s*(?:COPY|ADD)\s+(?P<args>.+)$", re.IGNORECASE)


def copied_sources(dockerfile: Path) -> list[str]:
    """Paths the Dockerfile copies from the build context (COPY/ADD without --from)."""
    sources = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if match := COPY.match(line):
            words = match["args"].split()
            if any(word.startswith("--from") for word in words):
                continue
            sources += [word for word in words[:-1] if not word.startswith("--")]
    return sources


def make_context(destination: Path, marker: str, probe: str) -> None:
    """A copy of the repository with what the CI build needs, plus the planted secrets."""
    variant = get_variant("ci")
    # What the install steps mount besides what they copy; `.build/` is staged by the build.
    needed = [variant.dockerfile.relative_to(ROOT).as_posix(), ".dockerignore"]
    needed += [path.relative_to(ROOT).as_posix() for path in tiers.install_inputs(variant)]
    copied = [path for path in copied_sources(variant.dockerfile) if not path.startswith(".build/")]
    for relative in needed + copied:
        source, target = ROOT / relative, destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".env*", "*.pem", "*.key")
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    for relative in PLANTED_SECRETS:
        path = destination / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"SECRET={marker}  # planted in {relative}\n", encoding="utf-8")
    (destination / PROBE_SOURCE).write_text(f'PROBE = "{probe}"\n', encoding="utf-8")


def contains(stream: IO[bytes], needle: bytes, chunk_size: int = 1 << 20) -> bool:
    """Whether the stream holds `needle`, read in chunks (also across chunk boundaries)."""
    tail = b""
    while chunk := stream.read(chunk_size):
        if needle in tail + chunk:
            return True
        tail = chunk[-(len(needle) - 1) :]
    return False


def occurrences(archive: Path, needle: bytes) -> list[str]:
    """Where `needle` occurs in a `docker save` archive: layer files, config, history, manifests."""
    hits = []
    with tarfile.open(archive) as saved:
        for member in saved:
            if not member.isfile():
                continue
            blob = saved.extractfile(member)
            assert blob is not None
            if is_tar(blob):  # a layer (maybe gzipped): name the file that holds the needle
                with tarfile.open(fileobj=blob, mode="r:*") as layer:
                    for entry in layer:
                        content = layer.extractfile(entry) if entry.isfile() else None
                        in_name = needle in f"{entry.name} {entry.linkname}".encode()
                        if in_name or (content is not None and contains(content, needle)):
                            hits.append(f"{member.name}: /{entry.name}")
            elif contains(blob, needle):  # config, history, manifests
                hits.append(member.name)
    return hits


def is_tar(blob: IO[bytes]) -> bool:
    try:
        with tarfile.open(fileobj=blob, mode="r:*"):
            return True
    except tarfile.ReadError:
        return False
    finally:
        blob.seek(0)


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
    archive = tmp_path / "image.tar"
    try:
        with archive.open("wb") as out:
            for chunk in image.save(named=True):
                out.write(chunk)
        probes, leaks = occurrences(archive, probe.encode()), occurrences(archive, marker.encode())
    finally:
        archive.unlink(missing_ok=True)  # hundreds of MB; pytest keeps its last tmp dirs

    assert probes, (
        f"the probe {PROBE_SOURCE} is not in the saved image: the search cannot see into its "
        "layers, so it proves nothing"
    )
    metadata = json.dumps([image.attrs, image.history()]).encode()
    if marker.encode() in metadata:
        leaks.append("image inspect / history")
    assert not leaks, "secrets from the build context reached the image:\n" + "\n".join(leaks)


def test_contains_finds_a_needle_across_chunks() -> None:
    data = b"x" * 10 + b"needle" + b"y" * 10
    assert contains(io.BytesIO(data), b"needle", chunk_size=13)
    assert not contains(io.BytesIO(data), b"needles", chunk_size=13)

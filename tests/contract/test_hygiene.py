"""What must not be in the image: build tools, caches, repository files, the build's CA bundle."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import docker.models.images
import pytest
import testinfra

from service_images.build import resolve_ca_bundle
from service_images.containers import Service
from service_images.variants import BUILD_TOOLS, LEFTOVER_PATTERNS, Variant

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END CERTIFICATE-----", re.S)


@pytest.fixture(scope="module")
def root_host(service: Service) -> Any:
    """testinfra as root: the service user cannot see into /root."""
    return testinfra.get_host(f"docker://root@{service.container.id}")


def test_no_build_tools_on_path(host: Any) -> None:
    present = [tool for tool in BUILD_TOOLS if host.exists(tool)]
    assert not present, f"build tools in the image: {present}"


def test_no_caches_or_repository_files(root_host: Any) -> None:
    tests = " -o ".join(f"-path '{pattern}'" for pattern in LEFTOVER_PATTERNS)
    # Empty directories are only mount points of the build's cache mounts.
    found = root_host.check_output(f"timeout 120 find / -xdev \\( {tests} \\) ! -empty -print")
    assert not found.strip(), f"left in the image:\n{found}"


def test_size_within_budget(image: docker.models.images.Image, variant: Variant) -> None:
    size_mb = image.attrs["Size"] / 1e6
    assert size_mb <= variant.budgets.image_mb, (
        f"{size_mb:.0f} MB, budget {variant.budgets.image_mb} MB"
    )


def certificates(pem: bytes) -> set[bytes]:
    return {b"".join(body.split()) for body in PEM.findall(pem)}


def scan(stream: Iterable[bytes], needles: set[bytes]) -> set[bytes]:
    """The needles that occur in a byte stream (searched across chunk boundaries)."""
    found: set[bytes] = set()
    overlap = max(map(len, needles)) - 1
    tail = b""
    for chunk in stream:
        window = tail + chunk
        found |= {needle for needle in needles if needle in window}
        tail = window[-overlap:]
    return found


def base64_lines(certificate: bytes) -> Iterator[bytes]:
    """A PEM body as its 64-character lines (how the bytes would appear in a file)."""
    for start in range(0, len(certificate) - 64, 64):
        yield certificate[start : start + 64]


def test_build_ca_bundle_left_no_trace(
    image: docker.models.images.Image, service: Service, facts: dict[str, Any]
) -> None:
    bundle = resolve_ca_bundle(None)
    if bundle is None:
        pytest.skip("no CA bundle is configured on this host, so none was passed to the build")
    # Certificates the image's own trust stores hold are not evidence; the others only the
    # bundle has (on a machine behind a TLS-inspecting proxy: the proxy's CA).
    stores = ["/etc/ssl/certs/ca-certificates.crt", *facts["certifi"]]
    _, own_store = service.run("cat", *stores)
    foreign = certificates(bundle.read_bytes()) - certificates(own_store.encode())
    if not foreign:
        pytest.skip("every certificate of the host's bundle is also in the image's own store")
    # A line of each certificate's signature: unique to it (subjects recur across renewals).
    needles = {list(base64_lines(certificate))[-1] for certificate in foreign}
    history = " ".join(entry.get("CreatedBy", "") for entry in image.history()).encode()
    assert not scan([history], needles), "the CA bundle's contents appear in the image history"
    found = scan(image.save(chunk_size=8 << 20), needles)
    assert not found, f"{len(found)} of the build's CA certificates are in the image's layers"

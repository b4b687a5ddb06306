"""What must not be in the image: build tools, caches, repository files, the build's CA bundle."""

from __future__ import annotations

from typing import Any

import docker.models.images
import pytest
from conftest import Background
from saved_image import SavedImage

from service_images.build import resolve_ca_bundle
from service_images.variants import BUILD_TOOLS, Variant


def test_no_build_tools_on_path(host: Any) -> None:
    # One exec for all of them (host.exists is one each).
    found = host.run(f"for tool in {' '.join(BUILD_TOOLS)}; do command -v $tool; done").stdout
    assert not found.strip(), f"build tools in the image: {found.split()}"


def test_no_caches_or_repository_files(saved_image: SavedImage) -> None:
    """In no layer: a cache or repository file a later layer deletes still ships its bytes.
    (Empty directories are only mount points of the build's cache mounts.)"""
    found = [name for layer in saved_image.layers for name in layer.leftovers]
    assert not found, "left in the image's layers:\n" + "\n".join(found[:50])


def test_size_within_budget(saved_image: SavedImage, variant: Variant) -> None:
    """Its layers uncompressed: the same figure on either image store (Docker's own `Size` is
    the compressed content on the containerd store)."""
    size_mb = saved_image.uncompressed_bytes / 1e6
    assert size_mb <= variant.budgets.image_mb, (
        f"{size_mb:.0f} MB, budget {variant.budgets.image_mb} MB"
    )


def test_build_ca_bundle_left_no_trace(
    image: docker.models.images.Image, background: Background, saved_image: SavedImage
) -> None:
    if resolve_ca_bundle(None) is None:
        pytest.skip("no CA bundle is configured on this host, so none was passed to the build")
    if not background.ca_needles:
        pytest.skip("every certificate of the host's bundle is also in the image's own store")
    history = " ".join(entry.get("CreatedBy", "") for entry in image.history()).encode()
    in_history = {needle for needle in background.ca_needles if needle in history}
    assert not in_history, "the CA bundle's contents appear in the image history"
    found = saved_image.found
    assert not found, f"{len(found)} of the build's CA certificates are in the image's layers"

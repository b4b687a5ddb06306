"""What the bench measures on a built image: its layers' sizes (uncompressed, and compressed as a
registry stores them), the bytes a rebuild added, installed distributions, start-up to /health."""

from __future__ import annotations

import statistics
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import docker

from service_images import archive, containers, project, sbom
from service_images.bench.memory import MB
from service_images.errors import ServiceNotReady
from service_images.variants import PROJECT_LABEL

BENCH_LABEL = f"{project.LABELS}.bench"
LABELS = {PROJECT_LABEL: "true", BENCH_LABEL: "true"}
START_DEADLINE_S = 180.0
GZIP_LEVEL = 6  # the default of the gzip that `docker push` writes layers with
START_SAMPLES = 5
"""Starts per image, the two images in turn: one start varies by ±15 % on a quiet machine here."""


@dataclass(frozen=True)
class ImageFacts:
    layers: int
    has_healthcheck: bool


def image_facts(sdk: docker.DockerClient, tag: str) -> ImageFacts:
    attrs = sdk.images.get(tag).attrs
    healthcheck = (attrs.get("Config") or {}).get("Healthcheck") or {}
    has_healthcheck = bool(healthcheck.get("Test")) and healthcheck["Test"] != ["NONE"]
    return ImageFacts(len(attrs["RootFS"]["Layers"]), has_healthcheck)


@dataclass(frozen=True)
class Sizes:
    """An image's layers as both stores agree on them (Docker's `Size` is the unpacked layers on
    the classic store, the compressed content on the containerd store)."""

    layers_mb: dict[str, float]
    """Diff id (the uncompressed layer's digest) -> its uncompressed MB."""
    compressed_mb: float
    """As a registry stores them and a node pulls them: as the containerd store holds them, or
    gzipped as `docker push` does from the classic store."""

    @property
    def total_mb(self) -> float:
        return sum(self.layers_mb.values())

    def added_to(self, replaced: Sizes) -> float:
        """MB in layers `replaced` does not have: what a rebuild added, and nodes pull again."""
        return sum(
            mb for diff_id, mb in self.layers_mb.items() if diff_id not in replaced.layers_mb
        )


def sizes(sdk: docker.DockerClient, tag: str) -> Sizes:
    """One `docker save` of `tag`, read front to back."""
    image = sdk.images.get(tag)
    gzips: dict[str, zlib._Compress] = {}
    compressed = 0

    def gzip_plain(layer: archive.Layer, chunk: bytes) -> None:
        nonlocal compressed
        if layer.compression == "none":
            gzip = gzips.setdefault(layer.name, zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31))
            compressed += len(gzip.compress(chunk))

    saved = archive.read(image.save(chunk_size=8 << 20), seen=gzip_plain)
    compressed += sum(len(gzip.flush()) for gzip in gzips.values())
    compressed += sum(layer.stored_bytes for layer in saved.layers if layer.compression != "none")
    diff_ids = image.attrs["RootFS"]["Layers"]
    layers = {
        diff_id: layer.uncompressed_bytes / MB
        for diff_id, layer in zip(diff_ids, saved.layers, strict=True)
    }
    return Sizes(layers, compressed / MB)


def count_distributions(sdk: docker.DockerClient, tag: str) -> int:
    """The distributions the service's environment holds, as the SBOM lists them."""
    return len({d.name for d in sbom.inventory(sdk, tag) if d.environment == "service"})


def measure_start(
    sdk: docker.DockerClient, tag: str, has_healthcheck: bool, deadline_s: float = START_DEADLINE_S
) -> tuple[float | None, float | None, str | None]:
    """Seconds from `docker run` to /health answering and to `healthy`; and a problem, if any."""
    health_s = healthy_s = None
    with containers.running(sdk, tag, labels=LABELS) as service:
        try:
            health_s = service.wait_until("answers", deadline_s)
            if has_healthcheck:
                healthy_s = service.wait_until("healthy", deadline_s - health_s)
        except ServiceNotReady as error:
            return health_s, healthy_s, f"{tag}: {error.message[-400:]}"
    return health_s, healthy_s, None


def median(seconds: Iterable[float | None]) -> float | None:
    """The median of several starts; None if any of them did not get there."""
    values = list(seconds)
    return None if None in values else statistics.median(v for v in values if v is not None)

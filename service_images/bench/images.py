"""What the bench measures on a built image: size, layers, the bytes a rebuild added, the
compressed size a registry stores, installed distributions, and start-up to /health."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import docker

from service_images import archive, containers, sbom
from service_images.bench.memory import MB
from service_images.errors import ServiceNotReady
from service_images.variants import PROJECT_LABEL

BENCH_LABEL = "io.python-ai-service.bench"
LABELS = {PROJECT_LABEL: "true", BENCH_LABEL: "true"}
START_DEADLINE_S = 180.0
GZIP_LEVEL = 6  # the default of the gzip that `docker push` writes layers with


@dataclass(frozen=True)
class ImageFacts:
    size_mb: float
    layers: int
    has_healthcheck: bool


def image_facts(sdk: docker.DockerClient, tag: str) -> ImageFacts:
    attrs = sdk.images.get(tag).attrs
    healthcheck = (attrs.get("Config") or {}).get("Healthcheck") or {}
    has_healthcheck = bool(healthcheck.get("Test")) and healthcheck["Test"] != ["NONE"]
    return ImageFacts(attrs["Size"] / MB, len(attrs["RootFS"]["Layers"]), has_healthcheck)


def unique_mb(sdk: docker.DockerClient, tag: str) -> float | None:
    """MB in the layers no other image on the engine shares: after a rebuild next to the image it
    replaces, what the rebuild added (and what nodes pull again). None when the engine cannot say.
    """
    image_id = sdk.images.get(tag).id
    for image in sdk.df().get("Images") or ():
        if image.get("Id") == image_id and int(image.get("SharedSize", -1)) >= 0:
            return (int(image["Size"]) - int(image["SharedSize"])) / MB
    return None


def compressed_mb(sdk: docker.DockerClient, tag: str) -> float:
    """The image's layers compressed, as a registry stores them and a node pulls them (MB): as
    the containerd store holds them, or gzipped as `docker push` does from the classic store."""
    gzips: dict[str, zlib._Compress] = {}
    total = 0

    def gzip_plain(layer: archive.Layer, chunk: bytes) -> None:
        nonlocal total
        if layer.compression == "none":
            gzip = gzips.setdefault(layer.name, zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31))
            total += len(gzip.compress(chunk))

    saved = archive.read(sdk.images.get(tag).save(chunk_size=8 << 20), seen=gzip_plain)
    total += sum(len(gzip.flush()) for gzip in gzips.values())
    total += sum(layer.stored_bytes for layer in saved.layers if layer.compression != "none")
    return total / MB


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

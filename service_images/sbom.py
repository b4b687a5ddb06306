"""A CycloneDX SBOM of what an image holds, checked against its lock; and scan coverage.

The inventory comes from ONE `docker run` of a stdlib-only probe (`image_probe.py`) in the image
itself, so the SBOM lists what is installed, not what a lock says should be, and no tool is added
to the image to describe it. The SBOM is CycloneDX 1.5 JSON with a purl (`pkg:pypi/name@version`)
per distribution; each component says which Python environment holds it (`service`: what the
service's `python` imports from; `other`: any other environment found in the image).

Scan coverage: our scans see a distribution when the CI image's Trivy scan sees it (the CI image
holds it at the same version) or the audit of the full lock does (requirements.lock pins it at
that version). `coverage_gaps` lists every distribution of the full image that neither sees.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from service_images import project
from service_images.containers import PROBE
from service_images.errors import ImageMissing, SbomMismatch, ScanCoverageGap, ToolError
from service_images.files import write_atomically
from service_images.platforms import Platform, get_platform, host_platform
from service_images.variants import IMAGE_NAME, ROOT, Variant, normalise

ENVIRONMENT_PROPERTY = f"{project.NAME}:environment"
LOCATION_PROPERTY = f"{project.NAME}:location"
PLATFORM_PROPERTY = f"{project.NAME}:platform"
SPEC_VERSION = "1.5"
# Stable namespace for serial numbers: the same image always gets the same SBOM serial.
SERIAL_NAMESPACE = uuid.UUID("6f1c2f0e-3b4a-5c7d-8e9f-a0b1c2d3e4f5")


@dataclass(frozen=True)
class Distribution:
    name: str
    """PEP 503 normalised."""
    version: str
    environment: str
    """`service` (what the service imports from) or `other`."""
    location: str

    @property
    def purl(self) -> str:
        # The pypi purl type wants the PEP 503 name (lower case, `-`).
        return f"pkg:pypi/{normalise(self.name)}@{self.version}"


def inventory(sdk: docker.DockerClient, image: str) -> list[Distribution]:
    """Every Python distribution in the image, from one run of the probe (no network, read-only)."""
    try:
        output = sdk.containers.run(
            image,
            ["-c", PROBE, "{}"],
            entrypoint=["python"],
            network_disabled=True,
            read_only=True,
            remove=True,
            stderr=True,
        )
    except docker.errors.ImageNotFound:
        raise ImageMissing(f"image {image} is not here: build or pull it first.") from None
    except docker.errors.ContainerError as error:
        raise ToolError(f"the SBOM probe failed in {image}: {error}") from None
    assert isinstance(output, bytes)  # neither streamed nor detached
    answer = json.loads(output.decode().strip().splitlines()[-1])
    return sorted(
        (
            Distribution(d["name"], d["version"], d["environment"], d["location"])
            for d in answer["distributions"]
        ),
        key=lambda d: (d.environment != "service", d.name, d.location),
    )


def cyclonedx(
    variant: Variant, image: str, attrs: Mapping[str, Any], distributions: Iterable[Distribution]
) -> dict[str, Any]:
    """CycloneDX 1.5 JSON; the same image always gives the same document (no wall-clock time)."""
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    revision = labels.get("org.opencontainers.image.revision", "unknown")
    image_id = str(attrs.get("Id", image))
    os_name, architecture = attrs.get("Os", "linux"), attrs.get("Architecture", "amd64")
    components = []
    for dist in distributions:
        ref = f"{dist.purl}?location={dist.location}"  # one name can live in two environments
        components.append(
            {
                "type": "library",
                "bom-ref": ref,
                "name": dist.name,
                "version": dist.version,
                "purl": dist.purl,
                "properties": [
                    {"name": ENVIRONMENT_PROPERTY, "value": dist.environment},
                    {"name": LOCATION_PROPERTY, "value": dist.location},
                ],
            }
        )
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": "service-images"}]},
        "component": {
            "type": "container",
            "bom-ref": image_id,
            "name": IMAGE_NAME,
            "version": revision,
            "description": variant.description,
            "properties": [
                {"name": f"{project.NAME}:variant", "value": variant.name},
                {"name": f"{project.NAME}:image", "value": image},
                {"name": f"{project.NAME}:image-id", "value": image_id},
                {"name": PLATFORM_PROPERTY, "value": f"{os_name}/{architecture}"},
            ],
        },
    }
    # The commit time (the `created` label), so two builds of one commit give one SBOM.
    if created := labels.get("org.opencontainers.image.created"):
        metadata["timestamp"] = created
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, image_id)}",
        "version": 1,
        "metadata": metadata,
        "components": components,
    }


def components(bom: Mapping[str, Any], environment: str | None = None) -> dict[str, set[str]]:
    """{name: versions} of a CycloneDX document's pypi components (one environment, or all)."""
    found: dict[str, set[str]] = {}
    for component in bom.get("components", []):
        if not str(component.get("purl", "")).startswith("pkg:pypi/"):
            continue
        properties = {p["name"]: p["value"] for p in component.get("properties", [])}
        if environment is None or properties.get(ENVIRONMENT_PROPERTY) == environment:
            found.setdefault(component["name"], set()).add(component["version"])
    return found


def platform(bom: Mapping[str, Any]) -> Platform:
    """The platform the SBOM's image is for: a lock's marker-bound entries are judged on it."""
    component = bom.get("metadata", {}).get("component", {})
    properties = {p["name"]: p["value"] for p in component.get("properties", [])}
    if PLATFORM_PROPERTY not in properties:
        return host_platform()  # an SBOM written before the property existed
    return get_platform(properties[PLATFORM_PROPERTY])


def lock_problems(bom: Mapping[str, Any], locked: Mapping[str, str]) -> list[str]:
    """How the service's environment differs from the lock (the image contract's rule 1)."""
    installed = components(bom, "service")
    problems = [
        f"{name}: locked {version}, installed {', '.join(sorted(installed[name])) or 'nothing'}"
        if name in installed
        else f"{name}: locked {version}, not installed"
        for name, version in sorted(locked.items())
        if installed.get(name) != {version}
    ]
    problems += [
        f"{name} {', '.join(sorted(versions))}: installed, not in the lock"
        for name, versions in sorted(installed.items())
        if name not in locked
    ]
    return problems


def check_against_lock(bom: Mapping[str, Any], locked: Mapping[str, str], lock_name: str) -> None:
    if problems := lock_problems(bom, locked):
        raise SbomMismatch(
            f"the SBOM differs from {lock_name} in {len(problems)} places: " + "; ".join(problems)
        )


def coverage_gaps(
    full_bom: Mapping[str, Any], ci_bom: Mapping[str, Any], full_lock: Mapping[str, str]
) -> list[str]:
    """Distributions of the full image that neither the CI image's scan nor the lock audit sees."""
    in_ci = components(ci_bom)
    gaps = []
    for name, versions in sorted(components(full_bom).items()):
        for version in sorted(versions):
            if version in in_ci.get(name, set()) or full_lock.get(name) == version:
                continue
            where = (
                "not in the CI image" if name not in in_ci else "another version in the CI image"
            )
            gaps.append(f"{name} {version} ({where}; requirements.lock does not pin it so)")
    return gaps


def check_coverage(
    full_bom: Mapping[str, Any], ci_bom: Mapping[str, Any], full_lock: Mapping[str, str]
) -> int:
    """The number of distributions covered; ScanCoverageGap listing every one that is not."""
    if gaps := coverage_gaps(full_bom, ci_bom, full_lock):
        raise ScanCoverageGap(
            f"{len(gaps)} distributions of the full image are covered by no scan: "
            + "; ".join(gaps)
        )
    return sum(len(versions) for versions in components(full_bom).values())


def image_bom(sdk: docker.DockerClient, variant: Variant, image: str) -> dict[str, Any]:
    """Inventory the image and render its SBOM."""
    try:
        attrs = sdk.images.get(image).attrs
    except docker.errors.ImageNotFound:
        raise ImageMissing(
            f"image {image} is not here: build it (invoke build-{variant.name}) or pull it."
        ) from None
    return cyclonedx(variant, image, attrs, inventory(sdk, image))


def write(bom: Mapping[str, Any], path: Path) -> Path:
    return write_atomically(path, json.dumps(bom, indent=2) + "\n")


def default_output(variant: Variant) -> Path:
    return ROOT / "reports" / f"sbom-{variant.name}.cdx.json"

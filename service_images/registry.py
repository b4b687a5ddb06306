"""Pushing an image to a registry and reading back what the registry holds; a throwaway registry.

`push()` tags and pushes through the docker CLI (engine.py), so the engine's credentials
(`docker login`) and its insecure-registry rules apply as they would for any user. The digest it
returns is the registry's: an image index on the containerd store (the platforms' images and
BuildKit's attestations), one image's manifest on the classic store. `read()` follows it to each
platform's image and the compressed sizes of its layers: what a registry that holds none of the
layers receives, and what a node of that platform pulls.

`serve()` runs Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1 with its storage
in a temporary directory. Docker treats 127.0.0.0/8 registries as insecure-allowed by default, so
plain HTTP needs no daemon configuration.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from service_images import engine, project, scratch
from service_images.errors import BadOption, ImageMissing, PushFailed, RegistryUnavailable
from service_images.files import write_atomically
from service_images.variants import IMAGE_NAME, ROOT, Variant

REPORTS = ROOT / "reports"
REGISTRY_BINARY = "docker-registry"
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")
PUSH_TIMEOUT_S = 3600  # the full image is ~10 GB of layers
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    """Bytes as stored: a layer's are compressed."""


@dataclass(frozen=True)
class PlatformImage:
    """One platform's image in the registry, from its manifest."""

    platform: str
    """linux/amd64"""
    digest_reference: str
    """HOST/REPO@sha256:... of this platform's manifest."""
    layers: tuple[Blob, ...]

    @property
    def layer_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class PushResult:
    """What the registry holds after a push, from its own manifests."""

    variant: str
    image: str
    """The local image that was pushed."""
    reference: str
    """HOST/REPO:TAG as pushed."""
    digest_reference: str
    """HOST/REPO@sha256:... — the reference that always names these bytes."""
    images: tuple[PlatformImage, ...]
    seconds: float
    layers_uploaded: int
    """Blobs the registry did not have yet (the others were already there)."""

    @property
    def blobs(self) -> set[Blob]:
        """Every platform's layers, each blob once (platforms share, e.g., the service's code)."""
        return {layer for image in self.images for layer in image.layers}

    @property
    def pushed_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "pushed_bytes": self.pushed_bytes, "blobs": len(self.blobs)}


REGISTRY = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?(?:/[a-z0-9._/-]+)?$"
)


def check_registry(registry: str) -> str:
    """HOST[:PORT][/NAMESPACE], or BadOption saying what a registry looks like."""
    found = REGISTRY.match(registry.rstrip("/"))
    if found is None or (found["port"] is not None and not 0 < int(found["port"]) < 65536):
        raise BadOption(
            f"--registry {registry!r} is not HOST[:PORT][/NAMESPACE] (e.g. 127.0.0.1:5000, "
            "ghcr.io/owner)."
        )
    return registry.rstrip("/")


def repository(registry: str, name: str = IMAGE_NAME) -> str:
    return f"{registry.rstrip('/')}/{name}"


def split_reference(reference: str) -> tuple[str, str]:
    """(repository, tag or digest) of HOST[:PORT]/REPO[:TAG|@DIGEST]; the tag defaults to latest."""
    if "@" in reference:
        repo, digest = reference.split("@", 1)
        return repo, digest
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:  # a colon before the last slash is the registry's port
        return reference[:colon], reference[colon + 1 :]
    return reference, "latest"


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    try:
        return engine.cli(*args, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PushFailed(
            f"`docker {' '.join(args[:2])}` took longer than {timeout:.0f} s."
        ) from None


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or result.stdout).strip().splitlines()
    return text[-1] if text else f"exit {result.returncode}"


def raw_manifest(reference: str) -> dict[str, Any]:
    """The registry's manifest or index for a reference, as it stores it (engine credentials)."""
    result = _docker("buildx", "imagetools", "inspect", "--raw", reference, timeout=120)
    if result.returncode != 0:
        raise PushFailed(f"cannot read the manifest of {reference}: {_last_line(result)}")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _inspect(reference: str, template: str) -> Any:
    """One field of `docker buildx imagetools inspect --format` (engine credentials), as JSON."""
    result = _docker(
        "buildx", "imagetools", "inspect", "--format", template, reference, timeout=120
    )
    if result.returncode != 0:
        raise PushFailed(f"cannot read {reference} from its registry: {_last_line(result)}")
    return json.loads(result.stdout or "null")


def digest_of(reference: str) -> str:
    """sha256:... that a reference (a tag, say) names in the registry right now."""
    return str(_inspect(reference, "{{json .Manifest.Digest}}"))


def image_configs(reference: str) -> list[dict[str, Any]]:
    """Each platform's image config (labels, os, architecture) that a reference names."""
    found = _inspect(reference, "{{json .Image}}") or {}
    return [found] if "config" in found else list(found.values())


def provenance(reference: str) -> list[dict[str, Any]]:
    """BuildKit's SLSA provenance for each platform of an index; [] when none is attached."""
    found = _inspect(reference, "{{json .Provenance}}") or {}
    documents = [found] if "SLSA" in found else list(found.values())
    return [document["SLSA"] for document in documents if document and document.get("SLSA")]


def is_index(manifest: dict[str, Any]) -> bool:
    return manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest


def platform_of(entry: dict[str, Any]) -> str | None:
    """An index entry's platform; None for what is no image (BuildKit's attestations)."""
    platform = entry.get("platform") or {}
    if "unknown" in (platform.get("os"), platform.get("architecture")):
        return None
    if (entry.get("annotations") or {}).get("vnd.docker.reference.type"):
        return None
    return f"{platform.get('os')}/{platform.get('architecture')}"


def layers_of(manifest: dict[str, Any]) -> tuple[Blob, ...]:
    return tuple(Blob(str(layer["digest"]), int(layer["size"])) for layer in manifest["layers"])


def read(digest_reference: str) -> tuple[PlatformImage, ...]:
    """Each platform's image that a pushed reference names (an index, or one image)."""
    repo, _ = split_reference(digest_reference)
    top = raw_manifest(digest_reference)
    if not is_index(top):
        config = raw_manifest(f"{repo}@{top['config']['digest']}") if "config" in top else {}
        found = f"{config.get('os', 'linux')}/{config.get('architecture', 'unknown')}"
        return (PlatformImage(found, digest_reference, layers_of(top)),)
    images = []
    for entry in top["manifests"]:
        if (platform := platform_of(entry)) is None:
            continue
        reference = f"{repo}@{entry['digest']}"
        images.append(PlatformImage(platform, reference, layers_of(raw_manifest(reference))))
    if not images:
        raise PushFailed(f"{digest_reference} is an index without any platform's image.")
    return tuple(images)


def push(
    variant: Variant, registry: str, *, image: str | None = None, tag: str | None = None
) -> PushResult:
    """Tag the local image as REGISTRY/NAME:TAG, push it, read the manifests back."""
    local = image or variant.tag
    reference = f"{repository(check_registry(registry))}:{tag or variant.name}"
    if not engine.image_exists(engine.client(), local):
        raise ImageMissing(
            f"image {local} is not here: build it (invoke build-{variant.name}) or pass --image."
        )
    had_reference = _docker("image", "inspect", reference, timeout=60).returncode == 0
    tagged = _docker("tag", local, reference, timeout=60)
    if tagged.returncode != 0:
        raise PushFailed(
            f"cannot tag {local} as {reference}: {_last_line(tagged)} "
            f"(build it first: invoke build-{variant.name})."
        )
    print(f"==> pushing {local} as {reference}", flush=True)
    started = time.monotonic()
    try:
        pushed = _docker("push", reference, timeout=PUSH_TIMEOUT_S)
    finally:
        if not had_reference:
            # The registry tag was only the push's address: leave the engine's tags as they were.
            _docker("rmi", reference, timeout=60)
    seconds = time.monotonic() - started
    found = PUSHED_DIGEST.search(pushed.stdout)
    if pushed.returncode != 0 or found is None:
        raise PushFailed(f"pushing {reference} failed: {_last_line(pushed)}")
    digest_reference = f"{split_reference(reference)[0]}@{found[1]}"
    uploaded = sum(1 for line in pushed.stdout.splitlines() if line.endswith(": Pushed"))
    return PushResult(
        variant=variant.name,
        image=local,
        reference=reference,
        digest_reference=digest_reference,
        images=read(digest_reference),
        seconds=round(seconds, 2),
        layers_uploaded=uploaded,
    )


def write_report(result: PushResult, output: Path | None = None) -> Path:
    path = output or REPORTS / f"push-{result.variant}.json"
    return write_atomically(path, json.dumps(result.as_json(), indent=2) + "\n")


# -- a throwaway registry on loopback -------------------------------------------------------------

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    """A port nobody listens on right now (the registry binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(deadline_s: float = 20) -> Iterator[str]:
    """A registry on 127.0.0.1 for the duration; yields HOST:PORT. Storage and process removed."""
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RegistryUnavailable(
            f"no `{REGISTRY_BINARY}` on PATH: `apt-get install -y docker-registry` (Debian/Ubuntu)."
        )
    with scratch.directory(f"{project.NAME}-registry-", reap=_reap) as workdir:
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(CONFIG.format(root=workdir / "data", port=port), encoding="utf-8")
        log = (workdir / "registry.log").open("wb")
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        (workdir / "registry.pid").write_text(str(process.pid))
        try:
            address = f"127.0.0.1:{port}"
            _wait_until_up(address, process, deadline_s, Path(log.name))
            yield address
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _reap(workdir: Path) -> None:
    """The registry a killed owner left serving (scratch.directory then removes its storage)."""
    scratch.stop_recorded(workdir / "registry.pid", str(workdir / "config.yml"))


def _wait_until_up(
    address: str, process: subprocess.Popen[bytes], deadline_s: float, log: Path
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(httpx.TransportError):
            # trust_env=False: a machine proxy must not route loopback calls.
            if httpx.get(f"http://{address}/v2/", timeout=1, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
    raise RegistryUnavailable(
        f"the registry on {address} did not answer within {deadline_s:.0f} s: "
        + (" | ".join(tail) or f"exit {process.poll()}")
    )

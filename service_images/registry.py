"""Pushing an image to a registry and reading back what the registry holds; a throwaway registry.

`push()` tags and pushes through the docker CLI (engine.py), so the engine's credentials
(`docker login`) and its insecure-registry rules apply as they would for any user. The digest it
returns is the registry's manifest digest, and the byte count is the sum of the compressed layer
sizes of that manifest: what a registry that holds none of the layers receives.

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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from service_images import engine
from service_images.errors import PushFailed, RegistryUnavailable
from service_images.variants import IMAGE_NAME, ROOT, Variant

REPORTS = ROOT / "reports"
REGISTRY_BINARY = "docker-registry"
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")
PUSH_TIMEOUT_S = 3600  # the full image is ~10 GB of layers


@dataclass(frozen=True)
class PushResult:
    """What the registry holds after a push, from its own manifest."""

    variant: str
    image: str
    """The local image that was pushed."""
    reference: str
    """HOST/REPO:TAG as pushed."""
    digest_reference: str
    """HOST/REPO@sha256:... — the reference that always names these bytes."""
    layer_bytes: tuple[int, ...]
    """Compressed size of each layer, as the manifest records it."""
    config_bytes: int
    seconds: float
    layers_uploaded: int
    """Layers the registry did not have yet (the others were already there)."""

    @property
    def pushed_bytes(self) -> int:
        return sum(self.layer_bytes)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "pushed_bytes": self.pushed_bytes}


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


def manifest(reference: str) -> dict[str, Any]:
    """The registry's manifest for a reference (`docker manifest inspect`, engine credentials)."""
    # --insecure lets the CLI fall back to plain HTTP, which only registries the engine already
    # treats as insecure (loopback here) answer; a TLS registry is still spoken to over TLS.
    result = _docker("manifest", "inspect", "--insecure", reference, timeout=120)
    if result.returncode != 0:
        raise PushFailed(f"cannot read the manifest of {reference}: {_last_line(result)}")
    data: dict[str, Any] = json.loads(result.stdout)
    if "layers" not in data:
        raise PushFailed(
            f"{reference} is a manifest list, not one image's manifest: push a single platform."
        )
    return data


def push(
    variant: Variant, registry: str, *, image: str | None = None, tag: str | None = None
) -> PushResult:
    """Tag the local image as REGISTRY/python-ai-service:TAG, push it, read the manifest back."""
    local = image or variant.tag
    reference = f"{repository(registry)}:{tag or variant.name}"
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
    data = manifest(digest_reference)
    uploaded = sum(1 for line in pushed.stdout.splitlines() if line.endswith(": Pushed"))
    return PushResult(
        variant=variant.name,
        image=local,
        reference=reference,
        digest_reference=digest_reference,
        layer_bytes=tuple(int(layer["size"]) for layer in data["layers"]),
        config_bytes=int(data["config"]["size"]),
        seconds=round(seconds, 2),
        layers_uploaded=uploaded,
    )


def write_report(result: PushResult, output: Path | None = None) -> Path:
    path = output or REPORTS / f"push-{result.variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    return path


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
    with tempfile.TemporaryDirectory(prefix="python-ai-service-registry-") as workdir:
        port = free_port()
        config = Path(workdir) / "config.yml"
        config.write_text(CONFIG.format(root=Path(workdir) / "data", port=port), encoding="utf-8")
        log = (Path(workdir) / "registry.log").open("wb")
        process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
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

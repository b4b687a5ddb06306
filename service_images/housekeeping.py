"""`invoke doctor` (can this machine build?) and `invoke clean` (remove what the project made)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from service_images import engine
from service_images.build import resolve_ca_bundle
from service_images.buildcache import BuildCache
from service_images.engine import MIN_ENGINE
from service_images.errors import DoctorFailed, ToolError
from service_images.variants import PROJECT_LABEL, VARIANT_LABEL, VARIANTS

FULL_BUILD_FREE_GB = 25  # a full build: ~10 GB image + ~10 GB build cache + downloads


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    blocking: bool = True


def doctor(*, base_image: str, ca_bundle: str | None) -> None:
    checks: list[Check] = []

    def attempt(name: str, probe: object, *, blocking: bool = True) -> bool:
        try:
            detail = probe() if callable(probe) else str(probe)
        except ToolError as error:
            checks.append(Check(name, False, error.message, blocking))
            return False
        checks.append(Check(name, True, str(detail), blocking))
        return True

    found: list[engine.EngineFacts] = []
    engine_ok = attempt("Docker engine", lambda: _engine_description(found))
    attempt("BuildKit", _buildkit_description)
    if found:
        for limit in found[0].limits():
            checks.append(Check("engine limit", False, limit, blocking=found[0].major < MIN_ENGINE))
    if engine_ok:
        attempt("base image", lambda: _base_description(base_image))
        attempt("free disk (Docker root)", _disk_description, blocking=False)
    attempt("CA bundle", lambda: str(resolve_ca_bundle(ca_bundle) or "none (direct TLS)"))

    table = Table(title="Can this machine build the images?")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for check in checks:
        status = "[green]ok" if check.ok else ("[red]BLOCKS" if check.blocking else "[yellow]warn")
        table.add_row(check.name, status, check.detail)
    Console().print(table)
    blocking = [check.name for check in checks if not check.ok and check.blocking]
    if blocking:
        raise DoctorFailed(f"cannot build: {', '.join(blocking)}; see the table above.")


def _engine_description(found: list[engine.EngineFacts]) -> str:
    facts = engine.facts(engine.client())
    found.append(facts)
    if facts.major < MIN_ENGINE:
        raise ToolError(
            f"{facts.describe()}: Docker {MIN_ENGINE} or newer is needed (README 'Engines')"
        )
    return facts.describe()


def _buildkit_description() -> str:
    return f"docker buildx {engine.buildx_version()}, BuildKit {engine.buildkit_version()}"


def _base_description(image: str) -> str:
    sdk = engine.client()
    if not engine.image_exists(sdk, image):
        engine.ensure_base_image(sdk, image)
    labels = sdk.images.get(image).labels or {}
    origin = " (bootstrapped from Debian packages)" if PROJECT_LABEL in labels else ""
    return f"{image}{origin}"


def _disk_description() -> str:
    root = engine.client().info().get("DockerRootDir", "/var/lib/docker")
    # With a remote DOCKER_HOST the engine's disk is not ours to see: report the local one.
    free_gb = shutil.disk_usage(root if Path(root).exists() else "/").free / 1e9
    if free_gb < FULL_BUILD_FREE_GB:
        raise ToolError(
            f"{free_gb:.0f} GB free at {root}: the CI image fits, a full build wants "
            f"{FULL_BUILD_FREE_GB} GB (run `invoke clean`)."
        )
    return f"{free_gb:.0f} GB free at {root}"


def clean(*, include_base: bool) -> None:
    """Remove the project's containers, images (base only if asked) and build cache."""
    sdk = engine.client()
    label: dict[str, str | list[str] | bool] = {"label": PROJECT_LABEL}
    for container in sdk.containers.list(all=True, filters=label):
        print(f"==> removing container {container.short_id} ({container.status})")
        container.remove(force=True)
    for image in sdk.images.list(filters=label):
        # Images built on the bootstrapped base inherit its labels; only the base has no variant.
        if VARIANT_LABEL not in (image.labels or {}) and not include_base:
            continue
        for tag in image.tags or [str(image.id)]:
            print(f"==> removing image {tag}")
            sdk.images.remove(tag, force=True)
    cache = BuildCache()
    ours, _ = cache.ours(variant.dockerfile for variant in VARIANTS.values())
    if ours:
        print(f"==> pruning {len(ours)} build cache mounts")
        cache.prune(record.id for record in ours)
    # Layer cache that no image refers to any more (ours, now that its images are gone).
    print("==> pruning unused build cache")
    cache.prune_unused_layers()

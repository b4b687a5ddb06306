"""`invoke doctor` (can this machine build?) and `invoke clean` (remove what the project made)."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from rich.console import Console
from rich.table import Table

from service_images import engine, ledger
from service_images.build import RUNS, resolve_ca_bundle
from service_images.buildcache import BuildCache
from service_images.engine import MIN_ENGINE
from service_images.errors import DoctorFailed, ToolError
from service_images.platforms import host_platform
from service_images.variants import (
    BASE_LABEL,
    BEFORE_DOCKERFILES,
    PROJECT_LABEL,
    ROOT,
    VARIANT_LABEL,
    VARIANTS,
)

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
    found = sdk.images.get(image)
    host = host_platform()
    if found.attrs.get("Architecture") != host.arch:
        raise ToolError(
            f"{image} is {found.attrs.get('Architecture')}, this machine builds {host.docker}: "
            f"`invoke base-image`, or pass --base-image."
        )
    origin = " (bootstrapped from Debian packages)" if PROJECT_LABEL in (found.labels or {}) else ""
    return f"{image}{origin}, {host.docker}"


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


def clean(*, include_base: bool, running: bool) -> None:
    """Remove what this checkout made, and nothing else: its stopped containers (running ones
    with `running`), the tags it set while they still name its images, those images once no tag
    names them, the bootstrapped base with `include_base`, and the project's build cache."""
    sdk = engine.client()
    mine: dict[str, str | list[str] | bool] = {
        "label": f"{ledger.CHECKOUT_LABEL}={ledger.checkout_id()}"
    }
    for container in sdk.containers.list(all=True, filters=mine):
        if container.status == "running" and not running:
            print(f"==> left running container {container.short_id} (--running removes it)")
            continue
        print(f"==> removing container {container.short_id} ({container.status})")
        container.remove(force=True)
    engine_id = engine.engine_id(sdk)
    for tag, ids in ledger.images(engine_id).items():
        remove_images_of(sdk, engine_id, tag, set(ids), include_base=include_base)
    cache = BuildCache()
    ours = cache.ours(project_dockerfiles())
    left = cache.prune(record.id for record in ours)
    print(f"==> pruned {len(ours) - len(left)} build cache records of the project's Dockerfiles")
    if stale := remove_stale_run_files(ROOT / RUNS):
        print(f"==> removed {stale} file(s) that builds killed outright left in {RUNS}")


def remove_stale_run_files(runs: Path) -> int:
    """Remove a build's own files (build.RUNS) where its process is gone: a build killed
    outright could not. How many went."""
    removed = 0
    for path in sorted(runs.iterdir()) if runs.is_dir() else ():
        pid = path.stem.rpartition("-")[2]
        if pid.isdigit() and not Path("/proc", pid).exists():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def project_dockerfiles() -> list[Path]:
    """The Dockerfiles whose build cache is the project's: both variants', and the pre-project
    ones the bench builds."""
    dockerfiles = [variant.dockerfile for variant in VARIANTS.values()]
    return dockerfiles + sorted(BEFORE_DOCKERFILES.glob("Dockerfile*"))


def remove_images_of(
    sdk: docker.DockerClient, engine_id: str, tag: str, ids: set[str], *, include_base: bool
) -> None:
    """Untag `tag` if it still names one of `ids`; remove those of `ids` no tag names any more."""
    try:
        image = sdk.images.get(tag)
    except docker.errors.ImageNotFound:
        image = None
    if image is not None and image.id in ids:
        labels = image.labels or {}
        # Images built on the bootstrapped base inherit its labels; only the base has no variant.
        if BASE_LABEL in labels and VARIANT_LABEL not in labels and not include_base:
            return  # the base stays unless asked for: every build needs it
        print(f"==> removing tag {tag}")
        sdk.images.remove(tag)
    gone = set()
    for image_id in ids:
        try:
            left = sdk.images.get(image_id)
        except docker.errors.ImageNotFound:
            gone.add(image_id)
            continue
        if not left.tags:  # a tag of the user's, or another checkout's, keeps it
            print(f"==> removing image {image_id[:19]}")
            with contextlib.suppress(docker.errors.APIError):  # a container still uses it
                sdk.images.remove(image_id)
                gone.add(image_id)
    ledger.forget(engine_id, tag, gone)

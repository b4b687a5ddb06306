"""The bench's build contexts: a temporary copy of what the builds need, and the changes it makes.

Ours builds from a copy of the repository's build inputs; the "before" Dockerfiles build from a
directory laid out like the write-up's `./python-ai-service` context (app/ and both requirement
files). The two changes the bench times a rebuild after are made to both copies alike: a
service-code-only change, and a bump of one light dependency (in the requirement files; ours then
runs `invoke lock`'s own function in its copy, as README tells users to, so only that pin moves).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from service_images import locks
from service_images.errors import RequirementsProblem
from service_images.tiers import install_inputs
from service_images.variants import ROOT, VARIANTS

BEFORE_DIR = Path("service_images/before")
"""The pre-project Dockerfiles, in the copy."""
BEFORE_CONTEXT = Path("before-context")
SERVICE = Path("python-ai-service/app")
SERVICE_FILE = Path("app/main.py")
"""The file the code-only change touches, under each copy's app/."""


@dataclass(frozen=True)
class Bump:
    """A light dependency moved to another release, as a routine dependency update would."""

    package: str
    to: str


LIGHT_BUMP = Bump("loguru", "0.7.2")


def copy_context(destination: Path) -> Path:
    """What the builds need, copied so that changes never touch the real tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".env*", "*.pem", "*.key")
    paths = {Path(".dockerignore"), SERVICE, BEFORE_DIR, Path("pyproject.toml")}
    paths |= {locks.BUILD_REQUIREMENTS.relative_to(ROOT)}
    paths |= {path.relative_to(ROOT) for path in locks.lock_files()}
    for variant in VARIANTS.values():
        paths |= {variant.dockerfile.relative_to(ROOT), variant.requirements.relative_to(ROOT)}
        paths |= {path.relative_to(ROOT) for path in install_inputs(variant)}
    for relative in sorted(paths):
        _copy(ROOT / relative, destination / relative, ignore)
    before = destination / BEFORE_CONTEXT
    _copy(ROOT / SERVICE, before / "app", ignore)
    for variant in VARIANTS.values():
        _copy(variant.requirements, before / variant.requirements.name, ignore)
    return destination


def _copy(source: Path, target: Path, ignore: object) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=ignore)  # type: ignore[arg-type]
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def change_service_code(context: Path) -> None:
    """A change to service code only: one more comment line in the service's main module."""
    for app in (context / SERVICE.parent, context / BEFORE_CONTEXT):
        with (app / SERVICE_FILE).open("a", encoding="utf-8") as handle:
            handle.write(f"\n# bench: a code-only change at {time.time_ns()}\n")


def bump_light_dependency(context: Path, bump: Bump = LIGHT_BUMP) -> str:
    """Move `bump.package` to `bump.to` in both copies, then lock ours with `invoke lock`'s
    function, every other pin kept; what changed, for the report."""
    pin = re.compile(rf"^{re.escape(bump.package)}==\S+", re.MULTILINE)
    old = ""
    for variant in VARIANTS.values():
        for requirements in (
            context / variant.requirements.name,
            context / BEFORE_CONTEXT / variant.requirements.name,
        ):
            text = requirements.read_text(encoding="utf-8")
            old = old or (pin.search(text) or [""])[0]
            requirements.write_text(pin.sub(f"{bump.package}=={bump.to}", text), encoding="utf-8")
    if old == f"{bump.package}=={bump.to}":
        # A bump that changes nothing would time a cache hit and call it a rebuild.
        raise RequirementsProblem(
            f"{old} is already pinned: bump {bump.package} to another release."
        )
    locks.lock_all(context, upgrade_packages=(bump.package,))
    return f"{old} -> {bump.package}=={bump.to}"

"""The bench's build contexts: a temporary copy of what the builds need, and the changes it makes.

Ours builds from a copy of the repository's build inputs; the "before" Dockerfiles build from a
directory laid out like the write-up's service context (app/ and both requirement files). The two
changes the bench times a rebuild after are made to both copies alike: a service-code-only
change, and a bump of one light dependency (in the requirement files; ours then runs `invoke
lock`'s own function in its copy, as README tells users to, so only that pin moves).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from service_images import inputs, locks
from service_images.errors import RequirementsProblem
from service_images.variants import ROOT, SERVICE_SOURCE, VARIANTS

BEFORE_DIR = Path("service_images/before")
"""The pre-project Dockerfiles, in the copy."""
BEFORE_CONTEXT = Path("before-context")
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
    inputs.copy(destination, inputs.for_builds() | inputs.for_locks() | {BEFORE_DIR})
    before = destination / BEFORE_CONTEXT
    inputs.copy(before, [Path(SERVICE_SOURCE.name)], source=SERVICE_SOURCE.parent)
    inputs.copy(before, [Path(variant.requirements.name) for variant in VARIANTS.values()])
    return destination


def change_service_code(context: Path) -> None:
    """A change to service code only: one more comment line in the service's main module."""
    for app in (context / SERVICE_SOURCE.parent.relative_to(ROOT), context / BEFORE_CONTEXT):
        with (app / SERVICE_FILE).open("a", encoding="utf-8") as handle:
            handle.write(f"\n# bench: a code-only change at {time.time_ns()}\n")


def bump_light_dependency(context: Path, bump: Bump = LIGHT_BUMP, *, lock: bool = True) -> str:
    """Move `bump.package` to `bump.to` in both copies, then (`lock`) lock ours with `invoke
    lock`'s function, every other pin kept; what changed, for the report."""
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
    if lock:
        locks.lock_all(context, upgrade_packages=(bump.package,))
    return f"{old} -> {bump.package}=={bump.to}"

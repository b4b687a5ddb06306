"""The bench's build contexts: a temporary copy of what the builds need, and the changes it makes.

Ours builds from a copy of the repository's build inputs; the "before" Dockerfiles build from a
directory laid out like the write-up's `./python-ai-service` context (app/ and both requirement
files). The two changes the bench times a rebuild after are made to both copies alike: a
service-code-only change, and a bump of one light dependency (in the requirement files, and in
the locks with the new version's real hashes, so the hash-checked install accepts it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from service_images import locks
from service_images.errors import RequirementsProblem
from service_images.tiers import entry_blocks, install_inputs
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
    paths = {Path(".dockerignore"), SERVICE, BEFORE_DIR}
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


def locked_block(bump: Bump) -> str:
    """The bumped release's lock entry with its hashes, resolved by uv like `invoke lock`."""
    command = [
        locks.uv_executable(), "pip", "compile", "-", "--no-deps", "--generate-hashes",
        "--no-header", "--python-version", locks.PYTHON_VERSION,
        "--python-platform", locks.PLATFORM,
    ]  # fmt: skip
    env = locks.environment()
    result = subprocess.run(
        command,
        input=f"{bump.package}=={bump.to}\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    blocks = entry_blocks(result.stdout)
    if result.returncode != 0 or bump.package not in blocks:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RequirementsProblem(
            f"cannot resolve {bump.package}=={bump.to} for the bench: {reason}"
        )
    return blocks[bump.package]


def bump_light_dependency(context: Path, bump: Bump = LIGHT_BUMP) -> str:
    """Move `bump.package` to `bump.to` in both copies; what changed, for the report."""
    block = locked_block(bump)
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
        lock = context / variant.lock.name
        text = lock.read_text(encoding="utf-8")
        current = entry_blocks(text)[bump.package]
        # The entry without its `# via` lines: replace exactly the name, version and hashes.
        start = text.index(current.splitlines()[0])
        end = start + len("\n".join(current.splitlines()))
        lock.write_text(text[:start] + block.rstrip("\n") + text[end:], encoding="utf-8")
    if old == f"{bump.package}=={bump.to}":
        # A bump that changes nothing would time a cache hit and call it a rebuild.
        raise RequirementsProblem(
            f"{old} is already pinned: bump {bump.package} to another release."
        )
    return f"{old} -> {bump.package}=={bump.to}"

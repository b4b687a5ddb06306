"""What the builds and `invoke lock` read from the repository, and a copy of it elsewhere.

The bench and the tests that change a file (a bumped pin, a broken hash, planted secrets) build
from a copy, so the working tree is never modified.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

from service_images import locks
from service_images.errors import MissingFile
from service_images.tiers import install_inputs
from service_images.variants import ROOT, SERVICE_SOURCE, VARIANTS, Variant

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".env*", "*.pem", "*.key")


def for_builds(variants: Iterable[Variant] = VARIANTS.values()) -> set[Path]:
    """What the variants' builds read, relative to the repository (`.build/` is staged)."""
    paths = {Path(".dockerignore"), SERVICE_SOURCE.relative_to(ROOT)}
    for variant in variants:
        paths.add(variant.dockerfile.relative_to(ROOT))
        paths |= {path.relative_to(ROOT) for path in install_inputs(variant)}
    return paths


def for_locks() -> set[Path]:
    """What `invoke lock` reads and writes, relative to the repository."""
    paths = {Path("pyproject.toml"), locks.BUILD_REQUIREMENTS.relative_to(ROOT)}
    paths |= {variant.requirements.relative_to(ROOT) for variant in VARIANTS.values()}
    return paths | {path.relative_to(ROOT) for path in locks.lock_files()}


def copy(destination: Path, paths: Iterable[Path], source: Path = ROOT) -> Path:
    """`paths` (relative) from `source` into `destination`, without caches, keys or `.env`s."""
    for relative in sorted(set(paths)):
        origin, target = source / relative, destination / relative
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=IGNORED, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    return destination


def export_commit(destination: Path, revision: str = "HEAD") -> Path:
    """The files of `revision` in `destination` (`git archive`): what was committed, not what a
    working tree holds."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision],
        cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    if archive.returncode != 0:
        reason = archive.stderr.decode(errors="replace").strip()
        raise MissingFile(f"cannot read commit {revision} here ({reason}): run from a git clone.")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tree:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later; Debian 12 has 3.11.2
            tree.extractall(destination, filter="data")
        else:
            tree.extractall(destination)  # our own commit, from git: no path leaves destination
    return destination

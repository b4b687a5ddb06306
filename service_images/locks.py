"""Hash-pinned lock files for both images, resolved for the images' platform.

The CI lock is resolved with the full lock as constraints, so a package present in both images has
the same version in both. Each lock records a digest of what it was made from, so a stale lock is
detected without resolving anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from service_images.errors import MissingFile, RequirementsProblem
from service_images.variants import ROOT, VARIANTS, Variant

PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
DIGEST_PREFIX = "# inputs-sha256: "


def lock_inputs(variant: Variant, variants: Mapping[str, Variant] = VARIANTS) -> list[Path]:
    """The files a variant's lock is resolved from: its requirements, plus the full lock for CI.

    `variants` is the table the full lock is taken from; the requirements check passes a copy
    rooted elsewhere, so temporary copies are checked against their own full lock.
    """
    inputs = [variant.requirements]
    if variant.name != "full":
        inputs.append(variants["full"].lock)
    return inputs


def inputs_digest(variant: Variant, variants: Mapping[str, Variant] = VARIANTS) -> str:
    digest = hashlib.sha256()
    for path in lock_inputs(variant, variants):
        if not path.is_file():
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            raise MissingFile(f"{shown} is missing: run `invoke lock`.")
        # Names, not paths: a copy of the files elsewhere has the same digest.
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def recorded_digest(lock: Path) -> str | None:
    if not lock.is_file():
        return None
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def is_stale(variant: Variant, variants: Mapping[str, Variant] = VARIANTS) -> bool:
    return recorded_digest(variant.lock) != inputs_digest(variant, variants)


def environment() -> dict[str, str]:
    """This process's environment, with the CA bundle where uv looks for one."""
    # uv trusts a custom CA bundle (a TLS-inspecting proxy) only through SSL_CERT_FILE.
    env = dict(os.environ)
    for name in ("REQUESTS_CA_BUNDLE", "PIP_CERT"):
        env.setdefault("SSL_CERT_FILE", env.get(name, ""))
    if not env["SSL_CERT_FILE"]:
        del env["SSL_CERT_FILE"]
    return env


def lock(variant: Variant, *, upgrade: bool = False) -> Path:
    """Resolve one variant's requirements into its lock file (with hashes)."""
    uv = shutil.which("uv")
    if uv is None:
        raise MissingFile("uv is not installed: `pip install uv` (scripts/bootstrap.sh does).")
    command = [
        uv, "pip", "compile", str(variant.requirements.relative_to(ROOT)),
        "--generate-hashes",
        "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM,
        "--custom-compile-command", "invoke lock",
    ]  # fmt: skip
    if upgrade:
        command.append("--upgrade")
    for constraint in lock_inputs(variant)[1:]:
        command += ["--constraint", str(constraint.relative_to(ROOT))]
    result = subprocess.run(
        command, cwd=ROOT, env=environment(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RequirementsProblem(
            f"{variant.requirements.name} does not resolve: {reason}; fix the pins and run "
            "`invoke lock` again."
        )
    variant.lock.write_text(f"{DIGEST_PREFIX}{inputs_digest(variant)}\n{result.stdout}")
    return variant.lock


def lock_all(*, upgrade: bool = False) -> list[Path]:
    # The full lock first: the CI lock is constrained by it.
    order = sorted(VARIANTS.values(), key=lambda variant: variant.name != "full")
    return [lock(variant, upgrade=upgrade) for variant in order]

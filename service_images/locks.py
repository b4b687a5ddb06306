"""Hash-pinned lock files for both images, one lock per image for linux/amd64 and linux/arm64.

Each lock is ONE universal resolution (`uv pip compile --universal --fork-strategy fewest`): one
version per package for every platform, and a marker on the entries only some platforms install
(`nvidia-*` and `triton` hold for `platform_machine == 'x86_64'` only). Beside each lock, uv writes
the same resolution as PEP 751 `pylock.<variant>.toml`, which names every file of every pinned
version with its hash: the requirements check reads it to prove, offline, that each platform has a
wheel for each entry it installs. `pylock.tools.toml` does the same for the uv the builds use
(pyproject's pin), so a foreign platform's uv binary is downloaded against a recorded hash, and
`requirements-build.lock` pins, with hashes, the build backends of the locked packages that PyPI
has only as source (the install steps pass it to uv as build constraints).

The CI lock is resolved with the full lock as constraints, so a package present in both images has
the same version in both. Each lock records a digest of what it was made from, so a stale lock is
detected without resolving anything.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from uv import find_uv_bin

from service_images import debian_tools
from service_images.errors import MissingFile, RequirementsProblem
from service_images.variants import ROOT, VARIANTS, Variant

PYTHON_VERSION = "3.11"
# The locks are universal; a single-platform resolution (the bench's one-package bump) uses this.
PLATFORM = "x86_64-manylinux_2_28"
DIGEST_PREFIX = "# inputs-sha256: "
UNIVERSAL = ("--universal", "--fork-strategy", "fewest", "--python-version", PYTHON_VERSION)
TOOLS_WHEELS = ROOT / "pylock.tools.toml"
BUILD_REQUIREMENTS = ROOT / "requirements-build.txt"
BUILD_LOCK = ROOT / "requirements-build.lock"


def wheels_file(variant: Variant) -> Path:
    """The PEP 751 twin of a variant's lock: every file of every pinned version, with its hash."""
    return variant.lock.parent / f"pylock.{variant.name}.toml"


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
    return files_digest(lock_inputs(variant, variants))


def files_digest(paths: Iterable[Path]) -> str:
    """What a lock records of the files it was made from (stale when they change)."""
    digest = hashlib.sha256()
    for path in paths:
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


def uv_executable() -> str:
    """The task suite's own uv (beside this interpreter), also when its bin/ is not on PATH."""
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        raise MissingFile("uv is not installed: `pip install -e .` (bootstrap.sh does).") from None


def compile_command(source: str, *extra: str) -> list[str]:
    return [uv_executable(), "pip", "compile", source, "--generate-hashes", *UNIVERSAL, *extra]


def run_uv(command: list[str], what: str) -> str:
    result = subprocess.run(
        command, cwd=ROOT, env=environment(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RequirementsProblem(
            f"{what} does not resolve: {reason}; fix the pins and run `invoke lock` again."
        )
    return result.stdout


def lock(variant: Variant, *, upgrade: bool = False) -> Path:
    """Resolve one variant's requirements into its lock file (with hashes) and its wheels file."""
    options = ["--custom-compile-command", "invoke lock"]
    if upgrade:
        options.append("--upgrade")
    for constraint in lock_inputs(variant)[1:]:
        options += ["--constraint", str(constraint.relative_to(ROOT))]
    source = str(variant.requirements.relative_to(ROOT))
    text = run_uv(compile_command(source, *options), variant.requirements.name)
    digest = f"{DIGEST_PREFIX}{inputs_digest(variant)}\n"
    wheels = wheels_file(variant)
    # The same inputs, so the same resolution; the check proves it (versions equal) anyway.
    run_uv(compile_command(source, *options, "-o", wheels.name), wheels.name)
    wheels.write_text(digest + wheels.read_text())
    variant.lock.write_text(digest + text)
    return variant.lock


def uv_pin() -> str:
    """The uv version of pyproject.toml's dependencies: the one version of uv everywhere."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        name, _, version = str(requirement).partition("==")
        if name.strip() == "uv" and version:
            return version.strip()
    raise MissingFile("pyproject.toml pins no uv (`uv==X` in [project] dependencies).")


def lock_tools() -> Path:
    """pylock.tools.toml: uv at pyproject's pin, every wheel of it with its hash."""
    version = uv_pin()
    with tempfile.TemporaryDirectory(prefix="tools-lock-") as work:
        source = Path(work) / "tools.txt"
        source.write_text(f"uv=={version}\n")
        command = compile_command(str(source), "--no-header", "-o", TOOLS_WHEELS.name)
        run_uv(command, f"uv=={version}")
    return TOOLS_WHEELS


def lock_build(*, upgrade: bool = False) -> Path:
    """requirements-build.lock: the sdists' build backends, pinned with hashes."""
    options = ["--custom-compile-command", "invoke lock", *(["--upgrade"] if upgrade else [])]
    text = run_uv(compile_command(BUILD_REQUIREMENTS.name, *options), BUILD_REQUIREMENTS.name)
    BUILD_LOCK.write_text(f"{DIGEST_PREFIX}{files_digest([BUILD_REQUIREMENTS])}\n{text}")
    return BUILD_LOCK


def lock_all(*, upgrade: bool = False) -> list[Path]:
    # The full lock first: the CI lock is constrained by it.
    order = sorted(VARIANTS.values(), key=lambda variant: variant.name != "full")
    variant_locks = [lock(variant, upgrade=upgrade) for variant in order]
    return [*variant_locks, lock_build(upgrade=upgrade), lock_tools(), debian_tools.lock()]

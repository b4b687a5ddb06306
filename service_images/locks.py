"""`invoke lock`: every lock file resolved again, all written or none.

Each variant's lock is ONE universal resolution for linux/amd64 and linux/arm64 (`uv pip compile
--universal --fork-strategy fewest`): one version per package for every platform, and a marker on
the entries only some platforms install (`nvidia-*` and `triton`: x86_64). The lock it replaces is
the resolution's preference, so a pin moves only where the requirements make it or `--upgrade` /
`--upgrade-package NAME` allow it. Its PEP 751 twin `pylock.<variant>.toml` (every file with its
hash, for the requirements check) is compiled with every version the lock pins as a constraint,
so both name the same versions, which is checked before anything is written. A variant whose lock
constrains another's (variants.Variant.constrained_by) is resolved first.

Beside them: `requirements-build.lock` (the sdists' build backends, with hashes),
`pylock.tools.toml` (every wheel of the uv the builds use, pyproject's pin) and `debian-tools.lock`
(binutils, from Debian's index). All are resolved into a temporary directory; only when every one
is there are they replaced. Each lock records a digest of what it was made from, so a stale lock
is detected without resolving anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from uv import find_uv_bin

from service_images import debian_tools, lockfile
from service_images.errors import IndexUnreachable, MissingFile, RequirementsProblem, ToolError
from service_images.variants import ROOT, Variant

PYTHON_VERSION = "3.11"
UNIVERSAL = ("--universal", "--fork-strategy", "fewest", "--python-version", PYTHON_VERSION)
TOOLS_WHEELS = ROOT / "pylock.tools.toml"
BUILD_REQUIREMENTS = ROOT / "requirements-build.txt"
BUILD_LOCK = ROOT / "requirements-build.lock"
# uv's words for a request that never got an answer (its `cause:` chain), as against a resolution
# that found no solution.
NETWORK_FAILURES = ("Failed to fetch", "error sending request", "Request failed after")


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


def uv_pin(root: Path = ROOT) -> str:
    """The uv version of pyproject.toml's dependencies: the one version of uv everywhere."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        name, _, version = str(requirement).partition("==")
        if name.strip() == "uv" and version:
            return version.strip()
    raise MissingFile("pyproject.toml pins no uv (`uv==X` in [project] dependencies).")


def compile_to(work: Path, source: str, output: str, *options: str) -> Path:
    """`uv pip compile` in `work`, by file names, so the lock's comments name no temporary path.

    uv reads `output`, where it already exists, as the resolution's preference.
    """
    command = [
        uv_executable(), "pip", "compile", source, "--generate-hashes", *UNIVERSAL,
        "--custom-compile-command", "invoke lock", "--quiet", "--output-file", output, *options,
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=work, env=environment(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        said = result.stderr.strip().splitlines() or ["no output"]
        lines = [line.strip().removeprefix("error: ").removeprefix("cause: ") for line in said]
        if any(failure in result.stderr for failure in NETWORK_FAILURES):
            failed = next((line for line in lines if line.startswith("Failed to fetch")), lines[0])
            raise IndexUnreachable(
                f"{source} cannot be resolved: a package index is unreachable ({failed}: "
                f"{lines[-1]}); check the network or proxy: nothing was written."
            )
        raise RequirementsProblem(
            f"{source} does not resolve: {lines[-1]}; fix the pins and run `invoke lock` again "
            "(nothing was written)."
        )
    return work / output


def lock_variant(
    variant: Variant, variants: Mapping[str, Variant], work: Path, options: Sequence[str]
) -> list[Path]:
    """Resolve one variant into `work`: its lock (the digest on top) and the lock's PEP 751 twin.

    `variants` is the table under `work`: the requirements copied there, a constraining variant's
    lock as just resolved.
    """
    inputs = lockfile.lock_inputs(variant, variants)
    source = variant.requirements.name
    constraints = [option for path in inputs[1:] for option in ("--constraint", path.name)]
    lock = compile_to(work, source, variant.lock.name, *options, *constraints)
    lockfile.record_digest(lock, lockfile.inputs_digest(variant, variants))
    entries = lockfile.read(lock).checked()
    pins = work / f"{variant.name}-pins.txt"
    pins.write_text("".join(f"{n}=={e.version}\n" for n, e in entries.items()), "utf-8")
    twin = lockfile.wheels_file(variant)
    (work / twin.name).unlink(missing_ok=True)  # nothing to prefer: every version is given
    compile_to(work, source, twin.name, *constraints, "--constraint", pins.name)
    lockfile.record_digest(work / twin.name, lockfile.inputs_digest(variant, variants))
    pinned = {(name, entry.version) for name, entry in entries.items()}
    if differ := sorted(
        f"{n}=={v}" for n, v in pinned ^ set(lockfile.read_pylock(work / twin.name))
    ):
        raise ToolError(
            f"uv wrote {twin.name} with other pins than {variant.lock.name} "
            f"({', '.join(differ[:6])}): nothing was written."
        )
    return [variant.lock, twin]


def lock_build(root: Path, work: Path, options: Sequence[str]) -> Path:
    """requirements-build.lock: the sdists' build backends, pinned with hashes."""
    source = root / BUILD_REQUIREMENTS.name
    shutil.copy2(source, work / source.name)
    lock = compile_to(work, source.name, BUILD_LOCK.name, *options)
    lockfile.record_digest(lock, lockfile.files_digest([source]))
    lockfile.read(lock).checked()
    return root / BUILD_LOCK.name


def lock_tools(root: Path, work: Path) -> Path:
    """pylock.tools.toml: uv at pyproject's pin, every wheel of it with its hash."""
    (work / "tools.txt").write_text(f"uv=={uv_pin(root)}\n", encoding="utf-8")
    compile_to(work, "tools.txt", TOOLS_WHEELS.name, "--no-header")
    return root / TOOLS_WHEELS.name


def lock_files(root: Path = ROOT) -> list[Path]:
    """Every file `invoke lock` writes under `root`."""
    variant_files = [
        path
        for variant in lockfile.variants_at(root).values()
        for path in (variant.lock, lockfile.wheels_file(variant))
    ]
    names = (BUILD_LOCK.name, TOOLS_WHEELS.name, *(lock.path.name for lock in debian_tools.LOCKS))
    return [*variant_files, *(root / name for name in names)]


def lock_all(
    root: Path = ROOT, *, upgrade: bool = False, upgrade_packages: Sequence[str] = ()
) -> list[str]:
    """Resolve every lock under `root` and replace them all; one line per file, what moved."""
    options = ["--upgrade"] if upgrade else []
    for name in upgrade_packages:
        options += ["--upgrade-package", name]
    variants = lockfile.variants_at(root)
    # On the same filesystem as the locks, so each is replaced by a rename.
    with tempfile.TemporaryDirectory(dir=root, prefix=".invoke-lock-") as temporary:
        work = Path(temporary)
        for target in lock_files(root):
            if target.is_file():  # the preference of its resolution
                shutil.copy2(target, work / target.name)
        for variant in variants.values():
            shutil.copy2(variant.requirements, work / variant.requirements.name)
        resolved = lockfile.variants_at(work)
        targets: list[Path] = []
        for variant in sorted(resolved.values(), key=lambda v: v.constrained_by is not None):
            targets += [root / path.name for path in lock_variant(variant, resolved, work, options)]
        targets.append(lock_build(root, work, options))
        targets.append(lock_tools(root, work))
        for debian in debian_tools.LOCKS:
            (work / debian.path.name).write_text(debian_tools.render(debian), encoding="utf-8")
            targets.append(root / debian.path.name)
        report = [changes(target, work / target.name) for target in targets]
        lockfile.replace_all({target: work / target.name for target in targets})
    return report


def changes(old: Path, new: Path) -> str:
    """One line for a file `invoke lock` writes: the pins that moved, or that none did."""
    if old.is_file() and old.read_bytes() == new.read_bytes():
        return f"==> {old.name}: unchanged"
    debian = {lock.path.name for lock in debian_tools.LOCKS}
    if not old.is_file() or not old.name.endswith(".lock") or old.name in debian:
        return f"==> wrote {old.name}"
    before = {n: e.version for n, e in lockfile.read(old).entries.items()}
    after = {n: e.version for n, e in lockfile.read(new).entries.items()}
    moved = [
        f"{name} {before.get(name, '-')} -> {after.get(name, '-')}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]
    return f"==> wrote {old.name}" + (f": {', '.join(moved)}" if moved else "")

"""A variant's lock cut into its install tiers (variants.TIERS), and the build's staged inputs.

Before each build, `stage()` writes into the build context's `.build/` directory what the
Dockerfiles bind-mount and never copy: one lock slice per tier (`.build/<variant>/<tier>.lock`,
entries exactly as the lock has them, hashes and platform markers included: uv skips on each
platform what its markers exclude) and uv for the platform being built (`.build/uv-<arch>`): the
task suite's own binary on the host's platform, else the binary of that platform's uv wheel at
the same version, downloaded against the hash `pylock.tools.toml` recorded. Both are derived every
time, so there is no second list to keep.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import httpx

from service_images import debian_tools, lockfile, locks
from service_images.errors import BuildFailed, MissingFile, RequirementsProblem
from service_images.files import write_atomically
from service_images.lockfile import Entry, wheel_tags
from service_images.platforms import Platform, host_platform
from service_images.variants import ROOT, TIERS, Tier, Variant, normalise

STAGE_DIR = ".build"
WHEEL_CACHE = f"{STAGE_DIR}/wheels"  # downloaded tool wheels, kept between builds (not in context)
INSTALL_SCRIPT = ROOT / "scripts" / "install-tier.sh"


def install_inputs(variant: Variant) -> list[Path]:
    """What a variant's install steps take from the build context besides what `stage()` writes
    under .build/ (from the first): its lock, the install script, the build backends' lock and
    the binutils packages' (the `tools` stage)."""
    return [variant.lock, INSTALL_SCRIPT, locks.BUILD_LOCK, debian_tools.LOCK]


def uv_target(target: Platform) -> str:
    """Where the uv for `target` is staged; the Dockerfiles pick it by TARGETARCH."""
    return f"{STAGE_DIR}/uv-{target.arch}"


def requirements_of(locked: Mapping[str, Entry]) -> dict[str, set[str]]:
    """package -> the locked packages it requires, read from the lock's `# via` comments."""
    needs: dict[str, set[str]] = {name: set() for name in locked}
    for name, entry in locked.items():
        for source in entry.via:
            parent = normalise(source)
            if parent in needs:
                needs[parent].add(name)
    return needs


def assign(locked: Mapping[str, Entry], tiers: tuple[Tier, ...] = TIERS) -> dict[str, list[str]]:
    """tier name -> its packages (sorted), in tier order; empty tiers are left out."""
    needs = requirements_of(locked)
    left = set(locked)
    assigned: dict[str, list[str]] = {}
    for tier in tiers:
        if tier.roots:
            members: set[str] = set()
            todo = [normalise(root) for root in tier.roots if normalise(root) in left]
            while todo:
                name = todo.pop()
                if name in members or name not in left:
                    continue
                members.add(name)
                todo += needs[name]
        else:
            members = set(left)
        left -= members
        if members:
            assigned[tier.name] = sorted(members)
    return assigned


def split(variant: Variant, lock: Path | None = None) -> dict[str, str]:
    """tier name -> that tier's slice of the variant's lock (or of `lock`, a copy of it).

    An empty, cut-off or unparsable lock is a RequirementsProblem: no slice is made from it.
    """
    entries = lockfile.read(lock or variant.lock).checked()
    header = f"# {variant.lock.name}, one install tier of it (service_images/tiers.py)\n"
    return {
        tier: header + "".join(entries[name].text for name in members)
        for tier, members in assign(entries).items()
    }


def uv_binary() -> tuple[Path, str]:
    """The task suite's own uv binary and the sha256 its wheel recorded for it (hex)."""
    try:
        distribution = importlib.metadata.distribution("uv")
    except importlib.metadata.PackageNotFoundError:
        raise MissingFile("uv is not installed: `pip install -e .` (bootstrap.sh does).") from None
    for record in distribution.files or ():
        # Installed as <prefix>/bin/uv; the wheel's RECORD holds the hash pip checked it against.
        if (
            record.name == "uv"
            and record.hash is not None
            and record.parts[-2] in ("bin", "Scripts")
        ):
            path = Path(str(distribution.locate_file(record))).resolve()
            padded = record.hash.value + "=" * (-len(record.hash.value) % 4)
            return path, base64.urlsafe_b64decode(padded).hex()
    raise MissingFile(
        "the uv distribution records no `uv` binary: reinstall it (pip install -e .)."
    )


def foreign_uv_binary(target: Platform, cache: Path) -> tuple[bytes, str]:
    """uv for another platform: its wheel at pyproject's pin, checked against pylock.tools.toml.

    The wheel is downloaded once into `cache`; the binary is `uv-X.data/scripts/uv` in it.
    """
    version = locks.uv_pin()
    try:
        uv = lockfile.read_pylock(locks.TOOLS_WHEELS)[("uv", version)]
    except (RequirementsProblem, KeyError):
        raise MissingFile(
            f"{locks.TOOLS_WHEELS.name} has no uv {version} (pyproject's pin): run `invoke lock`."
        ) from None
    supported = target.wheel_tags()
    fitting = [w for w in uv.get("wheels", []) if supported & wheel_tags(lockfile.wheel_name(w))]
    if not fitting:
        raise MissingFile(f"uv {version} has no wheel for {target.docker} on PyPI.")
    wheel = fitting[0]
    name, sha256 = lockfile.wheel_name(wheel), str(wheel["hashes"]["sha256"])
    path = cache / name
    data = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != sha256:
        print(f"==> downloading {name} (uv for {target.docker})", flush=True)
        try:
            # trust_env: the machine's proxy and CA bundle (SSL_CERT_FILE), as for pip and uv.
            response = httpx.get(str(wheel["url"]), follow_redirects=True, timeout=300)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise BuildFailed(f"could not download {name}: {error}") from None
        data = response.content
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BuildFailed(
                f"{name} does not match the sha256 {locks.TOOLS_WHEELS.name} records: not used."
            )
        write_atomically(path, data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        binary = archive.read(f"uv-{version}.data/scripts/uv")
    return binary, hashlib.sha256(binary).hexdigest()


def stage(
    variant: Variant, context: Path, targets: tuple[Platform, ...] | None = None
) -> dict[str, str]:
    """Write the tier slices of the context's lock, and no other, and uv for each of `targets`
    (default: the host's platform) into `context/.build`; the build args that go with them (the
    sha256 each uv binary's wheel recorded, by architecture: UV_SHA256_AMD64, UV_SHA256_ARM64)."""
    slices = split(variant, context / variant.lock.relative_to(ROOT))
    directory = context / STAGE_DIR / variant.name
    for tier, text in slices.items():
        write_atomically(directory / f"{tier}.lock", text.encode())
    # Only this build's slices: a tier the lock no longer has leaves no old slice to mount.
    for stale in set(directory.glob("*.lock")) - {directory / f"{t}.lock" for t in slices}:
        stale.unlink(missing_ok=True)
    build_args = {}
    for target in targets or (host_platform(),):
        if target.native:
            source, sha256 = uv_binary()
            binary = source.read_bytes()
            if hashlib.sha256(binary).hexdigest() != sha256:
                raise MissingFile(
                    f"{source} does not match the hash its wheel recorded: reinstall uv."
                )
        else:
            binary, sha256 = foreign_uv_binary(target, ROOT / WHEEL_CACHE)
        staged = context / uv_target(target)
        if not staged.is_file() or hashlib.sha256(staged.read_bytes()).hexdigest() != sha256:
            write_atomically(staged, binary, mode=0o755)
        build_args[f"UV_SHA256_{target.arch.upper()}"] = sha256
    return build_args

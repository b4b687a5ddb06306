"""A variant's lock cut into its install tiers (variants.TIERS), and the build's staged inputs.

Before each build, `stage()` writes into the build context's `.build/` directory what the
Dockerfiles bind-mount and never copy: one lock slice per tier (`.build/<variant>/<tier>.lock`,
entries exactly as the lock has them, hashes included) and the task suite's own uv binary. Both
are derived every time, so there is no second list to keep.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from service_images.errors import MissingFile, RequirementsProblem
from service_images.requirements import LOCK_ENTRY, Locked, read_lock
from service_images.variants import ROOT, TIERS, Tier, Variant, normalise

STAGE_DIR = ".build"
UV_BINARY = f"{STAGE_DIR}/uv"


def entry_blocks(lock_text: str) -> dict[str, str]:
    """Each `name==version` entry of a lock with its hash lines.

    The `# via` comments are left out: a package that gains a dependant in another tier must not
    change this tier's slice, or its layer would be rebuilt for nothing.
    """
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock_text.splitlines():
        if match := LOCK_ENTRY.match(line):
            current = blocks.setdefault(normalise(match["name"]), [])
        elif not line[:1].isspace():
            current = None
        if current is not None and not line.lstrip().startswith("#"):
            current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in blocks.items()}


def requirements_of(locked: Mapping[str, Locked]) -> dict[str, set[str]]:
    """package -> the locked packages it requires, read from the lock's `# via` comments."""
    needs: dict[str, set[str]] = {name: set() for name in locked}
    for name, entry in locked.items():
        for source in entry.via:
            parent = normalise(source)
            if parent in needs:
                needs[parent].add(name)
    return needs


def assign(locked: Mapping[str, Locked], tiers: tuple[Tier, ...] = TIERS) -> dict[str, list[str]]:
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
    """tier name -> that tier's slice of the variant's lock (or of `lock`, a copy of it)."""
    lock = lock or variant.lock
    if not lock.is_file():
        raise MissingFile(f"{lock} is missing: run `invoke lock`.")
    problems: list[str] = []
    locked = read_lock(lock, problems)
    if problems:
        raise RequirementsProblem(" ".join(problems))
    blocks = entry_blocks(lock.read_text(encoding="utf-8"))
    header = f"# {variant.lock.name}, one install tier of it (service_images/tiers.py)\n"
    return {
        tier: header + "".join(blocks[name] for name in members)
        for tier, members in assign(locked).items()
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


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Concurrent builds of one context may stage the same file: never show a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def stage(variant: Variant, context: Path) -> dict[str, str]:
    """Write the tier slices of the context's lock and uv into `context/.build`; the build args
    that go with them."""
    for tier, text in split(variant, context / variant.lock.relative_to(ROOT)).items():
        write_atomically(context / STAGE_DIR / variant.name / f"{tier}.lock", text.encode())
    source, sha256 = uv_binary()
    if hashlib.sha256(source.read_bytes()).hexdigest() != sha256:
        raise MissingFile(f"{source} does not match the hash its wheel recorded: reinstall uv.")
    target = context / UV_BINARY
    if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != sha256:
        write_atomically(target, source.read_bytes(), mode=0o755)
    return {"UV_SHA256": sha256}


def mounted_tiers(dockerfile: Path) -> list[str]:
    """The tier slices a Dockerfile installs, in order (`.build/<variant>/<tier>.lock` mounts)."""
    pattern = re.compile(rf"{re.escape(STAGE_DIR)}/[a-z]+/([a-z-]+)\.lock")
    return pattern.findall(dockerfile.read_text(encoding="utf-8"))

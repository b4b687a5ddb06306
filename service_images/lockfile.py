"""The lock files, read and written: the one module that knows their formats.

- `requirements*.lock` (and `requirements-build.lock`): uv's hash-pinned requirements format, one
  entry per package (`name==version ; marker \\`, its `--hash` lines, `# via` comments). Read
  strictly: a lock that is empty, cut off inside an entry, or holds a line that is neither is a
  problem, never a shorter lock. Each entry keeps its text, which the install tiers are cut from.
- `pylock.*.toml`: PEP 751, the same resolution naming every file with its hash; read with tomllib.
- `debian-tools.lock`: service_images/debian_tools.py reads its three columns.

`replace_all` writes a set of files all or nothing. Nothing here resolves or downloads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from service_images.errors import MissingFile, RequirementsProblem, WriteFailed
from service_images.platforms import PLATFORMS, Platform, host_platform
from service_images.variants import ROOT, VARIANTS, Variant, normalise

DIGEST_PREFIX = "# inputs-sha256: "
HASH_LINE = re.compile(r"^\s+--hash=sha256:(?P<hash>[0-9a-f]{64})(?P<more>\s+\\)?$")
# `# via pkg`, `# via` then `#   pkg` lines; `-c FILE` names a constraint, which pulls nothing in.
VIA_LINE = re.compile(r"^\s+#\s+(?:via\s+)?(?!via$|-c )(?P<source>\S.*)$")


@dataclass(frozen=True)
class Entry:
    """One package pinned by a requirements-format lock."""

    name: str
    version: str
    marker: str | None
    """Where it is installed (`platform_machine == 'x86_64'`); None: everywhere."""
    hashes: frozenset[str]
    """The sha256 digests the lock accepts for its files."""
    via: tuple[str, ...]
    """What pulled it in, from the lock's `# via` comments."""
    text: str
    """Its requirement and hash lines as the lock has them. Not its `# via` comments: a package
    that gains a dependant in another tier must not change its own tier's slice (and layer)."""

    def installed_on(self, target: Platform) -> bool:
        return target.installs(self.marker)


@dataclass(frozen=True)
class Lock:
    """A requirements-format lock, parsed: its entries by name, and what is wrong with it."""

    entries: dict[str, Entry]
    problems: tuple[str, ...]

    def checked(self) -> dict[str, Entry]:
        """The entries, or RequirementsProblem naming every problem of the file."""
        if self.problems:
            raise RequirementsProblem(" ".join(self.problems))
        return self.entries


@dataclass
class _Reading:
    number: int
    requirement: Requirement
    lines: list[str]
    hashes: list[str] = dataclasses.field(default_factory=list)
    via: list[str] = dataclasses.field(default_factory=list)
    continued: bool = False


def read(path: Path) -> Lock:
    """Parse a requirements-format lock; a missing file is MissingFile."""
    if not path.is_file():
        raise MissingFile(f"{path.name} is missing: run `invoke lock`.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return Lock({}, (f"{path.name} is not text: run `invoke lock`.",))
    return parse(text, path)


def parse(text: str, path: Path) -> Lock:
    name = path.name
    problems: list[str] = []
    readings: list[_Reading] = []
    current: _Reading | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if line[:1].isspace() and current is not None:
            if current.continued:  # a `\` ended the line before: a hash must follow
                if digest := HASH_LINE.match(line):
                    current.hashes.append(digest["hash"])
                    current.lines.append(line)
                    current.continued = digest["more"] is not None
                else:
                    problems.append(f"{name}:{number}: the entry is cut off: run `invoke lock`.")
                    current.continued = False
            elif not stripped.startswith("#"):
                problems.append(f"{name}:{number}: cannot parse {stripped!r} in an entry.")
            elif via := VIA_LINE.match(line):
                current.via.append(via["source"].strip())
            continue
        if current is not None and current.continued:
            problems.append(f"{name}:{number}: the entry is cut off: run `invoke lock`.")
        current = None
        if not stripped or stripped.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(stripped.removesuffix("\\").strip())
        except InvalidRequirement:
            problems.append(f"{name}:{number}: cannot parse lock entry {stripped!r}.")
            continue
        current = _Reading(number, requirement, [line], continued=stripped.endswith("\\"))
        readings.append(current)
    if current is not None and current.continued:
        problems.append(f"{name}: the last entry is cut off: run `invoke lock`.")
    entries: dict[str, Entry] = {}
    for reading in readings:
        entry = _entry(reading, name, problems)
        if entry is None:
            continue
        if entry.name in entries:
            problems.append(
                f"{name}:{reading.number}: {entry.name} is locked twice "
                f"({entries[entry.name].version} and {entry.version}): one version per package "
                "for every platform."
            )
            continue
        entries[entry.name] = entry
    if not entries and not problems:
        problems.append(f"{name} locks nothing: run `invoke lock`.")
    return Lock(entries, tuple(problems))


def _entry(reading: _Reading, name: str, problems: list[str]) -> Entry | None:
    requirement, where = reading.requirement, f"{name}:{reading.number}"
    specifiers = list(requirement.specifier)
    if requirement.url or len(specifiers) != 1 or specifiers[0].operator not in ("==", "==="):
        problems.append(f"{where}: {requirement} is not one exact pin.")
        return None
    marker = str(requirement.marker) if requirement.marker else None
    try:
        PLATFORMS["linux/amd64"].installs(marker)
    except (InvalidMarker, UndefinedEnvironmentName) as error:
        problems.append(f"{where}: {requirement.name}: bad marker {marker!r} ({error}).")
    package = normalise(requirement.name)
    if not reading.hashes:
        problems.append(f"{name} pins {package} without a hash: run `invoke lock`.")
    return Entry(
        name=package,
        version=specifiers[0].version,
        marker=marker,
        hashes=frozenset(reading.hashes),
        via=tuple(reading.via),
        text="\n".join(reading.lines) + "\n",
    )


def locked_versions(lock: Path, target: Platform | None = None) -> dict[str, str]:
    """`{name: version}` of every package a lock pins for `target` (None: this machine's platform).

    What an image of that platform must hold, exactly (the contract's and the SBOM's expectation):
    the entries whose markers hold there.
    """
    target = target or host_platform()
    entries = read(lock).checked()
    return {name: entry.version for name, entry in entries.items() if entry.installed_on(target)}


# -- PEP 751 ----------------------------------------------------------------------------------


def wheels_file(variant: Variant) -> Path:
    """The PEP 751 twin of a variant's lock: every file of every pinned version, with its hash."""
    return variant.lock.parent / f"pylock.{variant.name}.toml"


def read_pylock(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(name, version) -> its `[[packages]]` table; RequirementsProblem when it is no PEP 751."""
    try:
        packages = tomllib.loads(path.read_text(encoding="utf-8"))["packages"]
        return {(normalise(p["name"]), str(p["version"])): p for p in packages}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise RequirementsProblem(
            f"{path.name} is not a PEP 751 lock ({error}): run `invoke lock`."
        ) from None


def wheel_name(wheel: Mapping[str, object]) -> str:
    return str(wheel.get("name") or str(wheel.get("url", "")).rpartition("/")[2])


def wheel_tags(filename: str) -> frozenset[Tag]:
    try:
        return parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return frozenset()


# -- what a lock was made from ----------------------------------------------------------------


def files_digest(paths: Iterable[Path]) -> str:
    """What a lock records of the files it was made from (stale when they change)."""
    digest = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            raise MissingFile(f"{path.name} is missing: run `invoke lock`.")
        # Names, not paths: a copy of the files elsewhere has the same digest.
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def recorded_digest(lock: Path) -> str | None:
    if not lock.is_file():
        return None
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def record_digest(path: Path, digest: str) -> None:
    """Put the inputs' digest on a lock's first line."""
    path.write_text(f"{DIGEST_PREFIX}{digest}\n{path.read_text(encoding='utf-8')}", "utf-8")


def variants_at(root: Path) -> dict[str, Variant]:
    """The variants table with its files under `root` instead of the repository."""
    return {
        name: dataclasses.replace(
            variant,
            dockerfile=root / variant.dockerfile.relative_to(ROOT),
            requirements=root / variant.requirements.relative_to(ROOT),
            lock=root / variant.lock.relative_to(ROOT),
        )
        for name, variant in VARIANTS.items()
    }


def lock_inputs(variant: Variant, variants: Mapping[str, Variant]) -> list[Path]:
    """The files a variant's lock is resolved from: its requirements, and the lock of the variant
    that constrains it (the CI lock is resolved with the full lock as constraints)."""
    inputs = [variant.requirements]
    if variant.constrained_by is not None:
        inputs.append(variants[variant.constrained_by].lock)
    return inputs


def inputs_digest(variant: Variant, variants: Mapping[str, Variant]) -> str:
    return files_digest(lock_inputs(variant, variants))


def is_stale(variant: Variant, variants: Mapping[str, Variant]) -> bool:
    return recorded_digest(variant.lock) != inputs_digest(variant, variants)


# -- writing ----------------------------------------------------------------------------------


def replace_all(staged: Mapping[Path, Path]) -> None:
    """Move each staged file (value) onto its target (key), all or none.

    Each target is replaced by one rename, so a reader never sees half a file; a failure puts
    back every target already replaced.
    """
    done: list[tuple[Path, Path | None]] = []
    try:
        for target, source in staged.items():
            backup = None
            if target.exists():
                backup = source.with_name(f"{source.name}.previous")
                shutil.copy2(target, backup)
            os.replace(source, target)
            done.append((target, backup))
    except OSError as error:
        for replaced, backup in reversed(done):
            if backup is None:
                replaced.unlink(missing_ok=True)
            else:
                os.replace(backup, replaced)
        raise WriteFailed(
            f"could not write {target.name} ({error.strerror or error}): no lock file was changed."
        ) from None

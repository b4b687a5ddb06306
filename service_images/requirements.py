"""Integrity check of both images' requirements and locks (`nox -s requirements`).

Each lock serves linux/amd64 and linux/arm64 (service_images/platforms.py): one version per
package, a marker on the entries only some platforms install, and for every entry a platform
installs a wheel for that platform whose hash the lock pins (read from the lock's PEP 751 twin,
pylock.<variant>.toml, which names each file).

Reads files only: no Docker, no resolver, no network. Every problem found is collected and reported
in one message, so one run shows everything to fix. The check takes a root directory, so the tests
run it on temporary copies; the real files are the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from service_images import debian_tools, lockfile, locks
from service_images.cli import user_errors
from service_images.errors import RequirementsProblem
from service_images.lockfile import Entry
from service_images.platforms import PLATFORMS
from service_images.variants import ROOT, Variant, normalise

# pip's inline comment: a `#` after whitespace ends the requirement.
INLINE_COMMENT = re.compile(r"\s+#.*$")
# Pure-Python packages PyPI has no wheel of: uv builds them in the install step on any platform
# (setuptools, no compiler). Listed by name, so a new one is a decision, and still hash-pinned:
# the lock must pin their sdist's hash.
SDIST_ONLY = {"ta": "pure Python; its releases on PyPI are sdists only"}


@dataclass(frozen=True)
class Direct:
    """One line of a requirements file."""

    location: str
    """`file:line`, for messages."""
    requirement: Requirement

    @property
    def name(self) -> str:
        return normalise(self.requirement.name)

    @property
    def pin(self) -> str | None:
        """The exact version, or None when the requirement is not exactly one `==X` pin."""
        specifiers = list(self.requirement.specifier)
        if self.requirement.url or len(specifiers) != 1:
            return None
        (specifier,) = specifiers
        if specifier.operator != "==" or specifier.version.endswith(".*"):
            return None
        return specifier.version


@dataclass
class Files:
    """One variant's requirements and lock, parsed."""

    variant: Variant
    direct: dict[str, Direct] = dataclasses.field(default_factory=dict)
    locked: dict[str, Entry] = dataclasses.field(default_factory=dict)


def read_requirements(path: Path, problems: list[str]) -> dict[str, Direct]:
    direct: dict[str, Direct] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = INLINE_COMMENT.sub("", raw).strip()
        if not line or line.startswith("#"):
            continue
        location = f"{path.name}:{number}"
        try:
            entry = Direct(location, Requirement(line))
        except InvalidRequirement as error:
            problems.append(f"{location}: cannot parse {line!r} ({error}).")
            continue
        if entry.name in direct:
            first = direct[entry.name].location
            problems.append(f"{location}: {entry.name} is listed again (first at {first}).")
            continue
        direct[entry.name] = entry
    return direct


def read_files(variant: Variant, problems: list[str]) -> Files:
    files = Files(variant)
    for path in (variant.requirements, variant.lock):
        if not path.is_file():
            problems.append(f"{path.name} is missing (the {variant.name} image needs it).")
    if variant.requirements.is_file():
        files.direct = read_requirements(variant.requirements, problems)
    if variant.lock.is_file():
        lock = lockfile.read(variant.lock)
        files.locked = lock.entries
        problems += lock.problems
    return files


def pin_problems(files: Files) -> Iterator[str]:
    for entry in files.direct.values():
        if entry.pin is None:
            yield (
                f"{entry.location}: {entry.requirement} is not pinned exactly; "
                f"use {entry.requirement.name}==<version>."
            )
        elif entry.name in files.locked and files.locked[entry.name].version != entry.pin:
            yield (
                f"{entry.location}: {entry.name} is pinned to {entry.pin} but "
                f"{files.variant.lock.name} has {files.locked[entry.name].version}."
            )


def forbidden_problems(files: Files) -> Iterator[str]:
    """Forbidden (heavy) packages among a variant's direct requirements or anywhere in its lock."""
    variant = files.variant
    for entry in files.direct.values():
        if variant.forbids(entry.name):
            yield (
                f"{entry.location}: {entry.name} is a heavy package, forbidden in the "
                f"{variant.name} image (HEAVY_PACKAGES in service_images/variants.py)."
            )
    for name, locked in files.locked.items():
        if variant.forbids(name) and name not in files.direct:
            via = ", ".join(locked.via) or "unknown"
            yield (
                f"{variant.lock.name}: {name}=={locked.version} (via {via}) is a heavy package, "
                f"forbidden in the {variant.name} image."
            )


def agreement_problems(first: Files, second: Files) -> Iterator[str]:
    """Packages both variants have must be the same in both: direct pins and locked versions."""
    for name in sorted(first.direct.keys() & second.direct.keys()):
        a, b = first.direct[name].requirement, second.direct[name].requirement
        differences = [
            what
            for what, left, right in (
                ("pin", a.specifier, b.specifier),
                ("extras", a.extras, b.extras),
                ("marker", str(a.marker), str(b.marker)),
                ("url", a.url, b.url),
            )
            if left != right
        ]
        if differences:
            yield (
                f"{name} differs in {' and '.join(differences)}: "
                f"{first.direct[name].location} has {a}, {second.direct[name].location} has {b}."
            )
    for name in sorted(first.locked.keys() & second.locked.keys()):
        a_version, b_version = first.locked[name].version, second.locked[name].version
        if a_version != b_version:
            yield (
                f"the locks disagree on {name}: {first.variant.lock.name} has {a_version}, "
                f"{second.variant.lock.name} has {b_version}."
            )


def wheel_problems(files: Files) -> Iterator[str]:
    """Every entry has, on every platform that installs it, a wheel whose hash the lock pins.

    The wheels' file names come from the lock's PEP 751 twin (`invoke lock` writes both from the
    same pins): a package that would need a compiler on one platform is named here, offline,
    not by a failed build on that platform.
    """
    variant, lock = files.variant, files.variant.lock
    path = lockfile.wheels_file(variant)
    if not lock.is_file():
        return  # already reported as missing
    if not path.is_file():
        yield f"{path.name} is missing (the wheels of {lock.name}): run `invoke lock`."
        return
    try:
        index = lockfile.read_pylock(path)
    except RequirementsProblem as error:
        yield error.message
        return
    if lockfile.recorded_digest(path) != lockfile.recorded_digest(lock):
        yield f"{path.name} and {lock.name} come from different inputs: run `invoke lock`."
    pinned = {(name, entry.version) for name, entry in files.locked.items()}
    if differ := sorted(f"{name}=={version}" for name, version in pinned ^ index.keys()):
        yield (
            f"{path.name} and {lock.name} pin different versions ({', '.join(differ[:6])}"
            f"{', ...' if len(differ) > 6 else ''}): run `invoke lock`."
        )
    tags = {target: target.wheel_tags() for target in PLATFORMS.values()}
    for name, entry in sorted(files.locked.items()):
        if (name, entry.version) not in index:
            continue  # reported above
        files_of = index[name, entry.version]
        wheels = [(lockfile.wheel_name(wheel), wheel) for wheel in files_of.get("wheels", [])]
        if name in SDIST_ONLY and not wheels:
            sdist = files_of.get("sdist", {})
            if sdist.get("hashes", {}).get("sha256") not in entry.hashes:
                yield f"{name}=={entry.version}: {lock.name} pins no hash of its sdist."
            continue
        for target, supported in tags.items():
            if not entry.installed_on(target):
                continue
            fits = [
                (file, wheel) for file, wheel in wheels if supported & lockfile.wheel_tags(file)
            ]
            if not fits:
                yield (
                    f"{name}=={entry.version} has no wheel for {target.docker} (CPython 3.11, "
                    f"glibc 2.36) in {lock.name}: only an sdist or other platforms' wheels."
                )
            elif not any(
                wheel.get("hashes", {}).get("sha256") in entry.hashes for _, wheel in fits
            ):
                yield (
                    f"{name}=={entry.version}: {lock.name} pins no hash of its {target.docker} "
                    f"wheel ({fits[0][0]}): run `invoke lock`."
                )


def staleness_problems(variant: Variant, variants: Mapping[str, Variant]) -> Iterator[str]:
    inputs = lockfile.lock_inputs(variant, variants)
    if not variant.lock.is_file() or not all(path.is_file() for path in inputs):
        return  # already reported as missing
    if lockfile.is_stale(variant, variants):
        yield (
            f"{variant.lock.name} is stale: it was not made from the current "
            f"{' and '.join(path.name for path in inputs)}; run `invoke lock`."
        )


def build_lock_problems(root: Path) -> Iterator[str]:
    """The sdists' build-backend lock: present, made from requirements-build.txt, hashed."""
    lock, source = root / locks.BUILD_LOCK.name, root / locks.BUILD_REQUIREMENTS.name
    if not source.is_file() or not lock.is_file():
        missing = source if not source.is_file() else lock
        yield f"{missing.name} is missing: run `invoke lock`."
        return
    if lockfile.recorded_digest(lock) != lockfile.files_digest([source]):
        yield (
            f"{lock.name} is stale: it was not made from the current {source.name}; "
            "run `invoke lock`."
        )
    yield from lockfile.read(lock).problems


def check(root: Path = ROOT) -> str:
    """Check the requirements and locks under `root`; the summary line, or RequirementsProblem."""
    variants = lockfile.variants_at(root)
    problems: list[str] = []
    parsed = {name: read_files(variant, problems) for name, variant in variants.items()}
    for files in parsed.values():
        problems += pin_problems(files)
        problems += forbidden_problems(files)
        problems += staleness_problems(files.variant, variants)
        problems += wheel_problems(files)
    problems += build_lock_problems(root)
    problems += debian_tools.lock_problems(root)
    names = sorted(parsed)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            problems += agreement_problems(parsed[first], parsed[second])
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise RequirementsProblem(f"requirements: {count}:\n{listing}")
    counts = "; ".join(
        f"{len(files.direct)} direct, {len(files.locked)} locked for {name}"
        for name, files in parsed.items()
    )
    platforms = " and ".join(PLATFORMS)
    return f"requirements: OK ({counts}; locks fresh; a hashed wheel for {platforms})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service_images.requirements",
        description="Check both images' requirements files and locks against each other.",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="directory holding the files (default: the repo)"
    )
    args = parser.parse_args(argv)
    with user_errors():
        print(check(args.root))


if __name__ == "__main__":
    main()

"""Integrity check of both images' requirements and locks (`nox -s requirements`).

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

from service_images import locks
from service_images.cli import user_errors
from service_images.errors import RequirementsProblem
from service_images.variants import ROOT, VARIANTS, Variant, normalise

# pip's inline comment: a `#` after whitespace ends the requirement.
INLINE_COMMENT = re.compile(r"\s+#.*$")
# A lock entry as uv and pip-compile write it: `name==version \` at the start of a line.
LOCK_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
)
LOCK_VIA = re.compile(r"^\s+#\s+(?:via\s+)?(?P<source>\S.*)$")


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


@dataclass(frozen=True)
class Locked:
    """One package pinned by a lock."""

    version: str
    via: tuple[str, ...]
    """What pulled it in, from the lock's `# via` comments."""


@dataclass
class Files:
    """One variant's requirements and lock, parsed."""

    variant: Variant
    direct: dict[str, Direct] = dataclasses.field(default_factory=dict)
    locked: dict[str, Locked] = dataclasses.field(default_factory=dict)


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


def read_lock(path: Path, problems: list[str]) -> dict[str, Locked]:
    """`name==version` entries of a lock, with the `# via` lines that follow each."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "-")):
            current = None
            continue
        if line[0].isspace():
            via = LOCK_VIA.match(line)
            # `-c` names a constraint file, which limits versions but pulls nothing in.
            if (
                current is not None
                and via
                and via["source"] != "via"
                and not via["source"].startswith("-c ")
            ):
                current.append(via["source"].strip())
            continue
        match = LOCK_ENTRY.match(line)
        if match is None:
            problems.append(f"{path.name}:{number}: cannot parse lock entry {line.strip()!r}.")
            current = None
            continue
        current = []
        entries[normalise(match["name"])] = (match["version"], current)
    return {name: Locked(version, tuple(via)) for name, (version, via) in entries.items()}


def locked_versions(lock: Path) -> dict[str, str]:
    """`{name: version}` of every package a lock pins (the image contract's expectation)."""
    problems: list[str] = []
    entries = read_lock(lock, problems)
    if problems:
        raise RequirementsProblem(" ".join(problems))
    return {name: entry.version for name, entry in entries.items()}


def read_files(variant: Variant, problems: list[str]) -> Files:
    files = Files(variant)
    for path in (variant.requirements, variant.lock):
        if not path.is_file():
            problems.append(f"{path.name} is missing (the {variant.name} image needs it).")
    if variant.requirements.is_file():
        files.direct = read_requirements(variant.requirements, problems)
    if variant.lock.is_file():
        files.locked = read_lock(variant.lock, problems)
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


def staleness_problems(variant: Variant, variants: Mapping[str, Variant]) -> Iterator[str]:
    inputs = locks.lock_inputs(variant, variants)
    if not variant.lock.is_file() or not all(path.is_file() for path in inputs):
        return  # already reported as missing
    if locks.is_stale(variant, variants):
        yield (
            f"{variant.lock.name} is stale: it was not made from the current "
            f"{' and '.join(path.name for path in inputs)}; run `invoke lock`."
        )


def check(root: Path = ROOT) -> str:
    """Check the requirements and locks under `root`; the summary line, or RequirementsProblem."""
    variants = variants_at(root)
    problems: list[str] = []
    parsed = {name: read_files(variant, problems) for name, variant in variants.items()}
    for files in parsed.values():
        problems += pin_problems(files)
        problems += forbidden_problems(files)
        problems += staleness_problems(files.variant, variants)
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
    return f"requirements: OK ({counts}; locks fresh)"


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

"""The project's BuildKit cache: listing records, telling ours from the engine's other cache,
pruning exactly ours by record id. `invoke clean` and the bench both use this.

Ours are the cache mounts whose id starts with CACHE_ID_PREFIX (BuildKit 0.13 and later show a
mount's id in its description) and the records of our Dockerfiles' own steps, which BuildKit
describes by the instruction: "mount / from exec /bin/sh -c <RUN command>", or
"[<stage> n/m] <instruction>". Records any build makes alike (the build context's copy, say)
are not told apart, and stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from service_images import engine, project

# The Dockerfiles' cache mounts all have ids starting with this.
CACHE_ID_PREFIX = f"{project.NAME}-"
MOUNT_ID = re.compile(r' with id "/?([^"]+)"$')
STEP_PREFIX = re.compile(r"^\[[^\]]+ \d+/\d+\] ")
RUN_FLAGS = re.compile(r"^((?:--\S+\s+)*)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class CacheRecord:
    id: str
    type: str
    description: str
    size: str = ""
    parent: str = ""

    @property
    def mount_id(self) -> str | None:
        found = MOUNT_ID.search(self.description)
        return found[1] if self.type == "exec.cachemount" and found else None


def parse_du_verbose(text: str) -> list[CacheRecord]:
    """`docker buildx du --verbose`: blocks of `Key:<tabs>value` lines separated by blank lines."""
    records: list[CacheRecord] = []
    fields: dict[str, str] = {}

    def flush() -> None:
        if "ID" in fields:
            records.append(
                CacheRecord(
                    fields["ID"].rstrip("*"),
                    fields.get("Type", ""),
                    fields.get("Description", ""),
                    fields.get("Size", ""),
                    fields.get("Parent", "").rstrip("*"),
                )
            )
        fields.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
            continue
        key, sep, value = line.partition(":")
        if sep and key in {"ID", "Type", "Description", "Size", "Parent"}:
            fields[key] = value.strip()
    flush()
    return records


def logical_lines(dockerfile: str) -> Iterator[str]:
    """Dockerfile instructions with continuations joined as BuildKit joins them."""
    current: list[str] = []
    for raw in dockerfile.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue  # blank and comment lines, also inside a continued instruction, are dropped
        if raw.rstrip().endswith("\\"):
            current.append(raw.rstrip()[:-1])
            continue
        current.append(raw)
        yield "".join(current).strip()
        current = []
    if current:
        yield "".join(current).strip()


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def step_descriptions(dockerfile: str) -> set[str]:
    """How BuildKit describes the records of a Dockerfile's steps (spaces normalised)."""
    descriptions = set()
    for line in logical_lines(dockerfile):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "RUN":
            match = RUN_FLAGS.match(rest.strip())
            assert match is not None  # the pattern matches any text
            descriptions.add(normalise_space(f"mount / from exec /bin/sh -c {match[2]}"))
        elif keyword.upper() in {"COPY", "ADD", "WORKDIR"}:
            descriptions.add(normalise_space(line))
    return descriptions


def select(records: Iterable[CacheRecord], dockerfiles: Iterable[str]) -> list[CacheRecord]:
    """Our records among the engine's: our cache mounts, and the records of our steps."""
    steps: set[str] = set()
    for text in dockerfiles:
        steps |= step_descriptions(text)
    ours = []
    for record in records:
        if record.mount_id is not None:
            if record.mount_id.startswith(CACHE_ID_PREFIX):
                ours.append(record)
        elif STEP_PREFIX.sub("", normalise_space(record.description)) in steps:
            ours.append(record)
    return ours


def with_descendants(records: Iterable[CacheRecord], ids: Iterable[str]) -> set[str]:
    """These records and every record built on one of them: a step of ours whose parent is a
    foreign step belongs to that other build."""
    records, found = list(records), set(ids)
    while more := {r.id for r in records if r.parent in found and r.id not in found}:
        found |= more
    return found


def id_filter(ids: Iterable[str]) -> str:
    """A `--filter id=...` value for exactly these record ids (BuildKit reads it as a regex)."""
    return "id=^(" + "|".join(sorted(ids)) + ")$"


class BuildCache:
    """The engine's BuildKit cache, through the buildx client (selective prunes by record id)."""

    def records(self) -> list[CacheRecord]:
        listed = engine.cli("buildx", "du", "--verbose")
        return parse_du_verbose(listed.stdout) if listed.returncode == 0 else []

    def prune(self, ids: Iterable[str]) -> set[str]:
        """Prune exactly these records (children before parents, so a few passes); the ids left.

        `--all` widens which kinds of record a prune may take, never which ones: without it,
        BuildKit keeps a step's mutable record (`buildx du` marks it `*`) after its committed
        one is gone, and a bench left 9.8 GB of them for the pre-project's pip install alone.
        """
        remaining = set(ids)
        for _ in range(4):
            if not remaining:
                break
            for chunk in _chunks(sorted(remaining), 40):
                engine.cli("buildx", "prune", "--all", "--force", "--filter", id_filter(chunk))
            left = remaining & {record.id for record in self.records()}
            if left == remaining:
                break
            remaining = left
        return remaining

    def ours(
        self, dockerfiles: Iterable[Path], records: Iterable[CacheRecord] | None = None
    ) -> list[CacheRecord]:
        """Our records (cache mounts and steps) for these Dockerfiles, among `records` (default:
        the engine's now)."""
        texts = [dockerfile.read_text(encoding="utf-8") for dockerfile in dockerfiles]
        return select(self.records() if records is None else records, texts)

    def cache_mounts(self) -> list[CacheRecord]:
        return [
            record
            for record in self.records()
            if record.mount_id and record.mount_id.startswith(CACHE_ID_PREFIX)
        ]


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

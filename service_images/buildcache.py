"""The project's BuildKit cache: listing its records, finding our cache mounts, pruning by id.

BuildKit (0.8 here, and buildx 0.13) does not show a cache mount's id, so the project's mounts
(ids starting with CACHE_ID_PREFIX in our Dockerfiles) are recognised by their target and RUN
command, and pruned by record id. `invoke clean` and the bench both use this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from service_images import engine

# The Dockerfiles' cache mounts all have ids starting with this.
CACHE_ID_PREFIX = "python-ai-service-"


@dataclass(frozen=True)
class CacheRecord:
    id: str
    type: str
    description: str
    size: str = ""


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
                )
            )
        fields.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
            continue
        key, sep, value = line.partition(":")
        if sep and key in {"ID", "Type", "Description", "Size"}:
            fields[key] = value.strip()
    flush()
    return records


def _logical_lines(dockerfile: str) -> Iterator[str]:
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


RUN_FLAGS = re.compile(r"^((?:--\S+\s+)*)(.*)$", re.DOTALL)


def cache_mount_descriptions(dockerfile: str, id_prefix: str = CACHE_ID_PREFIX) -> set[str]:
    """How BuildKit describes the Dockerfile's cache mounts whose id starts with `id_prefix`.

    A cache mount's record is "cached mount <target> from exec /bin/sh -c <command>": its id is not
    shown, so the project's mounts are recognised by target and command (spaces normalised).
    """
    descriptions = set()
    for line in _logical_lines(dockerfile):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() != "RUN":
            continue
        match = RUN_FLAGS.match(rest.strip())
        assert match is not None  # the pattern matches any text
        flags, command = match[1].split(), match[2]
        for flag in flags:
            if not flag.startswith("--mount="):
                continue
            options = dict(
                part.split("=", 1) for part in flag[len("--mount=") :].split(",") if "=" in part
            )
            target = options.get("target") or options.get("dst") or options.get("destination")
            if options.get("type") == "cache" and options.get("id", "").startswith(id_prefix):
                descriptions.add(
                    normalise_space(f"cached mount {target} from exec /bin/sh -c {command}")
                )
    return descriptions


def select_cache_mounts(
    records: Iterable[CacheRecord], descriptions: set[str]
) -> tuple[list[CacheRecord], list[CacheRecord]]:
    """(ours, unattributed): our cache mounts, and others on one of our targets we can't place."""
    targets = {description.split(" ")[2] for description in descriptions}
    ours, unattributed = [], []
    for record in records:
        if record.type != "exec.cachemount":
            continue
        if normalise_space(record.description) in descriptions:
            ours.append(record)
        elif record.description.split(" ")[2:3] and record.description.split(" ")[2] in targets:
            unattributed.append(record)
    return ours, unattributed


def id_filter(ids: Iterable[str]) -> str:
    """A `--filter id=...` value for exactly these record ids (BuildKit reads it as a regex)."""
    return "id=^(" + "|".join(sorted(ids)) + ")$"


class BuildCache:
    """The engine's BuildKit cache, through the buildx client (selective prunes by record id)."""

    def records(self) -> list[CacheRecord]:
        listed = engine.cli("buildx", "du", "--verbose")
        return parse_du_verbose(listed.stdout) if listed.returncode == 0 else []

    def prune(self, ids: Iterable[str], *, cache_mounts_only: bool = False) -> set[str]:
        """Prune exactly these records (children before parents, so a few passes); the ids left."""
        remaining = set(ids)
        for _ in range(4):
            if not remaining:
                break
            for chunk in _chunks(sorted(remaining), 40):
                args = ["prune", "--force", "--filter", id_filter(chunk)]
                if cache_mounts_only:
                    args += ["--filter", "type=exec.cachemount"]
                engine.cli("buildx", *args)
            left = remaining & {record.id for record in self.records()}
            if left == remaining:
                break
            remaining = left
        return remaining

    def prune_unused_layers(self) -> None:
        """Layer cache that no image refers to any more."""
        engine.cli("builder", "prune", "--force")

    def ours(self, dockerfiles: Iterable[Path]) -> tuple[list[CacheRecord], list[CacheRecord]]:
        """(our cache mounts, unattributed mounts on our targets) for these Dockerfiles."""
        descriptions: set[str] = set()
        for dockerfile in dockerfiles:
            descriptions |= cache_mount_descriptions(dockerfile.read_text(encoding="utf-8"))
        return select_cache_mounts(self.records(), descriptions)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

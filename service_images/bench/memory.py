"""Peak memory of a build's processes, sampled from the cgroup BuildKit runs its steps in.

Page cache makes a cgroup's usage figures useless for build memory (a full build "uses" 15 GB of
mostly cached files); the processes' own memory is `total_rss` (cgroup v1) or `anon` (v2) in the
memory.stat of BuildKit's cgroup, sampled in a thread while the build runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service_images.bench.sampling import Sampling

MB = 1_000_000
SAMPLE_INTERVAL_S = 0.2


@dataclass(frozen=True)
class MemoryCandidate:
    pattern: str
    """Glob under the cgroup root for the memory.stat files to add up."""
    key: str
    description: str
    exclude: str | None = None
    """Regular expression on a matched cgroup directory's name to leave out."""


# Docker's cgroupfs driver puts BuildKit's steps under <parent>/buildkit/<id>; its systemd driver
# (the default on cgroup v2 hosts such as GitHub's runners) as system.slice/docker-<id>.scope, where
# the 64-hex ids are ordinary containers and BuildKit's ids are shorter.
CGROUP_V1_CANDIDATES = (
    MemoryCandidate(
        "memory/docker/buildkit/memory.stat",
        "total_rss",
        "cgroup v1 memory.stat total_rss of /sys/fs/cgroup/memory/docker/buildkit",
    ),
)
CGROUP_V2_CANDIDATES = (
    MemoryCandidate(
        "docker/buildkit/memory.stat",
        "anon",
        "cgroup v2 memory.stat anon of /sys/fs/cgroup/docker/buildkit",
    ),
    MemoryCandidate(
        "system.slice/docker-*.scope/memory.stat",
        "anon",
        "cgroup v2 memory.stat anon summed over BuildKit's system.slice/docker-<id>.scope",
        exclude=r"^docker-[0-9a-f]{64}\.scope$",
    ),
)


def parse_memory_stat(text: str) -> dict[str, int]:
    """memory.stat's `key value` lines as a mapping."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return values


def cgroup_version(root: Path) -> int:
    return 2 if (root / "cgroup.controllers").is_file() else 1


def memory_candidates(root: Path) -> tuple[MemoryCandidate, ...]:
    return CGROUP_V2_CANDIDATES if cgroup_version(root) == 2 else CGROUP_V1_CANDIDATES


def read_build_memory(
    root: Path, candidates: Sequence[MemoryCandidate]
) -> tuple[int, MemoryCandidate] | None:
    """Resident memory of BuildKit's steps now, from the first candidate with files, else None."""
    for candidate in candidates:
        total, found = 0, False
        for path in sorted(root.glob(candidate.pattern)):
            if candidate.exclude and re.match(candidate.exclude, path.parent.name):
                continue
            try:
                stat = parse_memory_stat(path.read_text(encoding="ascii"))
            except OSError:
                continue  # a step's cgroup can vanish between glob and read
            if candidate.key in stat:
                total += stat[candidate.key]
                found = True
        if found:
            return total, candidate
    return None


def engine_is_local(docker_host: str | None) -> bool:
    return not docker_host or docker_host.startswith("unix://")


class PeakSampler(Sampling):
    """Samples build memory in a thread while the `with` block runs; keeps the peak."""

    def __init__(
        self,
        root: Path = Path("/sys/fs/cgroup"),
        candidates: Sequence[MemoryCandidate] | None = None,
        interval: float = SAMPLE_INTERVAL_S,
        enabled: bool = True,
    ) -> None:
        super().__init__("build-memory", interval, enabled)
        self.root = root
        self.candidates = tuple(candidates) if candidates is not None else memory_candidates(root)
        self.peak: int | None = None
        self.source: MemoryCandidate | None = None

    def sample(self) -> None:
        reading = read_build_memory(self.root, self.candidates)
        if reading is not None:
            value, self.source = reading
            self.peak = value if self.peak is None else max(self.peak, value)

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak is None else self.peak / MB

    def describe(self) -> str:
        if not self.enabled:
            return "peak build memory: not measurable here (the engine is not on this machine)"
        if self.source is None:
            looked = ", ".join(candidate.pattern for candidate in self.candidates)
            return f"peak build memory: not measurable here (no BuildKit cgroup in {looked})"
        return (
            f"peak build memory: {self.source.description}, sampled every {self.interval:g} s "
            "(page cache excluded; short spikes between samples can be missed)"
        )

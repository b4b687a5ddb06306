"""`invoke bench`: build each variant and its naive reference in one run and measure both.

For every variant: a cold build of the naive Dockerfile and of ours (`--no-cache`, and the project's
BuildKit cache mounts pruned first so downloads count), a rebuild after a service-code-only change,
peak build memory, image size (and over the base), layers, installed distributions, container start
to `/health` and to Docker `healthy`, and the contract suite's time. Every figure gets a same-run
ratio ours/naive, and the budgets of the variants table are checked: BudgetExceeded names each one.

All builds use a temporary copy of the build context, so the working tree is never modified, and
the images get bench-only tags (`python-ai-service:bench-ci`, ...): images the user built
(`python-ai-service:ci`) are never touched. What the bench created (its images, the build cache it
added) is removed at the end unless `keep` is set.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
from docker.models.containers import Container
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from service_images import containers, engine, report
from service_images.build import BuildOptions, build_image
from service_images.containers import ServiceNotReady
from service_images.errors import BudgetExceeded, ToolError
from service_images.housekeeping import CACHE_ID_PREFIX
from service_images.report import Metric, Report, VariantResult
from service_images.variants import (
    DEFAULT_BASE_IMAGE,
    IMAGE_NAME,
    PROJECT_LABEL,
    ROOT,
    VARIANTS,
    Variant,
    get_variant,
)

BENCH_LABEL = "io.python-ai-service.bench"
NAIVE_DIR = Path("service_images/naive")
SERVICE_FILE = Path("python-ai-service/app/main.py")
"""The file the code-only change touches (in the temporary copy)."""
CONTRACT_SUITE = Path("tests/contract")
MB = 1_000_000
START_DEADLINE_S = 180.0
OTHER_BUILD_WAIT_S = 45 * 60
SAMPLE_INTERVAL_S = 0.2


# --- Peak build memory ----------------------------------------------------------------------------
#
# Page cache makes a cgroup's usage figures useless for build memory (a full build "uses" 15 GB of
# mostly cached files); the processes' own memory is `total_rss` (cgroup v1) or `anon` (v2) in the
# memory.stat of the cgroup BuildKit runs its RUN steps in. Sampled while the build runs.


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


class PeakSampler:
    """Samples build memory in a thread while the `with` block runs; keeps the peak."""

    def __init__(
        self,
        root: Path = Path("/sys/fs/cgroup"),
        candidates: Sequence[MemoryCandidate] | None = None,
        interval: float = SAMPLE_INTERVAL_S,
        enabled: bool = True,
    ) -> None:
        self.root = root
        self.candidates = tuple(candidates) if candidates is not None else memory_candidates(root)
        self.interval = interval
        self.enabled = enabled
        self.peak: int | None = None
        self.source: MemoryCandidate | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-memory", daemon=True)

    def __enter__(self) -> PeakSampler:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

    def _sample(self) -> None:
        reading = read_build_memory(self.root, self.candidates)
        if reading is not None:
            value, self.source = reading
            self.peak = value if self.peak is None else max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

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


# --- Build cache ----------------------------------------------------------------------------------


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

    def __init__(self) -> None:
        self.selective = engine.build_front_end().supports_builder  # i.e. buildx is there

    def _buildx(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "buildx", *args], capture_output=True, text=True, timeout=600, check=False
        )

    def records(self) -> list[CacheRecord]:
        if not self.selective:
            return []
        listed = self._buildx("du", "--verbose")
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
                self._buildx(*args)
            left = remaining & {record.id for record in self.records()}
            if left == remaining:
                break
            remaining = left
        return remaining

    def prune_all_cache_mounts(self) -> None:
        """Without buildx records can't be listed: prune every cache mount (by type)."""
        subprocess.run(
            ["docker", "builder", "prune", "--force", "--filter", "type=exec.cachemount"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- Other builds on this machine -----------------------------------------------------------------


def is_build_command(argv: Sequence[str]) -> bool:
    """Whether a process is a docker build (`docker build`, `docker buildx build`, ...)."""
    if not argv or Path(argv[0]).name not in {"docker", "docker-buildx"}:
        return False
    words = [word for word in argv[1:] if not word.startswith("-")][:3]
    for index, word in enumerate(words):
        if word == "build" and (index == 0 or words[index - 1] in {"buildx", "image", "builder"}):
            return True
    return False


def other_builds(proc: Path = Path("/proc"), own_pid: int | None = None) -> list[tuple[int, str]]:
    """Docker builds running on this machine that are not ours: (pid, command line)."""
    own = os.getpid() if own_pid is None else own_pid
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv if word]
        if is_build_command(words):
            found.append((int(entry.name), " ".join(words)[:120]))
    return sorted(found)


# --- The run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    variants: tuple[str, ...]
    keep: bool = False
    output: Path = ROOT / "reports"
    base_image: str = DEFAULT_BASE_IMAGE
    ca_bundle: str | None = None


def parse_variants(choice: str) -> tuple[str, ...]:
    if choice == "all":
        return tuple(VARIANTS)
    return (get_variant(choice).name,)


def bench_tags(variant: Variant) -> dict[str, str]:
    base = f"{IMAGE_NAME}:bench-{variant.name}"
    return {
        "ours": base,
        "naive": f"{base}-naive",
        "ours_rebuild": f"{base}-rebuild",
        "naive_rebuild": f"{base}-naive-rebuild",
    }


class Display:
    """Live progress on a terminal; one line per finished step elsewhere (CI logs)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.live,
        )

    def __enter__(self) -> Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[Step]:
        task = self.progress.add_task(description, total=1)
        step = Step(self, task, description)
        started = time.monotonic()
        try:
            yield step
        except BaseException:
            self.progress.update(task, description=f"[red]✗[/] {description}")
            self.progress.stop_task(task)
            if not self.live:
                self.console.print(f"✗ {description}")
            raise
        result = f" — {step.result}" if step.result else ""
        self.progress.update(task, completed=1, description=f"[green]✓[/] {description}{result}")
        if not self.live:
            elapsed = time.monotonic() - started
            self.console.print(f"✓ {description}{result} [dim]({elapsed:.1f} s)[/]")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {text}")


@dataclass
class Step:
    display: Display
    task: TaskID
    description: str
    result: str = ""

    def status(self, text: str) -> None:
        self.display.progress.update(self.task, description=f"{self.description} [dim]({text})[/]")
        if not self.display.live:
            self.display.console.print(f"  {self.description}: {text}")


@dataclass
class Run:
    """State shared by the steps of one bench run."""

    options: BenchOptions
    sdk: docker.DockerClient
    display: Display
    context: Path
    log: IO[str]
    cache: BuildCache
    memory_enabled: bool
    created: dict[str, str] = field(default_factory=dict)
    """Tag -> image id of every image this run built."""
    notes: list[str] = field(default_factory=list)
    saw_other_build: bool = False

    def wait_for_other_builds(self, step: Step) -> None:
        """Timings and build memory are only meaningful when no one else is building."""
        deadline = time.monotonic() + OTHER_BUILD_WAIT_S
        while others := other_builds():
            self.saw_other_build = True
            if time.monotonic() > deadline:
                self.notes.append(
                    f"another build (pid {others[0][0]}) was still running after "
                    f"{OTHER_BUILD_WAIT_S // 60} min of waiting: figures taken during it are "
                    "distorted."
                )
                return
            step.status(f"waiting for another build to finish: pid {others[0][0]}")
            time.sleep(5)

    def build(
        self, variant: Variant, step: Step, *, tag: str, naive: bool, cold: bool
    ) -> tuple[float, PeakSampler]:
        self.wait_for_other_builds(step)
        step.status("building")
        dockerfile = self.context / NAIVE_DIR / variant.dockerfile.name if naive else None
        options = BuildOptions(
            tag=tag,
            no_cache=cold,
            base_image=self.options.base_image,
            ca_bundle=self.options.ca_bundle,
            labels={BENCH_LABEL: "true"},
            dockerfile=dockerfile,
            context=self.context,
        )
        print(
            f"\n===== {tag} ({'naive' if naive else 'ours'}, {'cold' if cold else 'rebuild'})",
            file=self.log,
            flush=True,
        )
        with (
            PeakSampler(enabled=self.memory_enabled) as sampler,
            contextlib.redirect_stdout(self.log),
        ):
            result = build_image(variant, options)
        self.created[tag] = str(self.sdk.images.get(tag).id)
        return result.seconds, sampler

    def prune_cache_mounts(self, step: Step) -> None:
        """Cold means downloads count: drop the project's cache mounts (and only those)."""
        self.wait_for_other_builds(step)
        if not self.cache.selective:
            self.cache.prune_all_cache_mounts()
            self._note_once(
                "cache mounts: this client has no buildx, so records can't be listed; every "
                "BuildKit cache mount was pruned (by type) before each cold build."
            )
            return
        descriptions: set[str] = set()
        for dockerfile in self.context.glob("Dockerfile*"):
            descriptions |= cache_mount_descriptions(dockerfile.read_text(encoding="utf-8"))
        ours, unattributed = select_cache_mounts(self.cache.records(), descriptions)
        left = self.cache.prune((record.id for record in ours), cache_mounts_only=True)
        step.result = f"{len(ours) - len(left)} of the project's cache mounts pruned"
        self._note_once(
            "cache mounts: before each cold build the project's BuildKit cache mounts (ids "
            f"`{CACHE_ID_PREFIX}*`) are pruned by record id (`docker buildx prune --filter "
            "id=^(...)$ --filter type=exec.cachemount`); records are recognised by the mount "
            "target and RUN command in our Dockerfiles, since BuildKit does not show mount ids. "
            "Other cache is left alone. The uv cache mount is shared by both variants, so after "
            "a bench the next build of either image downloads its wheels again."
        )
        if left:
            self.notes.append(f"cache mounts {sorted(left)} could not be pruned (in use?).")
        if unattributed:
            self.notes.append(
                "cache mounts on our targets that no current Dockerfile explains were left alone "
                f"({', '.join(record.id for record in unattributed)}): if an older Dockerfile made "
                "them under our ids, the cold build may have reused downloads."
            )

    def _note_once(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


def copy_context(destination: Path) -> Path:
    """What the builds need, copied so that changing service code never touches the real tree."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".env*", "*.pem", "*.key")
    paths = {Path(".dockerignore"), Path("python-ai-service"), NAIVE_DIR}
    for variant in VARIANTS.values():
        paths |= {
            variant.dockerfile.relative_to(ROOT),
            variant.requirements.relative_to(ROOT),
            variant.lock.relative_to(ROOT),
        }
    for relative in sorted(paths):
        source = ROOT / relative
        target = destination / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def change_service_code(context: Path) -> None:
    """A change to service code only: one more comment line in the service's main module."""
    path = context / SERVICE_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"\n# bench: a code-only change at {time.time_ns()}\n")


def image_facts(sdk: docker.DockerClient, tag: str) -> tuple[float, int, bool]:
    """(size in MB, layer count, has a HEALTHCHECK)."""
    attrs = sdk.images.get(tag).attrs
    healthcheck = (attrs.get("Config") or {}).get("Healthcheck") or {}
    has_healthcheck = bool(healthcheck.get("Test")) and healthcheck["Test"] != ["NONE"]
    return attrs["Size"] / MB, len(attrs["RootFS"]["Layers"]), has_healthcheck


COUNT_DISTRIBUTIONS = (
    "import importlib.metadata as m; "
    "print(len({(d.metadata['Name'] or '').lower() for d in m.distributions()}))"
)


@contextlib.contextmanager
def container(sdk: docker.DockerClient, tag: str, **kwargs: Any) -> Iterator[Container]:
    """A started container that is always removed, also on failure or Ctrl-C."""
    labels = {PROJECT_LABEL: "true", BENCH_LABEL: "true"}
    created = sdk.containers.create(tag, labels=labels, **kwargs)
    try:
        created.start()
        yield created
    finally:
        with contextlib.suppress(docker.errors.APIError):
            created.remove(force=True)


def count_distributions(sdk: docker.DockerClient, tag: str) -> int:
    with container(
        sdk, tag, entrypoint=["python", "-c", COUNT_DISTRIBUTIONS], network_disabled=True
    ) as probe:
        status = probe.wait(timeout=120)
        output = probe.logs(stdout=True, stderr=True).decode(errors="replace").strip()
    last = output.splitlines()[-1] if output else ""
    if status.get("StatusCode") != 0 or not last.isdigit():
        raise ToolError(f"counting distributions in {tag} failed: {output[-300:]}")
    return int(last)


def measure_start(
    sdk: docker.DockerClient, tag: str, has_healthcheck: bool, deadline_s: float = START_DEADLINE_S
) -> tuple[float | None, float | None, str | None]:
    """Seconds from `docker run` to /health answering and to `healthy`; and a problem, if any."""
    health_s = healthy_s = None
    labels = {PROJECT_LABEL: "true", BENCH_LABEL: "true"}
    with containers.running(sdk, tag, labels=labels) as service:
        try:
            health_s = service.wait_until("answers", deadline_s)
            if has_healthcheck:
                healthy_s = service.wait_until("healthy", deadline_s - health_s)
        except ServiceNotReady as error:
            return health_s, healthy_s, f"{tag}: {error.message[-400:]}"
    return health_s, healthy_s, None


def run_contract_suite(variant: Variant, tag: str, log: IO[str]) -> tuple[float | None, str]:
    """Seconds the image-contract suite takes, and how it ended."""
    if not (ROOT / CONTRACT_SUITE).is_dir():
        return None, f"contract suite: not available ({CONTRACT_SUITE} does not exist yet)"
    if importlib.util.find_spec("pytest") is None:
        return None, "contract suite: not available (pytest is not installed here)"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(CONTRACT_SUITE),
        "--variant",
        variant.name,
        "--image",
        tag,
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    print(f"\n===== {' '.join(command)}", file=log, flush=True)
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=3600, check=False
    )
    seconds = time.monotonic() - started
    outcome = "passed" if result.returncode == 0 else f"FAILED (pytest exit {result.returncode})"
    return seconds, f"contract suite on {tag}: {outcome} in {seconds:.1f} s"


def bench_variant(run: Run, variant: Variant) -> VariantResult:
    tags = bench_tags(variant)
    display = run.display
    notes: list[str] = []
    label = variant.name
    with display.step(f"{label}: prune the project's cache mounts") as step:
        run.prune_cache_mounts(step)
    with display.step(f"{label}: naive cold build") as step:
        naive_cold, naive_memory = run.build(
            variant, step, tag=tags["naive"], naive=True, cold=True
        )
        step.result = f"{naive_cold:.1f} s"
    with display.step(f"{label}: prune the project's cache mounts") as step:
        run.prune_cache_mounts(step)
    with display.step(f"{label}: our cold build") as step:
        ours_cold, ours_memory = run.build(variant, step, tag=tags["ours"], naive=False, cold=True)
        step.result = f"{ours_cold:.1f} s"
    notes.append(ours_memory.describe())
    change_service_code(run.context)
    with display.step(f"{label}: our rebuild after a service-code change") as step:
        ours_rebuild, _ = run.build(
            variant, step, tag=tags["ours_rebuild"], naive=False, cold=False
        )
        step.result = f"{ours_rebuild:.1f} s"
    with display.step(f"{label}: naive rebuild after the same change") as step:
        naive_rebuild, _ = run.build(
            variant, step, tag=tags["naive_rebuild"], naive=True, cold=False
        )
        step.result = f"{naive_rebuild:.1f} s"

    base_mb = run.sdk.images.get(run.options.base_image).attrs["Size"] / MB
    facts = {role: image_facts(run.sdk, tags[role]) for role in ("naive", "ours")}
    with display.step(f"{label}: count installed distributions") as step:
        distributions = {role: count_distributions(run.sdk, tags[role]) for role in facts}
        step.result = f"naive {distributions['naive']}, ours {distributions['ours']}"
    starts: dict[str, tuple[float | None, float | None]] = {}
    for role in ("naive", "ours"):
        with display.step(f"{label}: start the {role} image until it answers") as step:
            health_s, healthy_s, problem = measure_start(run.sdk, tags[role], facts[role][2])
            starts[role] = (health_s, healthy_s)
            if problem:
                notes.append(f"start of the {role} image: {problem}")
            step.result = (
                f"/health {report.format_value(health_s, 's')}, "
                f"healthy {report.format_value(healthy_s, 's')}"
            )
    if not facts["naive"][2]:
        notes.append("the naive image has no HEALTHCHECK, so it never reports `healthy`.")
    with display.step(f"{label}: contract suite on our image") as step:
        contract_s, contract_note = run_contract_suite(variant, tags["ours"], run.log)
        step.result = contract_note.split(": ", 1)[1]
    notes.append(contract_note)

    metrics = {
        "cold_build_s": Metric("cold_build_s", naive_cold, ours_cold),
        "rebuild_s": Metric("rebuild_s", naive_rebuild, ours_rebuild),
        "peak_build_rss_mb": Metric("peak_build_rss_mb", naive_memory.peak_mb, ours_memory.peak_mb),
        "image_mb": Metric("image_mb", facts["naive"][0], facts["ours"][0]),
        "over_base_mb": Metric(
            "over_base_mb", facts["naive"][0] - base_mb, facts["ours"][0] - base_mb
        ),
        "layers": Metric("layers", facts["naive"][1], facts["ours"][1]),
        "distributions": Metric("distributions", distributions["naive"], distributions["ours"]),
        "health_s": Metric("health_s", starts["naive"][0], starts["ours"][0]),
        "healthy_s": Metric("healthy_s", starts["naive"][1], starts["ours"][1]),
        "contract_s": Metric("contract_s", None, contract_s),
    }
    notes.append(
        f"base image {run.options.base_image}: {base_mb:,.0f} MB; sizes are Docker's "
        "(uncompressed), in MB of 10^6 bytes."
    )
    return VariantResult(
        variant=variant.name,
        description=variant.description,
        metrics=metrics,
        budgets=report.evaluate_budgets(variant.budgets, metrics),
        notes=notes,
        images={role: tags[role] for role in ("naive", "ours")},
    )


def clean_up(run: Run, cache_before: set[str]) -> None:
    """Remove the images this run built and the build cache it added; nothing else."""
    with run.display.step("remove what the bench created") as step:
        for tag, image_id in run.created.items():
            try:
                if run.sdk.images.get(tag).id == image_id:
                    run.sdk.images.remove(tag)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError as error:
                run.notes.append(f"could not remove {tag}: {error.explanation or error}")
        if other_builds():
            run.notes.append(
                "another build was running at the end, so the build cache the bench added was "
                "left (its records can't be told from that build's); `invoke clean` removes it."
            )
            step.result = f"{len(run.created)} images; build cache left (another build running)"
            return
        added = {record.id for record in run.cache.records()} - cache_before
        left = run.cache.prune(added)
        step.result = f"{len(run.created)} images, {len(added) - len(left)} cache records"
        if left:
            run.notes.append(f"{len(left)} cache records the bench added could not be pruned.")


def machine_facts(sdk: docker.DockerClient) -> dict[str, Any]:
    info = sdk.info()
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1) if memory_kib else None,
        "kernel": platform.release(),
        "os": _os_name(),
        "docker_server": sdk.version().get("Version"),
        "buildx": _command_word(["docker", "buildx", "version"], 1) or "none",
        "cgroup_version": info.get("CgroupVersion"),
        "storage_driver": info.get("Driver"),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _command_word(command: list[str], index: int) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = result.stdout.split()
    return words[index] if result.returncode == 0 and len(words) > index else None


def _buildkit_version() -> str | None:
    result = subprocess.run(
        ["docker", "buildx", "inspect"], capture_output=True, text=True, timeout=30, check=False
    )
    for line in result.stdout.splitlines():
        if line.lower().startswith("buildkit"):
            return line.split(":", 1)[1].strip()
    return None


def tool_versions() -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "docker CLI": _command_word(["docker", "version", "--format", "{{.Client.Version}}"], 0),
        "BuildKit": _buildkit_version(),
    }
    uv = re.search(r"^ARG UV_VERSION=(\S+)", VARIANTS["ci"].dockerfile.read_text(), re.MULTILINE)
    versions["uv (in our images)"] = uv.group(1) if uv else None
    for distribution in ("docker", "rich", "matplotlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[f"{distribution} (Python)"] = importlib.metadata.version(distribution)
    return {name: version for name, version in versions.items() if version}


def write_outputs(result: Report, output: Path, console: Console) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    paths = [output / "bench.json", output / "bench.md"]
    report.save(result, paths[0])
    markdown = report.render_markdown(result)
    paths[1].write_text(markdown, encoding="utf-8")
    try:
        report.render_chart(result, output / "bench.png")
        paths.append(output / "bench.png")
    except ImportError:
        console.print(
            "[yellow]note:[/] no chart: matplotlib is not installed "
            "(`pip install --group bench`, or run `nox -s bench`)."
        )
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    return paths


def run_bench(options: BenchOptions, console: Console | None = None) -> Report:
    """Measure every requested variant; write the outputs; BudgetExceeded names each overrun."""
    console = console or Console(file=sys.stdout)
    variants = [get_variant(name) for name in options.variants]
    sdk = engine.client()
    engine.ensure_base_image(sdk, options.base_image)
    cache = BuildCache()
    memory_enabled = engine_is_local(os.environ.get("DOCKER_HOST"))
    options.output.mkdir(parents=True, exist_ok=True)
    log_path = options.output / "bench-build.log"
    console.print(
        f"bench: {', '.join(v.name for v in variants)}; build output goes to {log_path}; "
        "timings on a shared machine are noisy."
    )
    date = datetime.now(UTC).isoformat(timespec="seconds")
    results: list[VariantResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="python-ai-service-bench-") as tmp,
        log_path.open("w", encoding="utf-8") as log,
        Display(console) as display,
    ):
        run = Run(options, sdk, display, copy_context(Path(tmp)), log, cache, memory_enabled)
        cache_before = {record.id for record in cache.records()}
        try:
            for variant in variants:
                results.append(bench_variant(run, variant))
        finally:
            if options.keep:
                run.notes.append(
                    f"--keep: left images {', '.join(run.created)} and the build cache."
                )
            else:
                clean_up(run, cache_before)
    if run.saw_other_build:
        run.notes.append(
            "another build ran on this machine during the bench; the bench waited "
            "for it before each build."
        )
    result = Report(date, machine_facts(sdk), tool_versions(), results, run.notes)
    paths = write_outputs(result, options.output, console)
    # soft_wrap: the table stays one line per row, to paste as it is
    console.print(report.render_markdown(result), markup=False, highlight=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(path) for path in paths))
    exceeded = result.exceeded()
    if exceeded:
        raise BudgetExceeded("budgets exceeded: " + "; ".join(exceeded) + ".")
    return result


def regenerate_readme(
    readme: Path = ROOT / "README.md",
    results: Path = ROOT / "reports" / "bench.json",
    chart: Path = ROOT / "docs" / "bench.png",
) -> None:
    """Rewrite README.md's bench section from the JSON; nothing outside the markers changes."""
    loaded = report.load(results)
    if not readme.is_file():
        raise report.ReadmeMarkersMissing(f"{readme} does not exist: nothing to regenerate.")
    link = None
    if _tracked_by_git(chart):
        link = chart.relative_to(readme.parent).as_posix()
    text = readme.read_text(encoding="utf-8")
    updated = report.replace_readme_section(text, report.render_readme_section(loaded, link))
    if updated != text:
        readme.write_text(updated, encoding="utf-8")


def _tracked_by_git(path: Path) -> bool:
    if not path.is_file():
        return False
    result = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path)],
        cwd=path.parent,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m service_images.bench` (what `nox -s bench` runs)."""
    parser = argparse.ArgumentParser(
        prog="python -m service_images.bench",
        description="Build each variant and its naive reference; measure and compare them.",
    )
    parser.add_argument(
        "--variant", choices=[*VARIANTS, "all"], default="all", help="what to measure (all)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the images and build cache")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "reports", help="where the results go (reports/)"
    )
    parser.add_argument(
        "--base-image", default=DEFAULT_BASE_IMAGE, help=f"base image ({DEFAULT_BASE_IMAGE})"
    )
    parser.add_argument(
        "--ca-bundle", help="CA bundle for the builds (default: SSL_CERT_FILE and friends)"
    )
    args = parser.parse_args(argv)
    options = BenchOptions(
        parse_variants(args.variant), args.keep, args.output, args.base_image, args.ca_bundle
    )
    try:
        run_bench(options)
    except ToolError as error:
        if os.environ.get("SERVICE_IMAGES_DEBUG"):
            raise
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One bench run: build each variant and its naive reference, measure both, check the budgets.

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

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import docker
import docker.errors
from rich.console import Console

from service_images import containers, contract, engine
from service_images.bench import report
from service_images.bench.display import Display, Step
from service_images.bench.machine import machine_facts, other_builds, tool_versions
from service_images.bench.memory import MB, PeakSampler, engine_is_local
from service_images.bench.report import Metric, Report, VariantResult
from service_images.build import BuildOptions, build_image
from service_images.buildcache import CACHE_ID_PREFIX, BuildCache
from service_images.errors import BudgetExceeded, ServiceNotReady, ToolError
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
START_DEADLINE_S = 180.0
OTHER_BUILD_WAIT_S = 45 * 60


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
        ours, unattributed = self.cache.ours(self.context.glob("Dockerfile*"))
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
LABELS = {PROJECT_LABEL: "true", BENCH_LABEL: "true"}


def count_distributions(sdk: docker.DockerClient, tag: str) -> int:
    with containers.running(sdk, tag, labels=LABELS) as service:
        status, output = service.run("python", "-c", COUNT_DISTRIBUTIONS, timeout=120)
    last = output.strip().splitlines()[-1] if output.strip() else ""
    if status != 0 or not last.isdigit():
        raise ToolError(f"counting distributions in {tag} failed: {output[-300:]}")
    return int(last)


def measure_start(
    sdk: docker.DockerClient, tag: str, has_healthcheck: bool, deadline_s: float = START_DEADLINE_S
) -> tuple[float | None, float | None, str | None]:
    """Seconds from `docker run` to /health answering and to `healthy`; and a problem, if any."""
    health_s = healthy_s = None
    with containers.running(sdk, tag, labels=LABELS) as service:
        try:
            health_s = service.wait_until("answers", deadline_s)
            if has_healthcheck:
                healthy_s = service.wait_until("healthy", deadline_s - health_s)
        except ServiceNotReady as error:
            return health_s, healthy_s, f"{tag}: {error.message[-400:]}"
    return health_s, healthy_s, None


def run_contract_suite(variant: Variant, tag: str, log: IO[str]) -> tuple[float, str]:
    """Seconds the image-contract suite takes, and how it ended."""
    command = [sys.executable, *contract.pytest_args(variant.name, tag, "-q")]
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

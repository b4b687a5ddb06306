"""One bench run: build each variant and its "before" reference, measure both, check the budgets.

For every variant, ours against "before" (the pre-project Dockerfiles of the write-up, in
service_images/before/): a cold build (`--no-cache`, and the project's BuildKit cache mounts pruned
first so downloads count), a rebuild after a service-code-only change, a rebuild after bumping one
light dependency and the bytes it added, peak build memory, image size (over the base, and
compressed as a registry stores it), layers, installed distributions, container start to /health
and to Docker `healthy`, the contract suite's time, and the release path after the build: push
to a loopback registry (time, bytes), pull on a clean engine, a cold node's start. Every figure
gets a same-run ratio ours/before, and the budgets of the variants table are checked:
BudgetExceeded names each one.

All builds use a temporary copy of the build context, so the working tree is never modified, and
the images get bench-only tags (`NAME:bench-ci`, ...): images the user built (`NAME:ci`) are
never touched. What the bench created (its images, the build cache it
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import docker
import docker.errors
from rich.console import Console

from service_images import contract, engine, project, registry, reproducible
from service_images.bench import context, images, release, report
from service_images.bench.disk import DiskWatch
from service_images.bench.display import Display, Step
from service_images.bench.machine import machine_facts, other_builds, tool_versions
from service_images.bench.memory import PeakSampler, engine_is_local
from service_images.bench.report import Metric, Report, VariantResult
from service_images.build import BuildOptions, build_image
from service_images.buildcache import CACHE_ID_PREFIX, BuildCache
from service_images.errors import BudgetExceeded, DiskShort, ToolError, disk_filled
from service_images.variants import (
    DEFAULT_BASE_IMAGE,
    IMAGE_NAME,
    ROOT,
    VARIANTS,
    Variant,
    get_variant,
)

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


ROLES = ("before", "ours")
CHANGES = ("rebuild", "bump")  # what each role is rebuilt after


def bench_tags(variant: Variant) -> dict[str, str]:
    """Bench-only tags: images the user built (`NAME:ci`) are never touched."""
    base = f"{IMAGE_NAME}:bench-{variant.name}"
    tags = {"ours": base, "before": f"{base}-before"}
    for change in ("rebuild", "bump"):
        tags[f"ours_{change}"] = f"{base}-{change}"
        tags[f"before_{change}"] = f"{base}-before-{change}"
    return tags


@dataclass
class Run:
    """State shared by the steps of one bench run."""

    options: BenchOptions
    sdk: docker.DockerClient
    display: Display
    workdir: Path
    """A temporary directory: each variant's build context is copied into it, once per role."""
    log: IO[str]
    cache: BuildCache
    memory_enabled: bool
    cache_before: set[str]
    """The build cache records there were before the run: the rest are the run's."""
    created: dict[str, str] = field(default_factory=dict)
    """Tag -> image id of every image this run built."""
    revisions: dict[str, str] = field(default_factory=dict)
    """Tag -> the commit its labels name (a commit made during the run moves HEAD)."""
    notes: list[str] = field(default_factory=list)
    saw_other_build: bool = False
    context: Path = Path()
    """The build context of the role being built (a copy in `workdir`); ours, once both built."""

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

    def build_options(
        self, variant: Variant, *, tag: str, before: bool, cold: bool
    ) -> BuildOptions:
        return BuildOptions(
            tag=tag,
            no_cache=cold,
            base_image=self.options.base_image,
            ca_bundle=self.options.ca_bundle,
            labels={images.BENCH_LABEL: "true"},
            # The pre-project workflow's plain `docker build`: the engine's own compression.
            compression=None if before else BuildOptions.compression,
            dockerfile=self.context / context.BEFORE_DIR / variant.dockerfile.name
            if before
            else None,
            context=self.context / context.BEFORE_CONTEXT if before else self.context,
        )

    def build(
        self, variant: Variant, step: Step, *, tag: str, before: bool, cold: bool
    ) -> tuple[float, PeakSampler]:
        self.wait_for_other_builds(step)
        step.status("building")
        options = self.build_options(variant, tag=tag, before=before, cold=cold)
        print(
            f"\n===== {tag} ({'before' if before else 'ours'}, {'cold' if cold else 'rebuild'})",
            file=self.log,
            flush=True,
        )
        with (
            PeakSampler(enabled=self.memory_enabled) as sampler,
            contextlib.redirect_stdout(self.log),
        ):
            result = build_image(variant, options)
        self.created[tag] = str(self.sdk.images.get(tag).id)
        self.revisions[tag] = result.revision
        return result.seconds, sampler

    def prune_cache_mounts(self, step: Step) -> None:
        """Cold means downloads count: drop the project's cache mounts (and only those)."""
        self.wait_for_other_builds(step)
        ours = self.cache.cache_mounts()
        left = self.cache.prune(record.id for record in ours)
        step.result = f"{len(ours) - len(left)} of the project's cache mounts pruned"
        self.note_once(
            "cache mounts: before each cold build the project's BuildKit cache mounts (ids "
            f"`{CACHE_ID_PREFIX}*`) are pruned by record id; other cache is left alone. The uv "
            "cache mount is shared by both variants, so after a bench the next build of either "
            "image downloads its wheels again."
        )
        if left:
            self.notes.append(f"cache mounts {sorted(left)} could not be pruned (in use?).")

    def note_once(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


def run_contract_suite(
    variant: Variant, tag: str, revision: str, log: IO[str]
) -> tuple[float, str]:
    """Seconds the image-contract suite takes, and how it ended (its abuse module left out: a
    load test has its own figures, in reports/abuse-<variant>.json)."""
    arguments = (f"--revision={revision}", "-q", "-m", "not abuse")
    command = [sys.executable, *contract.pytest_args(variant.name, tag, *arguments)]
    print(f"\n===== {' '.join(command)}", file=log, flush=True)
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=3600, check=False
    )
    seconds = time.monotonic() - started
    outcome = "passed" if result.returncode == 0 else f"FAILED (pytest exit {result.returncode})"
    return seconds, f"contract suite on {tag} (abuse module aside): {outcome} in {seconds:.1f} s"


def bench_variant(run: Run, variant: Variant) -> VariantResult:
    tags = bench_tags(variant)
    notes: list[str] = []
    metrics: dict[str, Metric] = {}
    # Reproducibility first: its clean engines' builds leave nothing on the disk the rest needs.
    for measure in (measure_reproducibility, measure_builds, measure_images, measure_release):
        metrics.update(measure(run, variant, tags, notes))
    metrics["release_s"] = release_path(metrics)
    notes.append(
        "release path: the cold build, the contract suite (ours; the pre-project workflow ran "
        "none), the push to a loopback registry, and a clean engine's pull by digest and start "
        "until /health answers, summed. On the containerd store the build compresses the layers "
        "(before: as a plain `docker build` does, gzip; ours: zstd, `--compression`'s default) "
        "and the push sends them as stored."
    )
    return VariantResult(
        variant=variant.name,
        description=variant.description,
        metrics=metrics,
        budgets=report.evaluate_budgets(variant.budgets, metrics),
        notes=notes,
        images={role: tags[role] for role in ROLES},
    )


def pair(key: str, values: Mapping[str, float | None]) -> Metric:
    return Metric(key, values["before"], values["ours"])


def measure_reproducibility(
    run: Run, variant: Variant, tags: dict[str, str], notes: list[str]
) -> dict[str, Metric]:
    """Ours, built cold twice from this commit on two clean engines: the same digest?"""
    with run.display.step(f"{variant.name}: two cold builds of this commit, compared") as step:
        run.wait_for_other_builds(step)
        step.status("building on two clean engines")
        with contextlib.redirect_stdout(run.log):
            builds = reproducible.build_twice(
                variant, run.workdir / f"{variant.name}-twice", run.options.base_image
            )
        digests = ", ".join(f"{p} {d[:19]}" for p, d in builds.digests.items())
        step.result = builds.difference or f"the same: {digests}"
    seconds = " s and ".join(f"{s:.0f}" for s in builds.seconds)
    notes.append(
        f"reproducible: commit {builds.revision[:7]}, built cold with `--reproducible` on two "
        f"clean engines (containerd store; {seconds} s), "
        + (f"differs: {builds.difference}" if builds.difference else f"the same: {digests}.")
    )
    return {
        "reproducible_build_s": Metric("reproducible_build_s", None, sum(builds.seconds) / 2),
        "differing_layers": Metric("differing_layers", None, float(builds.differing_layers)),
    }


@dataclass(frozen=True)
class Series:
    """One role's builds: cold, then rebuilt after a code change and after a bump."""

    seconds: dict[str, float]
    """"cold", "rebuild", "bump" -> the build's seconds."""
    cold: PeakSampler
    size: images.Sizes
    """The cold build's image."""
    bump_mb: float
    """What the bump's rebuild added to it."""


def measure_series(run: Run, variant: Variant, tags: dict[str, str], role: str) -> Series:
    """Build `role` cold, after a code change and after a bump, in a context copy of its own;
    then remove the rebuilt images and the cache no image needs, before the other role builds.

    One role at a time: the pre-project bump installs the full venv a second time, and with both
    roles' builds on the disk at once, 74 GB did not hold a full bench on the containerd store.
    """
    display, label = run.display, variant.name
    run.context = context.copy_context(run.workdir / variant.name / role)
    before = role == "before"
    names = {"cold": role, "rebuild": f"{role}_rebuild", "bump": f"{role}_bump"}
    whose = "the pre-project" if before else "our"
    seconds: dict[str, float] = {}
    samplers: dict[str, PeakSampler] = {}

    def build(change: str, description: str) -> None:
        cold = change == "cold"
        if cold:
            with display.step(f"{label}: prune the project's cache mounts") as step:
                run.prune_cache_mounts(step)
        with display.step(f"{label}: {whose} {description}") as step:
            tag = tags[names[change]]
            seconds[change], samplers[change] = run.build(
                variant, step, tag=tag, before=before, cold=cold
            )
            step.result = f"{seconds[change]:.1f} s"

    build("cold", "cold build")
    context.change_service_code(run.context)
    build("rebuild", "rebuild after a service-code change")
    with display.step(f"{label}: bump a light dependency in {whose} copy") as step:
        step.result = context.bump_light_dependency(run.context, lock=not before)
    run.note_once(
        f"light-dependency bump: {step.result}, in the requirement files, then `invoke lock` "
        "(ours; the pre-project files have no lock)."
    )
    build("bump", "rebuild after the bump")
    with display.step(f"{label}: bytes {whose} bump's rebuild added") as step:
        size = images.sizes(run.sdk, tags[role])
        bump_mb = images.sizes(run.sdk, tags[names["bump"]]).added_to(size)
        step.result = f"{report.format_value(bump_mb, 'MB')} of {size.total_mb:,.0f} MB"
    if not run.options.keep:
        # The full variant's images, rebuilds and tier stages side by side fill a disk.
        with display.step(f"{label}: remove {whose} rebuilds and their cache") as step:
            removed = remove_images(run, [tags[names[change]] for change in CHANGES])
            pruned = prune_added_cache(run)
            step.result = f"{removed} rebuilt images, " + (
                f"{pruned[0]} cache records ({pruned[1]} back images still needed)"
                if pruned
                else "build cache left (another build running)"
            )
    return Series(seconds, samplers["cold"], size, bump_mb)


def measure_builds(
    run: Run, variant: Variant, tags: dict[str, str], notes: list[str]
) -> dict[str, Metric]:
    """Cold builds, rebuilds after a code change and after a bump: times, memory, sizes."""
    series = {role: measure_series(run, variant, tags, role) for role in ROLES}
    notes.append(series["ours"].cold.describe())
    base_mb = images.sizes(run.sdk, run.options.base_image).total_mb
    notes.append(
        f"base image {run.options.base_image}: {base_mb:,.0f} MB; sizes are the layers' "
        "uncompressed bytes (from `docker save`, the same on both image stores) unless marked "
        "compressed, in MB of 10^6 bytes."
    )

    def each(figure: Callable[[Series], float | None]) -> dict[str, float | None]:
        return {role: figure(series[role]) for role in ROLES}

    return {
        "cold_build_s": pair("cold_build_s", each(lambda s: s.seconds["cold"])),
        "rebuild_s": pair("rebuild_s", each(lambda s: s.seconds["rebuild"])),
        "bump_rebuild_s": pair("bump_rebuild_s", each(lambda s: s.seconds["bump"])),
        "bump_new_mb": pair("bump_new_mb", each(lambda s: s.bump_mb)),
        "peak_build_rss_mb": pair("peak_build_rss_mb", each(lambda s: s.cold.peak_mb)),
        "image_mb": pair("image_mb", each(lambda s: s.size.total_mb)),
        "over_base_mb": pair("over_base_mb", each(lambda s: s.size.total_mb - base_mb)),
        "compressed_mb": pair("compressed_mb", each(lambda s: s.size.compressed_mb)),
    }


def measure_images(
    run: Run, variant: Variant, tags: dict[str, str], notes: list[str]
) -> dict[str, Metric]:
    """Both images as built: layers, distributions, start until they answer; our contract."""
    display, label = run.display, variant.name
    facts = {role: images.image_facts(run.sdk, tags[role]) for role in ROLES}
    with display.step(f"{label}: count installed distributions") as step:
        distributions = {role: images.count_distributions(run.sdk, tags[role]) for role in ROLES}
        step.result = ", ".join(f"{role} {distributions[role]}" for role in ROLES)
    starts: dict[str, list[tuple[float | None, float | None]]] = {role: [] for role in ROLES}
    problems: dict[str, str] = {}
    samples = images.START_SAMPLES
    with display.step(
        f"{label}: start each image {samples} times, in turn, until it answers"
    ) as step:
        for _ in range(samples):
            for role in ROLES:
                health_s, healthy_s, problem = images.measure_start(
                    run.sdk, tags[role], facts[role].has_healthcheck
                )
                starts[role].append((health_s, healthy_s))
                if problem:
                    problems.setdefault(role, problem)
        health = {role: images.median(s for s, _ in starts[role]) for role in ROLES}
        healthy = {role: images.median(s for _, s in starts[role]) for role in ROLES}
        step.result = "; ".join(
            f"{role} /health {report.format_value(health[role], 's')}, "
            f"healthy {report.format_value(healthy[role], 's')}"
            for role in ROLES
        )
    notes.append(f"start figures: the median of {samples} starts of each image, taken in turn.")
    notes += [f"start of the {role} image: {problem}" for role, problem in problems.items()]
    if not facts["before"].has_healthcheck:
        notes.append("the pre-project image has no HEALTHCHECK, so it never reports `healthy`.")
    with display.step(f"{label}: contract suite on our image") as step:
        contract_s, contract_note = run_contract_suite(
            variant, tags["ours"], run.revisions[tags["ours"]], run.log
        )
        step.result = contract_note.split(": ", 1)[1]
    notes.append(contract_note)
    return {
        "layers": pair("layers", {role: float(facts[role].layers) for role in ROLES}),
        "distributions": pair("distributions", {r: float(distributions[r]) for r in ROLES}),
        "health_s": pair("health_s", health),
        "healthy_s": pair("healthy_s", healthy),
        "contract_s": Metric("contract_s", None, contract_s),
    }


def measure_release(
    run: Run, variant: Variant, tags: dict[str, str], notes: list[str]
) -> dict[str, Metric]:
    """Both images pushed, pulled on a clean engine and started; ours from a registry cache."""
    display, label = run.display, variant.name
    releases: dict[str, release.Release] = {}
    # A registry per push, and the pre-project image gone once shipped: the full variant's
    # copies in registries, clean engines and the store would not fit on one disk at once.
    for role in ROLES:
        with (
            display.step(
                f"{label}: push the {role} image, pull it on {release.PULL_SAMPLES} clean engines"
            ) as step,
            registry.serve() as address,
        ):
            tag = f"bench-{variant.name}-{role}"
            releases[role] = shipped = release.push_pull_start(
                variant, tags[role], address, tag, run.log
            )
            if shipped.problem:
                notes.append(f"start of the {role} image on the clean engine: {shipped.problem}")
            cold_node = report.format_value(shipped.node_start_s, "s")
            step.result = (
                f"push {shipped.push_s:.1f} s ({shipped.pushed_mb:,.0f} MB), pull "
                f"{shipped.pull_s:.1f} s, cold node {cold_node}"
            )
        if role == "before" and not run.options.keep:
            remove_images(run, [tags[role]])
    # The classic store's docker driver exports no build cache: nothing to measure there.
    cached = None
    if engine.containerd_store(run.sdk):
        with (
            display.step(f"{label}: build ours on a clean engine from a registry cache") as step,
            registry.serve() as address,
        ):
            tag = f"{tags['ours']}-cache"
            options = run.build_options(variant, tag=tag, before=False, cold=False)
            run.wait_for_other_builds(step)
            cached = release.build_from_registry_cache(variant, options, address, run.log)
            run.created[tag] = str(run.sdk.images.get(tag).id)
            step.result = (
                f"export {cached.export_s:.1f} s, clean engine {cached.build_s:.1f} s "
                f"({cached.pulled_mb:,.0f} MB pulled)"
            )
    notes.append(
        f"pull and cold node figures: the median of {release.PULL_SAMPLES} clean engines, each "
        "pulling the image by digest from the loopback registry it was pushed to."
    )
    notes.append(
        "registry cache: our engine builds the bench's last change again with `--cache-to "
        "type=registry,...,mode=max` (the time is that build's and its cache's export), then a "
        "clean engine (containerd store, empty, no build cache) builds it with `--cache-from`; "
        "pulled is what that engine's content store grew by."
        if cached
        else "registry cache: not measured: on the classic store, the docker driver exports no "
        "build cache (`--cache-to` needs the containerd store or a docker-container builder)."
    )
    metrics = {
        "push_s": pair("push_s", {role: releases[role].push_s for role in ROLES}),
        "pushed_mb": pair("pushed_mb", {role: releases[role].pushed_mb for role in ROLES}),
        "pull_s": pair("pull_s", {role: releases[role].pull_s for role in ROLES}),
        "node_start_s": pair("node_start_s", {r: releases[r].node_start_s for r in ROLES}),
    }
    if cached:
        metrics["cache_export_s"] = Metric("cache_export_s", None, cached.export_s)
        metrics["cache_build_s"] = Metric("cache_build_s", None, cached.build_s)
        metrics["cache_pulled_mb"] = Metric("cache_pulled_mb", None, cached.pulled_mb)
    return metrics


def release_path(metrics: Mapping[str, Metric]) -> Metric:
    """Cold build, contract (ours only: the pre-project workflow ran none), push and a cold
    node's start, summed."""

    def total(role: str) -> float | None:
        parts = [getattr(metrics[key], role) for key in ("cold_build_s", "push_s", "node_start_s")]
        if role == "ours":
            parts.append(metrics["contract_s"].ours)
        return None if None in parts else sum(part for part in parts if part is not None)

    return pair("release_s", {role: total(role) for role in ROLES})


def remove_images(run: Run, tags: Iterable[str]) -> int:
    """Remove these images of this run (if still the ones it built); how many went."""
    removed = 0
    for tag in tags:
        try:
            if run.sdk.images.get(tag).id == run.created.get(tag):
                run.sdk.images.remove(tag)
                removed += 1
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError as error:
            run.notes.append(f"could not remove {tag}: {error.explanation or error}")
    return removed


def prune_added_cache(run: Run) -> tuple[int, int] | None:
    """Prune the build cache records this run added: (pruned, left), or None when another build
    runs (its records can't be told from this run's). Records still backing an image are left."""
    if other_builds():
        run.note_once(
            "another build was running when the bench pruned its build cache, so it was "
            "left (its records can't be told from that build's); `invoke clean` removes it."
        )
        return None
    added = {record.id for record in run.cache.records()} - run.cache_before
    left = run.cache.prune(added)
    return len(added) - len(left), len(left)


def clean_up(run: Run) -> None:
    """Remove the images this run built and the build cache it added; nothing else."""
    with run.display.step("remove what the bench created") as step:
        removed, pruned = remove_images(run, run.created), prune_added_cache(run)
        step.result = f"{removed} images, " + (
            f"{pruned[0]} cache records" if pruned else "build cache left (another build running)"
        )
        if pruned and pruned[1]:
            run.notes.append(f"{pruned[1]} cache records the bench added could not be pruned.")


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


def engine_data_root(sdk: docker.DockerClient) -> Path | None:
    """Where the engine keeps its data, if that is on this machine's disk."""
    root = Path(sdk.info().get("DockerRootDir", ""))
    local = engine_is_local(os.environ.get("DOCKER_HOST")) and root.is_absolute()
    return root if local and root.is_dir() else None


def check_free_disk(root: Path | None, variants: Iterable[Variant], keep: bool = False) -> None:
    """Refuse, before an hour of builds, a run that would fill the engine's disk half-way. Each
    variant's images and cache go before the next is built, unless kept (then the sum counts)."""
    variants = list(variants)
    if root is None:
        return  # an engine elsewhere: its disk is not this machine's
    needs = [variant.bench_disk_gb for variant in variants]
    need = sum(needs) if keep else max(needs)
    free = shutil.disk_usage(root).free / 1e9
    if free < need:
        names = " and ".join(variant.name for variant in variants)
        raise DiskShort(
            f"the bench of {names} needs about {need} GB free where the engine keeps its data "
            f"({root}), and {free:.0f} GB are: free some (`docker system df`, `invoke clean`), "
            "or bench one variant (`--variant ci`)."
        )


def run_bench(options: BenchOptions, console: Console | None = None) -> Report:
    """Measure every requested variant; write the outputs; BudgetExceeded names each overrun."""
    console = console or Console(file=sys.stdout)
    variants = [get_variant(name) for name in options.variants]
    sdk = engine.client()
    engine.ensure_base_image(sdk, options.base_image)
    data_root = engine_data_root(sdk)
    check_free_disk(data_root, variants, options.keep)
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
    stopped: ToolError | KeyboardInterrupt | None = None
    with (
        tempfile.TemporaryDirectory(prefix=f"{project.NAME}-bench-") as tmp,
        log_path.open("w", encoding="utf-8") as log,
        Display(console) as display,
        DiskWatch(data_root, current_step=lambda: display.current) as disk,
    ):
        before = {record.id for record in cache.records()}
        run = Run(options, sdk, display, Path(tmp), log, cache, memory_enabled, before)
        try:
            for variant in variants:
                results.append(bench_variant(run, variant))
                if not options.keep and variant != variants[-1]:
                    clean_up(run)  # the next variant's builds need this one's disk
        except (ToolError, KeyboardInterrupt, OSError) as raised:
            # The variants measured before it keep their figures: an hour of builds is not lost.
            error = disk_filled(raised) if isinstance(raised, OSError) else raised
            if error is None:
                raise
            stopped = error
            why = error.message if isinstance(error, ToolError) else "interrupted"
            run.notes.append(f"incomplete: the {variant.name} variant stopped ({why}).")
        finally:
            if options.keep:
                run.notes.append(
                    f"--keep: left images {', '.join(run.created)} and the build cache."
                )
            else:
                clean_up(run)
    if (taken := disk.describe()) is not None:
        run.notes.append(taken)
        display.note(taken)
    if run.saw_other_build:
        run.notes.append(
            "another build ran on this machine during the bench; the bench waited "
            "for it before each build."
        )
    if stopped is not None and not results:
        raise stopped
    result = Report(date, machine_facts(sdk), tool_versions(), results, run.notes)
    paths = write_outputs(result, options.output, console)
    # soft_wrap: the table stays one line per row, to paste as it is
    console.print(report.render_markdown(result), markup=False, highlight=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(path) for path in paths))
    if stopped is not None:
        measured = " and ".join(done.variant for done in results)
        console.print(f"[yellow]note:[/] the figures written are those of {measured} only.")
        raise stopped
    exceeded = result.exceeded()
    if exceeded:
        raise BudgetExceeded("budgets exceeded: " + "; ".join(exceeded) + ".")
    return result

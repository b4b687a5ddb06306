"""The bench's logic without Docker: ratios and budgets, rendering, the README section, reading
cgroup memory and BuildKit's cache records from fixture files, and spotting other builds.

Fixtures under fixtures/bench/ are real outputs from the 2-core development machine (cgroup v1,
Docker 20.10, buildx 0.13) plus a cgroup v2 memory.stat of the documented format.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from service_images import build, debian_tools, engine, lockfile, locks
from service_images.bench import context, disk, images, machine, memory, report
from service_images.bench import run as bench_run
from service_images.bench.display import Display
from service_images.bench.report import BudgetCheck, Metric, Report, VariantResult
from service_images.errors import DiskShort, MissingFile
from service_images.requirements import check
from service_images.variants import IMAGE_NAME, ROOT, SERVICE_SOURCE, VARIANTS, Budgets, Variant

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
X = report.TIMES  # the multiplication sign
CI_BUDGETS = VARIANTS["ci"].budgets


def metrics(**pairs: tuple[float | None, float | None]) -> dict[str, Metric]:
    return {key: Metric(key, before, ours) for key, (before, ours) in pairs.items()}


def ci_result(**overrides: tuple[float | None, float | None]) -> VariantResult:
    figures = metrics(
        cold_build_s=(25.0, 8.0),
        rebuild_s=(3.0, 1.5),
        bump_rebuild_s=(20.0, 3.0),
        bump_new_mb=(300.0, 40.0),
        peak_build_rss_mb=(400.0, 300.0),
        image_mb=(750.0, 382.0),
        over_base_mb=(512.0, 144.0),
        compressed_mb=(300.0, 150.0),
        layers=(8, 9),
        distributions=(60, 55),
        health_s=(2.0, 5.2),
        healthy_s=(None, 5.7),
        contract_s=(None, 6.0),
        push_s=(3.0, 1.0),
        pushed_mb=(213.0, 120.0),
        pull_s=(4.0, 2.0),
        node_start_s=(6.0, 7.2),
        release_s=(40.0, 12.0),
        cache_export_s=(None, 4.0),
        cache_build_s=(None, 9.0),
        cache_pulled_mb=(None, 125.0),
        reproducible_build_s=(None, 70.0),
        differing_layers=(None, 0),
    )
    figures.update(metrics(**overrides))
    return VariantResult(
        "ci",
        VARIANTS["ci"].description,
        figures,
        report.evaluate_budgets(CI_BUDGETS, figures),
        notes=["peak build memory: cgroup v1 memory.stat total_rss"],
        images={
            "ours": f"{IMAGE_NAME}:bench-ci",
            "before": f"{IMAGE_NAME}:bench-ci-before",
        },
    )


def sample_report(result: VariantResult | None = None) -> Report:
    return Report(
        date="2026-11-28T18:40:00+00:00",
        machine={
            "cpus": 2,
            "memory_gib": 23.5,
            "kernel": "6.1.0",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "docker_server": "20.10.24+dfsg1",
            "buildx": "0.13.1+ds1",
            "cgroup_version": "1",
        },
        tools={"python": "3.11.7", "BuildKit": "v0.8+unknown"},
        variants=[result or ci_result()],
        notes=["cache mounts: pruned by record id"],
    )


# --- Ratios and budgets ---------------------------------------------------------------------------


def test_ratio_is_ours_over_before() -> None:
    assert Metric("cold_build_s", 20.0, 5.0).ratio == pytest.approx(0.25)


@pytest.mark.parametrize(("before", "ours"), [(None, 1.0), (1.0, None), (0.0, 1.0), (None, None)])
def test_ratio_is_missing_when_it_cannot_be_taken(before: float | None, ours: float | None) -> None:
    assert Metric("x", before, ours).ratio is None


@pytest.mark.parametrize(
    ("seconds", "median"), [([0.7, 0.6, 0.9], 0.7), ([0.5, 0.75], 0.625), ([0.7, None, 0.6], None)]
)
def test_a_start_figure_is_the_median_and_missing_if_any_start_failed(
    seconds: list[float | None], median: float | None
) -> None:
    assert images.median(seconds) == median


def test_budgets_within_limits_pass() -> None:
    checks = ci_result().budgets
    assert {check.budget for check in checks} == {
        "cold_build_ratio",
        "rebuild_s",
        "bump_rebuild_s",
        "bump_new_share",
        "peak_build_rss_mb",
        "image_mb",
        "size_over_base_ratio",
        "health_s",
        "health_ratio",
        "contract_s",
        "release_ratio",
        "differing_layers",
    }, "ci sets no image_ratio: no check for it"
    by_name = {check.budget: check for check in checks}
    assert by_name["cold_build_ratio"].value == pytest.approx(0.32)
    assert by_name["bump_new_share"].value == pytest.approx(40 / 382)
    assert by_name["size_over_base_ratio"].value == pytest.approx(144 / 512)
    assert by_name["rebuild_s"].value == 1.5
    assert by_name["health_s"].ok is False, "5.2 s is over the 3 s budget"
    assert by_name["release_ratio"].value == pytest.approx(12.0 / 40.0)


def test_two_builds_that_differ_exceed_the_budget() -> None:
    lines = sample_report(ci_result(differing_layers=(None, 2))).exceeded()
    assert "ci layers that differ between two reproducible builds 2 > 0 (differing_layers)" in lines
    assert not any("differ" in line for line in sample_report().exceeded())


def test_each_exceeded_budget_is_named_with_value_and_limit() -> None:
    result = ci_result(cold_build_s=(20.0, 12.0), peak_build_rss_mb=(400.0, 600.0))
    lines = sample_report(result).exceeded()
    assert len(lines) == 4
    joined = "\n".join(lines)
    assert f"ci cold build ours/before 0.60{X} > 0.35{X} (cold_build_ratio)" in joined
    assert "ci peak build memory (RSS) 600 MB > 512 MB (peak_build_rss_mb)" in joined
    assert "(health_s)" in joined
    assert f"ci start → /health answers ours/before 2.60{X} > 1.00{X} (health_ratio)" in joined


def test_a_share_budget_is_ours_over_another_of_ours() -> None:
    result = ci_result(bump_new_mb=(750.0, 191.0))
    (check,) = [check for check in result.budgets if check.budget == "bump_new_share"]
    assert check.value == pytest.approx(0.5)
    assert check.describe("ci") == (
        "ci bytes that rebuild added (nodes pull again) as a share of the image size "
        "50.0% > 25% (bump_new_share)"
    )
    assert "10.5% of the image size ≤ 25% ✅" in report.render_variant_table(ci_result())


def test_unmeasured_figures_are_not_counted_as_exceeded() -> None:
    result = ci_result(peak_build_rss_mb=(None, None), health_s=(None, None))
    checks = {check.budget: check for check in result.budgets}
    assert checks["peak_build_rss_mb"].ok is None
    assert checks["health_s"].ok is None
    assert sample_report(result).exceeded() == []


def test_ratio_budgets_of_the_full_variant() -> None:
    budgets = Budgets(
        image_mb=11_000,
        size_over_base_ratio=0.9,
        cold_build_ratio=0.6,
        peak_build_rss_mb=4096,
        health_s=10.0,
        image_ratio=0.9,
    )
    figures = metrics(image_mb=(10_000.0, 9_500.0), cold_build_s=(300.0, 240.0))
    checks = {check.budget: check for check in report.evaluate_budgets(budgets, figures)}
    assert checks["image_ratio"].value == pytest.approx(0.95)
    assert checks["image_ratio"].ok is False
    assert checks["cold_build_ratio"].ok is False
    assert checks["rebuild_s"].ok if "rebuild_s" in checks else True
    assert checks["health_s"].ok is None, "not measured: no figure"


def test_budget_rules_name_real_fields_and_metrics() -> None:
    for rule in report.BUDGET_RULES:
        assert hasattr(CI_BUDGETS, rule.budget)
        assert rule.metric in report.SPECS


# --- JSON -----------------------------------------------------------------------------------------


def test_json_round_trip(tmp_path: Path) -> None:
    original = sample_report(ci_result(cold_build_s=(20.0, 12.0)))
    path = tmp_path / "bench.json"
    report.save(original, path)
    data = json.loads(path.read_text())
    assert data["variants"][0]["metrics"]["cold_build_s"]["ratio"] == pytest.approx(0.6)
    assert data["exceeded"] == original.exceeded()
    loaded = report.load(path)
    assert loaded.to_json() == original.to_json()


def test_missing_results_say_to_run_the_bench(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match="invoke bench"):
        report.load(tmp_path / "bench.json")


# --- Markdown -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "s", "n/a"),
        (2.345, "s", "2.35 s"),
        (25.34, "s", "25.3 s"),
        (9876.4, "MB", "9,876 MB"),
        (57, "count", "57"),
    ],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert report.format_value(value, unit) == text


def test_markdown_has_one_table_per_variant_with_ratio_and_budget() -> None:
    markdown = report.render_markdown(sample_report())
    assert "| metric | before | ours | ratio (ours/before) | budget |" in markdown
    assert f"| cold build | 25.0 s | 8.00 s | 0.32{X} | ratio ≤ 0.35{X} ✅ |" in markdown
    assert (
        f"| start → /health answers | 2.00 s | 5.20 s | 2.60{X} "
        f"| ours ≤ 3.00 s ❌; ratio ≤ 1.00{X} ❌ |" in markdown
    )
    assert "| start → Docker `healthy` | n/a | 5.70 s | n/a |" in markdown
    assert "| contract suite | n/a | 6.00 s | n/a | ours ≤ 8.00 s ✅ |" in markdown
    assert (
        "2 CPUs, 24 GiB RAM, Debian GNU/Linux 12 (bookworm) (kernel 6.1.0), "
        "Docker Engine 20.10.24+dfsg1" in markdown
    )
    assert "**Budgets exceeded:**" in markdown
    assert "- peak build memory: cgroup v1 memory.stat total_rss" in markdown


def test_markdown_rows_all_have_five_cells() -> None:
    table = report.render_variant_table(ci_result())
    rows = table.splitlines()
    assert len(rows) == 2 + len(report.METRICS)
    assert all(row.count(" | ") == 4 for row in rows)


# --- Chart ----------------------------------------------------------------------------------------


def test_chart_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    report.render_chart(sample_report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- Build memory from cgroup files ---------------------------------------------------------------


def test_parse_memory_stat_v1() -> None:
    stat = memory.parse_memory_stat((FIXTURES / "cgroup-v1-memory.stat").read_text())
    assert stat["total_rss"] == 61_956_096
    assert stat["total_cache"] == 5_645_901_824, "page cache is there, and must not be used"


def cgroup_v1(root: Path) -> Path:
    path = root / "memory" / "docker" / "buildkit" / "memory.stat"
    path.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "cgroup-v1-memory.stat", path)
    return root


def test_v1_reads_total_rss_of_the_buildkit_cgroup(tmp_path: Path) -> None:
    root = cgroup_v1(tmp_path)
    assert memory.cgroup_version(root) == 1
    reading = memory.read_build_memory(root, memory.memory_candidates(root))
    assert reading is not None
    value, source = reading
    assert value == 61_956_096
    assert source.key == "total_rss"


def test_v2_reads_anon_of_the_buildkit_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    path = tmp_path / "docker" / "buildkit" / "memory.stat"
    path.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "cgroup-v2-memory.stat", path)
    reading = memory.read_build_memory(tmp_path, memory.memory_candidates(tmp_path))
    assert reading is not None
    assert reading[0] == 283_115_520
    assert "anon" in reading[1].description


def test_v2_systemd_scopes_add_up_and_skip_ordinary_containers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    stat = (FIXTURES / "cgroup-v2-memory.stat").read_text()
    for name in (
        "docker-k3x9buildkitstep1.scope",
        "docker-q7y2buildkitstep2.scope",
        "docker-" + "a" * 64 + ".scope",
    ):
        (tmp_path / "system.slice" / name).mkdir(parents=True)
        (tmp_path / "system.slice" / name / "memory.stat").write_text(stat)
    reading = memory.read_build_memory(tmp_path, memory.memory_candidates(tmp_path))
    assert reading is not None
    assert reading[0] == 2 * 283_115_520


def test_sampler_keeps_the_peak(tmp_path: Path) -> None:
    root = cgroup_v1(tmp_path)
    stat = root / "memory" / "docker" / "buildkit" / "memory.stat"
    sampler = memory.PeakSampler(root, enabled=False)
    for rss in (100 * memory.MB, 700 * memory.MB, 300 * memory.MB):
        stat.write_text(f"rss 0\ntotal_cache 999999999999\ntotal_rss {rss}\n")
        sampler.sample()
    assert sampler.peak_mb == pytest.approx(700)


def test_sampler_thread_samples_while_the_block_runs(tmp_path: Path) -> None:
    root = cgroup_v1(tmp_path)
    with memory.PeakSampler(root, interval=0.01) as sampler:
        pass
    assert sampler.peak == 61_956_096
    assert "total_rss" in sampler.describe()


def test_no_cgroup_file_is_not_measurable(tmp_path: Path) -> None:
    with memory.PeakSampler(tmp_path, interval=0.01) as sampler:
        pass
    assert sampler.peak_mb is None
    assert "not measurable here" in sampler.describe()


@pytest.mark.parametrize(
    ("docker_host", "local"),
    [
        (None, True),
        ("", True),
        ("unix:///var/run/docker.sock", True),
        ("tcp://10.0.0.5:2376", False),
    ],
)
def test_memory_is_only_sampled_for_a_local_engine(docker_host: str | None, local: bool) -> None:
    assert memory.engine_is_local(docker_host) is local


# --- Other builds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "is_build"),
    [
        (["docker", "buildx", "build", "--load", "."], True),
        (["/usr/local/lib/docker/cli-plugins/docker-buildx", "buildx", "build", "."], True),
        (["docker", "build", "-t", "x", "."], True),
        (["/usr/bin/docker", "image", "build", "."], True),
        (["docker", "buildx", "du", "--verbose"], False),
        (["docker", "builder", "prune", "-f"], False),
        (["docker", "run", "--rm", f"{IMAGE_NAME}:ci"], False),
        (["python", "-m", "pytest", "tests/tooling/test_bench.py"], False),
        (["invoke", "build-ci"], False),
        ([], False),
    ],
)
def test_is_build_command(argv: list[str], is_build: bool) -> None:
    assert machine.is_build_command(argv) is is_build


def test_other_builds_reads_proc(tmp_path: Path) -> None:
    def process(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(10, "docker", "buildx", "build", "--load", ".")
    process(11, "bash")
    process(12, "docker", "build", ".")
    (tmp_path / "self").mkdir()
    found = machine.other_builds(tmp_path, own_pid=12)
    assert found == [(10, "docker buildx build --load .")]


# --- The temporary build context ------------------------------------------------------------------


def test_code_change_happens_in_both_copies_only(tmp_path: Path) -> None:
    real = (SERVICE_SOURCE / "main.py").read_bytes()
    copied = context.copy_context(tmp_path / "context")
    context.change_service_code(copied)
    assert (SERVICE_SOURCE / "main.py").read_bytes() == real
    for app in (copied / SERVICE_SOURCE.relative_to(ROOT), copied / context.BEFORE_CONTEXT / "app"):
        changed = (app / "main.py").read_bytes()
        assert changed.startswith(real)
        assert b"# bench: a code-only change" in changed[len(real) :]
    for variant in VARIANTS.values():
        assert (copied / variant.dockerfile.relative_to(ROOT)).is_file()
        assert (copied / context.BEFORE_DIR / variant.dockerfile.name).is_file(), (
            f"no pre-project reference for {variant.dockerfile.name}"
        )
        assert (copied / context.BEFORE_CONTEXT / variant.requirements.name).is_file()
    assert not list(copied.rglob("__pycache__"))


def pinned(lock: Path) -> set[tuple[str, str]]:
    """(name, version) of every package a requirements-format or PEP 751 lock pins."""
    if lock.suffix == ".toml":
        return set(lockfile.read_pylock(lock))
    return {(name, entry.version) for name, entry in lockfile.read(lock).entries.items()}


@pytest.mark.usefixtures("debian_index")
def test_bump_moves_one_package_in_every_file_and_nothing_else(tmp_path: Path) -> None:
    """The bump runs `invoke lock`'s function in the copy (uv, against PyPI): only its pin moves,
    in every lock file, and the copy passes the requirements check."""
    bump = context.LIGHT_BUMP
    copied = context.copy_context(tmp_path / "context")
    said = context.bump_light_dependency(copied)
    assert said.endswith(f"-> {bump.package}=={bump.to}"), said
    for variant in VARIANTS.values():
        for path in (
            copied / variant.requirements.name,
            copied / context.BEFORE_CONTEXT / variant.requirements.name,
        ):
            text = path.read_text()
            assert f"{bump.package}=={bump.to}\n" in text, path
            original = variant.requirements.read_text().splitlines()
            assert sum(a != b for a, b in zip(original, text.splitlines(), strict=True)) == 1
    variant_files = {
        path.name for v in VARIANTS.values() for path in (v.lock, lockfile.wheels_file(v))
    }
    for lock in locks.lock_files():
        if lock in {debian.path for debian in debian_tools.LOCKS}:
            assert (copied / lock.name).read_bytes() == lock.read_bytes()
            continue
        moved = {name for name, _ in pinned(lock) ^ pinned(copied / lock.name)}
        expected = {bump.package} if lock.name in variant_files else set()
        assert moved == expected, f"{lock.name}: {sorted(moved)} moved"
    assert check(copied).startswith("requirements: OK (")


def test_bench_tags_never_collide_with_the_user_tags() -> None:
    for variant in VARIANTS.values():
        tags = bench_run.bench_tags(variant).values()
        assert variant.tag not in tags
        assert len(set(tags)) == 6
        assert all(":bench-" in tag for tag in tags)


def test_budget_check_description_for_absolute_limit() -> None:
    check = BudgetCheck("rebuild_s", "rebuild_s", False, 3.0, 4.5)
    assert check.describe("ci") == (
        "ci rebuild after a service-code change 4.50 s > 3.00 s (rebuild_s)"
    )


def test_each_role_builds_its_series_then_frees_it_before_the_other_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full variant's two series at once did not fit on a 74 GB disk: the pre-project
    rebuilds and their cache go before ours is built."""
    events: list[tuple[str, ...]] = []
    locked: list[bool] = []

    def bump(copy: Path, *, lock: bool) -> str:
        locked.append(lock)
        return "loguru==0.7.0 -> loguru==0.7.2"

    def build(variant: object, step: object, *, tag: str, **options: bool) -> tuple[float, object]:
        events.append(("build", tag.rsplit(":", 1)[1]))
        return 1.0, memory.PeakSampler(enabled=False)

    def remove(run: object, tags: list[str]) -> int:
        events.append(("remove", *(tag.rsplit(":", 1)[1] for tag in tags)))
        return len(tags)

    layers = images.Sizes({"sha256:a": 100.0}, 40.0)
    monkeypatch.setattr(context, "copy_context", lambda destination: destination)
    monkeypatch.setattr(context, "change_service_code", lambda copy: None)
    monkeypatch.setattr(context, "bump_light_dependency", bump)
    monkeypatch.setattr(images, "sizes", lambda sdk, tag: layers)
    monkeypatch.setattr(bench_run, "remove_images", remove)
    monkeypatch.setattr(bench_run, "prune_added_cache", lambda run: events.append(("prune",)))
    options = bench_run.BenchOptions(("ci",), output=tmp_path)
    with Display(Console(file=io.StringIO())) as display:
        run = bench_run.Run(options, None, display, tmp_path, io.StringIO(), None, False, set())
        monkeypatch.setattr(run, "build", build)
        monkeypatch.setattr(run, "prune_cache_mounts", lambda step: None)
        figures = bench_run.measure_builds(
            run, VARIANTS["ci"], bench_run.bench_tags(VARIANTS["ci"]), []
        )
    expected = [
        event
        for role in ("-before", "")  # the tags: NAME:bench-ci-before, NAME:bench-ci
        for event in (
            ("build", f"bench-ci{role}"),
            ("build", f"bench-ci{role}-rebuild"),
            ("build", f"bench-ci{role}-bump"),
            ("remove", f"bench-ci{role}-rebuild", f"bench-ci{role}-bump"),
            ("prune",),
        )
    ]
    assert events == expected
    assert locked == [False, True]  # `invoke lock` runs in our copy only
    assert figures["cold_build_s"] == Metric("cold_build_s", 1.0, 1.0)
    assert run.context == tmp_path / "ci" / "ours"  # the registry cache builds ours after


def test_the_pre_project_image_is_exported_as_its_plain_docker_build_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gzip, the engine's own, for the reference: it was once built with our zstd, which the
    figures then credited to the pre-project Dockerfiles (full compressed bytes 0.94x)."""
    monkeypatch.setattr(engine, "client", lambda: None)
    monkeypatch.setattr(engine, "containerd_store", lambda sdk: True)
    options = bench_run.BenchOptions(("ci",), output=tmp_path)
    run = bench_run.Run(options, None, None, tmp_path, io.StringIO(), None, False, set())

    def exported(*, before: bool) -> str:
        built = run.build_options(VARIANTS["ci"], tag="t", before=before, cold=True)
        return build.output(built, "t")

    assert exported(before=True) == "type=image,name=t"
    assert exported(before=False) == (
        "type=image,name=t,compression=zstd,compression-level=3,force-compression=true,"
        "oci-mediatypes=true"
    )


class FakeEngine:
    def __init__(self, root: Path) -> None:
        self.root = root

    def info(self) -> dict[str, str]:
        return {"DockerRootDir": str(self.root)}


def test_a_bench_the_disk_cannot_hold_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def data_root() -> Path | None:
        return bench_run.engine_data_root(FakeEngine(tmp_path))

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    free_gb = shutil.disk_usage(tmp_path).free / 1e9
    fits = dataclasses.replace(VARIANTS["ci"], bench_disk_gb=int(free_gb) - 1)
    bench_run.check_free_disk(data_root(), [fits])
    too_big = dataclasses.replace(fits, bench_disk_gb=int(free_gb) + 1000)
    with pytest.raises(DiskShort, match=rf"needs about \d+ GB free .*\({tmp_path}\), and \d+ GB"):
        bench_run.check_free_disk(data_root(), [too_big])
    # Each variant's images and cache go before the next: the largest need counts, unless kept.
    half = dataclasses.replace(fits, bench_disk_gb=int(free_gb * 0.6))
    bench_run.check_free_disk(data_root(), [half, half])
    with pytest.raises(DiskShort, match="the bench of ci and ci needs about"):
        bench_run.check_free_disk(data_root(), [half, half], keep=True)
    monkeypatch.setenv("DOCKER_HOST", "tcp://builder.example:2376")
    bench_run.check_free_disk(data_root(), [too_big])  # not this machine's disk


def test_the_disk_watch_names_the_most_the_run_took_and_its_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = iter([100 * 10**9, 90 * 10**9, 95 * 10**9])
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda root: SimpleNamespace(free=next(free)))
    steps = iter(["cold build", "bump rebuild"])
    with disk.DiskWatch(tmp_path, lambda: next(steps), interval=3600) as watch:
        watch.sample()  # 90 GB free, during the cold build
        watch.sample()  # 95 GB: not the least
    assert watch.describe() == (
        f"disk: the run took at most 10.0 GB of the 100.0 GB free at its start, on the file "
        f"system of {tmp_path}, during “cold build”."
    )


def test_no_disk_is_watched_for_an_engine_elsewhere() -> None:
    with disk.DiskWatch(None, lambda: "a step") as watch:
        pass
    assert watch.describe() is None


class EmptyCache:
    def records(self) -> list[object]:
        return []


@pytest.mark.parametrize(
    "failure",
    [
        DiskShort("the disk filled up"),
        # As a write of the build log raised it, when a full build filled the disk.
        OSError(errno.ENOSPC, "No space left on device", "bench-build.log"),
    ],
)
def test_a_variant_that_fails_keeps_the_figures_of_those_before_it(
    failure: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    def bench_variant(run: bench_run.Run, variant: Variant) -> VariantResult:
        events.append(variant.name)
        if variant is VARIANTS["full"]:
            raise failure
        return ci_result()

    monkeypatch.setattr(bench_run.engine, "client", lambda: FakeEngine(tmp_path))
    monkeypatch.setattr(bench_run.engine, "ensure_base_image", lambda *args: None)
    monkeypatch.setattr(bench_run, "check_free_disk", lambda *args: None)
    monkeypatch.setattr(bench_run, "BuildCache", EmptyCache)
    monkeypatch.setattr(bench_run, "bench_variant", bench_variant)
    monkeypatch.setattr(bench_run, "clean_up", lambda run: events.append("clean up"))
    monkeypatch.setattr(bench_run, "machine_facts", lambda sdk: sample_report().machine)
    monkeypatch.setattr(bench_run, "tool_versions", lambda: {})
    options = bench_run.BenchOptions(("ci", "full"), output=tmp_path / "reports")
    with pytest.raises(DiskShort):
        bench_run.run_bench(options)
    written = report.load(tmp_path / "reports" / "bench.json")
    assert [result.variant for result in written.variants] == ["ci"]
    incomplete, taken = written.notes
    assert incomplete.startswith("incomplete: the full variant stopped (the disk filled up")
    assert taken.startswith("disk: the run took at most ")  # a failed run says it too
    assert events == ["ci", "clean up", "full", "clean up"]  # ci's disk freed before full builds

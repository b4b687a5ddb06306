"""A round trip through a real registry, and a build that reuses a registry's cache.

The CI image is built from a copy of its context whose Dockerfile ends every RUN with a shell
comment naming this run: the image is the same, but every cache key is new (nothing another
build left on this engine can stand in for it) and every BuildKit record the run makes carries the
run's name in its description, so exactly those records can be pruned. (A base image that
differs only by a label changes no cache key: BuildKit keys on layers.) The build exports its
cache inline (`--cache-to type=inline`, the one cache export the
docker driver supports) and is pushed to a registry on 127.0.0.1. Then every local trace of it
goes: its tag, its image id, and the BuildKit records the build added (listed before and after).
From there:

- a build with `--cache-from type=registry,ref=<pushed>` must take the dependency layers from
  the registry (BuildKit says CACHED for each tier's layer) and beat the cold build;
- the image pulled by digest must pass the CI contract, as `nox -s ci_image -- --image
  HOST/REPO@sha256:...` runs it (the contract's fixture pulls what is not local).

Timings go to reports/registry-roundtrip.json.

    pytest tests/build/test_registry.py      # an engine, docker-registry; ~3 min on 2 cores
"""

from __future__ import annotations

import io
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service_images import contract, engine, registry, sbom, tiers
from service_images.build import BuildOptions, build_args, failure_summary, git
from service_images.buildcache import BuildCache, normalise_space
from service_images.lockfile import locked_versions
from service_images.variants import IMAGE_NAME, ROOT, get_variant

VARIANT = get_variant("ci")
REPORT = ROOT / "reports" / "registry-roundtrip.json"
CLOCK_SLACK = timedelta(seconds=2)
TIER_LAYER = re.compile(r"COPY --from=([a-z-]+) /opt/venv")  # one layer per tier of the lock


@dataclass
class RoundTrip:
    """What the module's tests share, and what they measured."""

    run_id: str
    context: Path
    revision: str = ""
    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    """When this run's builds ran (engine and host share a clock: both are this machine)."""
    timings: dict[str, float] = field(default_factory=dict)
    pushed: registry.PushResult | None = None
    cache_build: dict[str, object] = field(default_factory=dict)

    @property
    def instructions(self) -> set[str]:
        """The CI Dockerfile's instructions as image history shows them: spaces normalised, and
        COPY without its flags (`COPY --from=numeric /opt/venv /opt/venv` shows no --from)."""
        text = VARIANT.dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
        lines = (normalise_space(line) for line in text.splitlines() if line.strip())
        return {re.sub(r"^COPY(?: --\S+)+", "COPY", line) for line in lines}

    @property
    def marker(self) -> str:
        return f"python-ai-service test run {self.run_id}"

    pruned_records: set[str] = field(default_factory=set)


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return engine.cli(*args, timeout=600)


def image_id(reference: str) -> str | None:
    result = docker("image", "inspect", "--format", "{{.Id}}", reference)
    return result.stdout.strip() if result.returncode == 0 else None


def build(
    trip: RoundTrip, tag: str, *, cache_from: str | None = None, cache_to: str | None = None
) -> tuple[float, list[str]]:
    """Build this run's CI image; (seconds, BuildKit's plain output)."""
    options = BuildOptions(tag=tag, context=trip.context, cache_from=cache_from, cache_to=cache_to)
    args = build_args(VARIANT, options)
    started, began = time.monotonic(), datetime.now(UTC)
    code, lines = engine.run_build(args, echo=io.StringIO())
    seconds = time.monotonic() - started
    trip.windows.append((began - CLOCK_SLACK, datetime.now(UTC) + CLOCK_SLACK))
    assert code == 0, failure_summary(tag, lines, code)
    return seconds, lines


def mark_runs(dockerfile: str, marker: str) -> str:
    """Every RUN instruction ends with `# marker` (after its last continuation line)."""
    out, in_run = [], False
    for line in dockerfile.splitlines():
        in_run = in_run or line.startswith("RUN ")
        if in_run and not line.rstrip().endswith("\\"):
            line, in_run = f"{line}  # {marker}", False
        out.append(line)
    return "\n".join(out) + "\n"


def make_context(destination: Path, marker: str) -> None:
    """What Dockerfile.ci builds from, with every RUN marked for this run."""
    inputs = [path.relative_to(ROOT).as_posix() for path in tiers.install_inputs(VARIANT)]
    for relative in (".dockerignore", "python-ai-service/app", *inputs):
        source, target = ROOT / relative, destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    dockerfile = VARIANT.dockerfile.read_text(encoding="utf-8")
    (destination / VARIANT.dockerfile.name).write_text(mark_runs(dockerfile, marker))


@dataclass(frozen=True)
class Record:
    """One BuildKit record, with what `buildx du --verbose` says beyond BuildCache's fields."""

    id: str
    type: str
    description: str
    created: datetime
    shared: bool


def records() -> list[Record]:
    found = []
    for block in engine.cli("buildx", "du", "--verbose").stdout.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "ID" in fields and "Created at" in fields:
            created = datetime.strptime(fields["Created at"][:19], "%Y-%m-%d %H:%M:%S")
            found.append(
                Record(
                    fields["ID"].rstrip("*"),
                    fields.get("Type", ""),
                    fields.get("Description", ""),
                    created.replace(tzinfo=UTC),
                    fields.get("Shared") == "true",
                )
            )
    return found


def made_by(trip: RoundTrip, record: Record) -> bool:
    """Whether this run's builds made the record.

    RUN records carry the run's marker. Two kinds carry nothing, yet are children of marked records
    (so nothing else can have made them) and must go too, or their parents cannot be pruned:
    WORKDIR and COPY results ("fileop target"), and what a cache import recreates from the pushed
    image's history (the Dockerfile's own line, e.g. "WORKDIR /app"). Those created while one of
    our builds ran, and shared with no image any more, are ours.
    """
    if trip.marker in record.description:
        return True
    during = any(start <= record.created <= end for start, end in trip.windows)
    if not during or record.shared or record.type != "regular":
        return False
    history = normalise_space(record.description.removesuffix("# buildkit"))
    return record.description == "fileop target" or history in trip.instructions


def forget(trip: RoundTrip, *references: str) -> None:
    """Remove these images and the build records this run made: no local trace of them left."""
    for reference in references:
        if found := image_id(reference):
            docker("rmi", "--force", found)
        assert image_id(reference) is None, f"{reference} is still on the engine"
    made = {record.id for record in records() if made_by(trip, record)}
    left = BuildCache().prune(made)
    trip.pruned_records |= made - left
    marked = {record.id for record in records() if trip.marker in record.description}
    assert not marked, f"build records of this run could not be pruned: {sorted(marked)}"


def cached_steps(lines: list[str]) -> dict[str, bool]:
    """{step: CACHED?} for the dependency steps of a plain BuildKit log: each tier's stage (its
    `install-tier.sh` RUNs) and its layer in the image (`COPY --from=<tier> /opt/venv`)."""
    titles: dict[str, str] = {}
    cached: set[str] = set()
    for line in lines:
        if match := re.match(r"^#(\d+) (\[.+)$", line):
            titles.setdefault(match[1], match[2])
        elif match := re.match(r"^#(\d+) CACHED$", line):
            cached.add(match[1])
    return {
        " ".join(title.split()[:5]): step in cached
        for step, title in titles.items()
        if TIER_LAYER.search(title) or "install-tier.sh" in title
    }


@pytest.fixture(scope="module")
def trip(local_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoundTrip]:
    """A build context unique to this run; everything the module creates is removed afterwards."""
    state = RoundTrip(secrets.token_hex(4), tmp_path_factory.mktemp("context"))
    make_context(state.context, state.marker)
    try:
        yield state
    finally:
        tags = [f"{IMAGE_NAME}:roundtrip-{state.run_id}", f"{IMAGE_NAME}:cache-{state.run_id}"]
        if state.pushed:
            tags.append(state.pushed.digest_reference)
        forget(state, *tags)
        REPORT.parent.mkdir(exist_ok=True)
        summary = {
            "timings_s": {name: round(value, 1) for name, value in state.timings.items()},
            "push": state.pushed.as_json() if state.pushed else None,
            "cache_build": state.cache_build,
            "pruned_build_records": sorted(state.pruned_records),
        }
        REPORT.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def pushed(trip: RoundTrip, local_registry: str) -> registry.PushResult:
    """The CI image, built cold with inline cache, pushed, then gone from the engine."""
    tag = f"{IMAGE_NAME}:roundtrip-{trip.run_id}"
    trip.revision = git("rev-parse", "HEAD")  # the label the build writes; HEAD may move on
    trip.timings["cold_build"], _ = build(trip, tag, cache_to="type=inline")
    started = time.monotonic()
    trip.pushed = registry.push(VARIANT, local_registry, image=tag, tag=f"rt-{trip.run_id}")
    trip.timings["push"] = time.monotonic() - started
    forget(trip, tag)
    return trip.pushed


def test_push_names_the_digest_and_the_compressed_bytes(pushed: registry.PushResult) -> None:
    assert re.fullmatch(
        r"127\.0\.0\.1:\d+/python-ai-service@sha256:[0-9a-f]{64}", pushed.digest_reference
    )
    manifest = registry.manifest(pushed.digest_reference)
    assert pushed.pushed_bytes == sum(layer["size"] for layer in manifest["layers"]) > 10_000_000
    # The push's own tag is not left on the engine, and the image itself is gone.
    assert image_id(pushed.reference) is None
    assert image_id(pushed.image) is None


def test_a_build_reuses_the_registry_cache(trip: RoundTrip, pushed: registry.PushResult) -> None:
    """No local record can serve the install steps: only the registry's inline cache."""
    tag = f"{IMAGE_NAME}:cache-{trip.run_id}"
    seconds, lines = build(trip, tag, cache_from=f"type=registry,ref={pushed.reference}")
    trip.timings["build_from_registry_cache"] = seconds
    steps = cached_steps(lines)
    trip.cache_build = {"dependency_steps": steps, "seconds": round(seconds, 1)}
    forget(trip, tag)
    layers = [step for step in steps if TIER_LAYER.search(step)]
    assert layers, f"no tier layer in the build output: did the Dockerfile change? {steps}"
    assert all(steps.values()), f"dependency steps rebuilt despite the registry cache: {steps}"
    assert any(f"importing cache manifest from {pushed.reference}" in line for line in lines)
    assert seconds < trip.timings["cold_build"], trip.timings


def test_pulled_by_digest_the_image_passes_its_contract(
    trip: RoundTrip, pushed: registry.PushResult
) -> None:
    assert image_id(pushed.digest_reference) is None, "the image is still local: nothing to prove"
    started = time.monotonic()
    # The contract proper: the load test is the CI image session's, not this round trip's.
    command = contract.pytest_args(
        VARIANT.name, pushed.digest_reference, f"--revision={trip.revision}", "-m", "not abuse"
    )
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    trip.timings["pull_and_contract"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert image_id(pushed.digest_reference), "the contract ran without pulling the image"


def test_the_pulled_image_s_sbom_is_its_lock(pushed: registry.PushResult) -> None:
    """The SBOM of the bytes the registry holds lists exactly requirements-ci.lock, with purls."""
    if image_id(pushed.digest_reference) is None:
        assert docker("pull", pushed.digest_reference).returncode == 0
    document = sbom.image_bom(engine.client(), VARIANT, pushed.digest_reference)
    sbom.check_against_lock(document, locked_versions(VARIANT.lock), VARIANT.lock.name)
    purls = {component["purl"] for component in document["components"]}
    assert all(purl.startswith("pkg:pypi/") for purl in purls)
    assert len(purls) >= len(locked_versions(VARIANT.lock))

"""The registry round trip and a registry cache shared between machines, on both image stores.

For each image store, three private engines stand for three machines (service_images/
private_engine.py), so nothing here touches the machine's own engine or is left on it:

- the builder (that store): builds the CI image cold, exports its build cache to the loopback
  registry (`--cache-to type=registry,...,mode=max`; the classic store exports none on the docker
  driver, so there the cache is the image's own, `type=inline`), and pushes the image;
- a clean engine (containerd store, empty, no build cache): builds with `--cache-from` and must
  take every dependency step from the registry (BuildKit says CACHED), faster than the cold build:
  this is how N runners share work;
- a node (that store, empty): pulls the image by digest and runs the CI contract on it, as
  `nox -s ci_image -- --image HOST/REPO@sha256:...` does, then its SBOM against the lock.

Timings go to reports/registry-roundtrip-<store>.json.

    pytest tests/build/test_registry.py      # root, dockerd, docker-registry; ~4 min on 2 cores
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from service_images import contract, engine, private_engine, registry, sbom
from service_images.build import BuildOptions, failure_summary, git, prepare
from service_images.lockfile import locked_versions
from service_images.private_engine import PrivateEngine
from service_images.variants import DEFAULT_BASE_IMAGE, IMAGE_NAME, ROOT, get_variant

VARIANT = get_variant("ci")
TIER_LAYER = re.compile(r"COPY --from=([a-z-]+) /opt/venv")  # one layer per tier of the lock


@dataclass
class RoundTrip:
    """What one store's tests share, and what they measured."""

    store: str
    registry: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    revision: str = field(default_factory=lambda: git("rev-parse", "HEAD"))
    timings: dict[str, float] = field(default_factory=dict)
    pushed: registry.PushResult | None = None
    cache_build: dict[str, object] = field(default_factory=dict)

    @property
    def cache_ref(self) -> str:
        return f"{registry.repository(self.registry)}:buildcache-{self.run_id}"


def build(
    on: PrivateEngine, tag: str, *, cache_from: str | None = None, cache_to: str | None = None
) -> tuple[float, list[str]]:
    """Build the CI image on a private engine; (seconds, BuildKit's plain output)."""
    with on.activated():
        args = prepare(
            VARIANT, BuildOptions(tag=tag, cache_from=cache_from, cache_to=cache_to)
        ).argv()
        started = time.monotonic()
        code, lines = engine.run_build(args, echo=io.StringIO())
    assert code == 0, failure_summary(tag, lines, code)
    return time.monotonic() - started, lines


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


@pytest.fixture(scope="module", params=private_engine.STORES)
def trip(request: pytest.FixtureRequest, local_registry: str) -> Iterator[RoundTrip]:
    state = RoundTrip(request.param, local_registry)
    try:
        yield state
    finally:
        report = ROOT / "reports" / f"registry-roundtrip-{state.store}.json"
        report.parent.mkdir(exist_ok=True)
        summary = {
            "store": state.store,
            "timings_s": {name: round(value, 1) for name, value in state.timings.items()},
            "push": state.pushed.as_json() if state.pushed else None,
            "cache_build": state.cache_build,
        }
        report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def pushed(trip: RoundTrip) -> registry.PushResult:
    """The CI image, built cold on the store's builder engine, its cache exported, pushed."""
    cache_to = f"type=registry,ref={trip.cache_ref},mode=max"
    if trip.store != "containerd":
        cache_to = "type=inline"  # the classic store exports no other cache on the docker driver
    with private_engine.running(trip.store) as builder:
        builder.load(DEFAULT_BASE_IMAGE)
        tag = f"{IMAGE_NAME}:roundtrip-{trip.run_id}"
        trip.timings["cold_build"], _ = build(builder, tag, cache_to=cache_to)
        with builder.activated():
            started = time.monotonic()
            trip.pushed = registry.push(VARIANT, trip.registry, image=tag, tag=f"rt-{trip.run_id}")
            trip.timings["push"] = time.monotonic() - started
            tags = engine.client().images.get(tag).tags
    assert tags == [tag], "the push's own tag is left on the engine"
    return trip.pushed


def test_push_names_the_digest_and_the_compressed_bytes(pushed: registry.PushResult) -> None:
    assert re.fullmatch(
        r"127\.0\.0\.1:\d+/python-ai-service@sha256:[0-9a-f]{64}", pushed.digest_reference
    )
    (image,) = pushed.images
    assert image.platform == "linux/amd64"
    manifest = registry.raw_manifest(image.digest_reference)
    assert pushed.pushed_bytes == sum(layer["size"] for layer in manifest["layers"]) > 10_000_000


def test_a_clean_engine_builds_from_the_registry_cache(
    trip: RoundTrip, pushed: registry.PushResult
) -> None:
    """No local record can serve the install steps: the engine never built anything."""
    source = trip.cache_ref if trip.store == "containerd" else pushed.reference
    cache_from = f"type=registry,ref={source}"
    with private_engine.running("containerd") as clean:
        clean.load(DEFAULT_BASE_IMAGE)
        seconds, lines = build(clean, f"{IMAGE_NAME}:cache-{trip.run_id}", cache_from=cache_from)
    trip.timings["build_from_registry_cache"] = seconds
    steps = cached_steps(lines)
    trip.cache_build = {"dependency_steps": steps, "seconds": round(seconds, 1)}
    layers = [step for step in steps if TIER_LAYER.search(step)]
    assert layers, f"no tier layer in the build output: did the Dockerfile change? {steps}"
    assert all(steps.values()), f"dependency steps rebuilt despite the registry cache: {steps}"
    assert any("importing cache manifest from" in line for line in lines)


def test_pulled_by_digest_on_a_new_node_the_image_passes_its_contract(
    trip: RoundTrip, pushed: registry.PushResult
) -> None:
    with private_engine.running(trip.store) as node:
        started = time.monotonic()
        # The contract proper: the load test is the CI image session's, not this round trip's.
        command = contract.pytest_args(
            VARIANT.name, pushed.digest_reference, f"--revision={trip.revision}", "-m", "not abuse"
        )
        done = subprocess.run(
            [sys.executable, *command],
            cwd=ROOT,
            env={**os.environ, **node.env()},
            capture_output=True,
            text=True,
            timeout=900,
        )
        trip.timings["pull_and_contract"] = time.monotonic() - started
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        with node.activated():
            sdk = engine.client()
            assert engine.image_exists(sdk, pushed.digest_reference), "the contract pulled nothing"
            # The SBOM of the bytes the registry holds lists exactly the lock, with purls.
            document = sbom.image_bom(sdk, VARIANT, pushed.digest_reference)
    sbom.check_against_lock(document, locked_versions(VARIANT.lock), VARIANT.lock.name)
    purls = {component["purl"] for component in document["components"]}
    assert all(purl.startswith("pkg:pypi/") for purl in purls)
    assert len(purls) >= len(locked_versions(VARIANT.lock))

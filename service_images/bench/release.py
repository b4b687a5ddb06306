"""The release path after the build, as a node meets it: push to a registry, then on a clean
engine (an empty image store, as a new node has) pull by digest and start until /health answers.
And how runners share work: a build cache exported to that registry, then a clean engine's build
from it."""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from service_images import engine, private_engine, registry
from service_images.bench.images import measure_start, median
from service_images.bench.memory import MB
from service_images.build import BuildOptions, build_image
from service_images.errors import PushFailed
from service_images.variants import Variant

PULL_TIMEOUT_S = 3600.0
PULL_SAMPLES = 3
"""Clean engines per image, each pulling and starting it once: one pull of the CI image took
4.3 s in one run and 13.9 s in the next."""


@dataclass(frozen=True)
class Release:
    push_s: float
    pushed_mb: float
    """The compressed layers and configs the registry received."""
    pull_s: float
    """The median pull on a clean engine."""
    node_start_s: float | None
    """A cold node: pull, start, /health answers; the median (None: one never answered)."""
    problem: str | None = None


def push_pull_start(variant: Variant, image: str, address: str, tag: str, log: IO[str]) -> Release:
    """Push `image` to the registry at `address` as `tag`; then, PULL_SAMPLES times, pull it by
    digest on a clean engine of the containerd store and start it there."""
    with contextlib.redirect_stdout(log):
        pushed = registry.push(variant, address, image=image, tag=tag)
    pulls: list[float] = []
    node_starts: list[float | None] = []
    problems: list[str] = []
    for _ in range(PULL_SAMPLES):
        pull_s, health_s, problem = pull_and_start(pushed.digest_reference)
        pulls.append(pull_s)
        node_starts.append(None if health_s is None else pull_s + health_s)
        problems += [problem] if problem else []
    return Release(
        pushed.seconds,
        pushed.pushed_bytes / MB,
        statistics.median(pulls),
        median(node_starts),
        problems[0] if problems else None,
    )


def pull_and_start(reference: str) -> tuple[float, float | None, str | None]:
    """On a new clean engine: the pull's seconds, then the start's to /health (and its problem)."""
    with private_engine.running("containerd") as node, node.activated():
        started = time.monotonic()
        pulled = engine.cli("pull", "--quiet", reference, timeout=PULL_TIMEOUT_S)
        pull_s = time.monotonic() - started
        if pulled.returncode != 0:
            raise PushFailed(
                f"a clean engine could not pull {reference}: {pulled.stderr.strip()[-300:]}"
            )
        health_s, _, problem = measure_start(engine.client(), reference, False)
    return pull_s, health_s, problem


@dataclass(frozen=True)
class CachedBuild:
    export_s: float
    """Our engine: the build (every step cached) and the export of its cache to the registry."""
    build_s: float
    """A clean engine (empty store, no build cache): the build from that cache."""
    pulled_mb: float
    """What the clean engine's content store grew by in that build: the cache layers it pulled."""


def build_from_registry_cache(
    variant: Variant, options: BuildOptions, address: str, log: IO[str]
) -> CachedBuild:
    """Export the build cache of `options` to the registry at `address` (mode=max, as the
    workflows do), then build the same on a clean engine of the containerd store from it."""
    ref = f"{registry.repository(address)}:buildcache-{variant.name}"
    with contextlib.redirect_stdout(log):
        export_s = build_image(
            variant, replace(options, cache_to=f"type=registry,ref={ref},mode=max")
        ).seconds
    with private_engine.running("containerd") as node:
        node.load(options.base_image)
        content = node.root / "data" / "containerd" / "daemon" / "io.containerd.content.v1.content"
        stored = _bytes_under(content)
        with node.activated(), contextlib.redirect_stdout(log):
            from_cache = replace(options, cache_from=f"type=registry,ref={ref}")
            build_s = build_image(variant, from_cache).seconds
        pulled = _bytes_under(content) - stored
    return CachedBuild(export_s, build_s, pulled / MB)


def _bytes_under(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())

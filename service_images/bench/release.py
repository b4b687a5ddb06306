"""The release path after the build, as a node meets it: push to a registry, then on a clean
engine (an empty image store, as a new node has) pull by digest and start until /health answers."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import IO

from service_images import engine, private_engine, registry
from service_images.bench.images import measure_start
from service_images.bench.memory import MB
from service_images.errors import PushFailed
from service_images.variants import Variant

PULL_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Release:
    push_s: float
    pushed_mb: float
    """The compressed layers and configs the registry received."""
    pull_s: float
    health_s: float | None
    """Start on the clean node to /health answering (None: it never answered)."""
    problem: str | None = None

    @property
    def node_start_s(self) -> float | None:
        """A cold node: pull, start, /health answers."""
        return None if self.health_s is None else self.pull_s + self.health_s


def push_pull_start(variant: Variant, image: str, address: str, tag: str, log: IO[str]) -> Release:
    """Push `image` to the registry at `address` as `tag`; pull it by digest on a clean engine of
    the containerd store and start it there."""
    with contextlib.redirect_stdout(log):
        pushed = registry.push(variant, address, image=image, tag=tag)
    with private_engine.running("containerd") as node, node.activated():
        started = time.monotonic()
        pulled = engine.cli("pull", "--quiet", pushed.digest_reference, timeout=PULL_TIMEOUT_S)
        pull_s = time.monotonic() - started
        if pulled.returncode != 0:
            raise PushFailed(f"a clean engine could not pull {pushed.digest_reference}: "
                             f"{pulled.stderr.strip()[-300:]}")  # fmt: skip
        health_s, _, problem = measure_start(engine.client(), pushed.digest_reference, False)
    return Release(pushed.seconds, pushed.pushed_bytes / MB, pull_s, health_s, problem)

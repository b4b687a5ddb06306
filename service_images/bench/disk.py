"""The engine's disk during a bench: the most the run took of it, and in which step.

A full bench on the containerd store once filled a 79 GB disk, and nothing said where: this
samples the free space where the engine keeps its data while the run goes on, so a finished run,
a failed one and an interrupted one alike say how much they took and during what.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from service_images.bench.sampling import Sampling

SAMPLE_INTERVAL_S = 1.0
GB = 1e9


class DiskWatch(Sampling):
    """Samples the free space under ``root`` in a thread while the ``with`` block runs; keeps
    the least, and what ``current_step()`` said then. No root (an engine elsewhere): no samples."""

    def __init__(
        self,
        root: Path | None,
        current_step: Callable[[], str],
        interval: float = SAMPLE_INTERVAL_S,
    ) -> None:
        super().__init__("bench-disk", interval, enabled=root is not None)
        self.root, self.current_step = root, current_step
        self.at_start: int | None = None
        self.least: int | None = None
        self.step = ""

    def sample(self) -> None:
        assert self.root is not None
        free = shutil.disk_usage(self.root).free
        if self.at_start is None or self.least is None:  # the reading on entry, before any step
            self.at_start = self.least = free
        elif free < self.least:
            self.least, self.step = free, self.current_step()

    def describe(self) -> str | None:
        """What the run took at most, and when; None if nothing was watched."""
        if self.at_start is None or self.least is None:
            return None
        taken = (self.at_start - self.least) / GB
        during = f", during “{self.step}”" if self.step else ""
        return (
            f"disk: the run took at most {taken:.1f} GB of the {self.at_start / GB:.1f} GB free "
            f"at its start, on the file system of {self.root}{during}."
        )

"""Issue 12: free heap memory goes back to the system; long-lived objects are exempt from GC."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import anyio
import pytest

from app import main
from app.api import deps
from app.api.deps import CPUWork

from .conftest import ClientFactory
from .helpers import make_settings


def test_the_last_job_of_a_busy_spell_releases_the_free_heap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    monkeypatch.setattr(deps, "release_free_heap", lambda: log.append("release"))
    work = CPUWork(anyio.CapacityLimiter(2))
    started, finish = threading.Event(), threading.Event()

    def long_job() -> None:
        started.set()
        finish.wait(10)
        log.append("long")

    async def main() -> None:
        async with anyio.create_task_group() as jobs:
            jobs.start_soon(work.run, long_job)
            await anyio.to_thread.run_sync(started.wait, 10)
            await work.run(log.append, "short")  # ends while the long one still runs
            finish.set()

    anyio.run(main)
    assert log == ["short", "long", "release"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_heap_returns_freed_memory_to_the_system() -> None:
    """In a process of its own: 100 of 200 MiB of 64 KiB blocks freed, then given back."""
    script = textwrap.dedent(
        """
        import re
        from app.core.memory import release_free_heap

        def rss_mib():
            status = open("/proc/self/status").read()
            return int(re.search(r"VmRSS:\\s+(\\d+)", status)[1]) / 1024

        blocks = [bytearray(64 * 1024) for _ in range(3200)]
        del blocks[1::2]  # every other block: free memory between blocks still in use
        before = rss_mib()
        release_free_heap()
        print(before, rss_mib())
        """
    )
    # The image's mmap threshold, and no trimming of the heap's top by glibc itself.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    }
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    before, after = map(float, output.split())
    assert after < before - 50, f"RSS {before:.0f} MiB before malloc_trim, {after:.0f} after"


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """No object exempt from the garbage collector, before and after."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def warm_up_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "signal-model-warm-up"]


@pytest.mark.usefixtures("unfrozen")
def test_the_warm_up_exempts_what_it_loaded_from_gc(client_factory: ClientFactory) -> None:
    client_factory().get("/health")  # the first answer starts the warm-up thread
    for thread in warm_up_threads():
        thread.join(120)
    assert gc.get_freeze_count() > 0


def test_the_warm_up_starts_after_the_first_answer_only(
    client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in the lifespan, which runs before uvicorn binds: it would slow the first /health."""
    started: list[int] = []
    monkeypatch.setattr(main, "_start_warm_up", started.append)
    client = client_factory(make_settings(SIGNAL_SEED=7))  # the lifespan has run
    assert started == []
    assert client.get("/health").status_code == 200
    assert client.get("/health").status_code == 200
    assert started == [7]

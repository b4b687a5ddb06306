"""Scratch directories in the system's temp directory that a killed process cannot leave behind.

A `with` block removes what it made on the way out, Ctrl-C and SIGTERM included (cli.set_up);
SIGKILL, the OOM killer or a power cut skip that, and a private engine's dockerd or a registry
started in its own session keeps running over gigabytes. So each directory names its owner (pid
and start time, as pytest's numbered directories do: a reused pid is another process), and the
next directory made with the same prefix first removes those whose owner is gone, after `reap`
has stopped what ran there. A directory whose owner lives (another run, another checkout) is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

OWNER = ".owner"
STOP_DEADLINE_S = 30


def _started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot); None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    state, started = fields[0], fields[19]  # fields 3 and 22, counted after the command's name
    return None if state in "ZX" else started


def alive(pid: int) -> bool:
    """Process `pid` runs (a zombie does not: PID 1 of a container may never reap it)."""
    return _started(pid) is not None


def _orphaned(directory: Path) -> bool:
    try:
        pid, started = (directory / OWNER).read_text().split()
    except (OSError, ValueError):
        return False  # no owner yet (being made) or none of ours
    return _started(int(pid)) != started


@contextlib.contextmanager
def directory(prefix: str, reap: Callable[[Path], None] = lambda path: None) -> Iterator[Path]:
    """A new directory `<tmp>/<prefix>*` for the block, removed after it; orphans swept first."""
    for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        if stale.is_dir() and _orphaned(stale):
            reap(stale)
            _remove(stale)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        (path / OWNER).write_text(f"{os.getpid()} {_started(os.getpid())}")
        yield path
    finally:
        _remove(path)


def _remove(path: Path) -> None:
    """All of `path`, its owner last: what cannot go yet (a busy mount) is swept another time."""
    for child in path.iterdir():
        if child.name == OWNER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        if [child.name for child in path.iterdir()] == [OWNER]:
            (path / OWNER).unlink()
        path.rmdir()


def stop_recorded(pid_file: Path, mark: str) -> None:
    """Stop the process whose pid `pid_file` holds, if its command line contains `mark` (a pid
    the system gave to another process since is left alone): SIGTERM, then SIGKILL."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return
    if mark not in command:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)

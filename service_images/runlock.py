"""One run of a command per checkout at a time, where two would trample each other.

Two `nox -s ci_image` in one checkout share the session's virtual environment and its reports;
the second refuses in one line, naming the run that holds the checkout. The lock is an flock on a
file under `.build/locks/`, so it goes with the process that holds it, however that process ends.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from pathlib import Path
from typing import IO

from service_images.errors import Busy
from service_images.variants import ROOT

LOCKS = ROOT / ".build" / "locks"
_held: dict[str, IO[str]] = {}


def hold(command: str) -> None:
    """Hold `command`'s lock until this process ends or holds another's, or Busy naming who holds
    it. One nox process runs its sessions one after another: starting one means the one before
    has ended, and its lock goes (a later session may run that one again, nested)."""
    if command in _held:
        return
    for handle in _held.values():
        handle.close()
    _held.clear()
    LOCKS.mkdir(parents=True, exist_ok=True)
    path = LOCKS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", command).strip("-") + ".lock")
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        if (found := re.match(r"pid (\d+)", holder)) and int(found[1]) in ancestors():
            return  # run from inside the run that holds it (the README smoke test's own session)
        raise Busy(
            f"`{command}` is already running in this checkout ({holder}): wait for it to end, or "
            "run it from another clone."
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
    handle.flush()
    _held[command] = handle


def ancestors() -> set[int]:
    """The pids of this process's parents, up to init (from /proc; none where it is missing)."""
    found, pid = set(), os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the ppid
        found.add(pid)
    return found

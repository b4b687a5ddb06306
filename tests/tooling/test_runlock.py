"""One run of a command per checkout: a second refuses in one line naming the first."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from service_images import runlock
from service_images.errors import Busy

HOLD = """
import sys, time
from service_images import runlock
for command in sys.argv[1:]:  # one after another, as nox's sessions
    runlock.hold(command)
print("holding", flush=True)
time.sleep(60)
"""


def test_a_second_run_refuses_while_the_first_holds_the_checkout() -> None:
    command = f"nox -s test-runlock-{time.monotonic_ns()}"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, command], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "holding"
        with pytest.raises(Busy, match=rf"`{command}` is already running .*pid {first.pid}"):
            runlock.hold(command)
    finally:
        first.kill()
        first.wait()
    runlock.hold(command)  # the lock went with the process that held it


def hold_elsewhere(command: str) -> int:
    """Exit code of a child process taking `command`'s lock."""
    code = (
        "import sys; from service_images import cli, runlock\n"
        "with cli.user_errors(): runlock.hold(sys.argv[1])"
    )
    return subprocess.run([sys.executable, "-c", code, command], check=False).returncode


def test_the_next_session_of_one_run_frees_the_one_before() -> None:
    """`nox` runs its sessions in one process: a later session may run an earlier one, nested."""
    before, after = (f"nox -s test-runlock-{name}-{time.monotonic_ns()}" for name in "ab")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, before, after], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        runlock.hold(before)
        with pytest.raises(Busy):
            runlock.hold(after)
    finally:
        holder.kill()
        holder.wait()


def test_a_run_started_from_inside_the_holder_is_part_of_it() -> None:
    """`nox -s readme_commands` runs the README's `nox -s readme_commands -- ...`, nested."""
    command = f"nox -s test-runlock-nested-{time.monotonic_ns()}"
    runlock.hold(command)
    assert hold_elsewhere(command) == 0

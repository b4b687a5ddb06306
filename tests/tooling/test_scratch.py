"""Scratch directories: gone after the block, and swept by the next one when a SIGKILL skipped
that; never while their owner lives."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from service_images import scratch

PREFIX = "service-images-test-"
KILLED_INSIDE = """
import os, signal, sys
from service_images import scratch
with scratch.directory(sys.argv[1]) as path:
    (path / "data").write_text("gigabytes")
    (path / "exec").mkdir()
    (path / "server.pid").write_text(sys.argv[2])
    print(path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture(autouse=True)
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def killed_inside_a_block(server_pid: int = 0) -> Path:
    ran = subprocess.run(
        [sys.executable, "-c", KILLED_INSIDE, PREFIX, str(server_pid)],
        capture_output=True,
        text=True,
        env={"TMPDIR": tempfile.gettempdir(), "PATH": "/usr/bin:/bin"},
        cwd=Path(scratch.__file__).parents[1],
        check=False,
    )
    assert ran.returncode == -9, ran.stderr
    left = Path(ran.stdout.strip())
    assert (left / "data").is_file(), "SIGKILL skipped the clean-up"
    return left


def test_the_directory_goes_with_its_block() -> None:
    with scratch.directory(PREFIX) as path:
        assert path.is_dir()
        assert path.name.startswith(PREFIX)
    assert not path.exists()


def test_a_killed_owners_directory_is_reaped_and_removed_by_the_next() -> None:
    left = killed_inside_a_block()
    reaped: list[Path] = []
    with scratch.directory(PREFIX, reap=reaped.append) as path:
        assert reaped == [left]
        assert not left.exists()
        assert path.exists()


def test_what_cannot_go_yet_keeps_its_owner_and_goes_with_a_later_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    left = killed_inside_a_block()
    with monkeypatch.context() as busy:
        busy.setattr(shutil, "rmtree", lambda path, ignore_errors=False: None)  # a busy mount
        with scratch.directory(PREFIX):
            assert (left / "exec").is_dir()
            assert (left / scratch.OWNER).is_file(), "nothing would ever sweep it again"
    with scratch.directory(PREFIX):
        assert not left.exists()


def test_a_living_owners_directory_is_left(temp_dir: Path) -> None:
    with scratch.directory(PREFIX) as first:
        with scratch.directory(PREFIX, reap=pytest.fail) as second:
            assert first.exists()
            assert second.exists()
        assert first.exists()
    other = temp_dir / f"{PREFIX}made-by-someone-else"
    other.mkdir()  # no owner file: not ours to judge
    with scratch.directory(PREFIX, reap=pytest.fail):
        pass
    assert other.exists()


def test_the_killed_owners_server_is_stopped_but_not_a_pid_reused_by_another() -> None:
    server = subprocess.Popen(["sleep", "600"])
    try:
        left = killed_inside_a_block(server.pid)
        scratch.stop_recorded(left / "server.pid", "python3 -m http.server")  # another program
        assert server.poll() is None
        scratch.stop_recorded(left / "server.pid", "sleep 600")
        assert server.wait(timeout=10) == -15
    finally:
        server.kill()
        server.wait()

"""`invoke clean` removes the files of builds killed outright, and only those."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from service_images.housekeeping import remove_stale_run_files


def test_only_the_files_of_gone_builds_are_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names no process now
    dead = [tmp_path / f"some-image:ci-{gone.pid}{suffix}" for suffix in (".iid", ".tar")]
    alive = tmp_path / f"some-image:ci-{os.getpid()}.json"
    for path in (*dead, alive):
        path.write_text("x")
    assert remove_stale_run_files(tmp_path) == 2
    assert list(tmp_path.iterdir()) == [alive]
    assert remove_stale_run_files(tmp_path / "absent") == 0

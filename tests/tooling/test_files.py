"""Files are written whole or not at all; a directory that cannot be written is one line."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_images.errors import WriteFailed
from service_images.files import ensure_writable, write_atomically


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """A directory nobody can write to, root included (a read-only mount; else its mode)."""
    directory.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)])
        if done.returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        try:
            yield directory
        finally:
            subprocess.run(["umount", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield directory
        finally:
            directory.chmod(0o755)


def test_a_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "push-ci.json"
    write_atomically(target, "first\n")
    write_atomically(target, b"second\n", mode=0o600)
    assert target.read_text() == "second\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [path.name for path in target.parent.iterdir()] == ["push-ci.json"], "no temp left"


def test_a_read_only_directory_is_one_line_before_any_work(tmp_path: Path) -> None:
    with read_only(tmp_path / "reports") as reports:
        with pytest.raises(WriteFailed, match=r"cannot write to .*reports: Read-only file system"):
            ensure_writable(reports)
        with pytest.raises(WriteFailed, match=r"cannot write .*push-ci.json: Read-only"):
            write_atomically(reports / "push-ci.json", "{}")
        assert list(reports.iterdir()) == []

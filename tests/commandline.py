"""Running the project's commands as a user would, and what a user-facing failure must look like."""

from __future__ import annotations

import os
import subprocess
import sys

from service_images.variants import ROOT


def run(
    tool: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m invoke|nox ARGS` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", tool, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run("invoke", *args, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exit `code`, no traceback, and one `error: ...` line on stderr naming every word."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]

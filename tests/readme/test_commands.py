"""Every command of README.md's table runs, as a newcomer runs it after the set-up command.

The commands come from service_images/commands.py (the README table is rendered from the same
list). Each runs in a shell from the repository root with the set-up's virtual environment first
on PATH (what `. .venv/bin/activate` does), and must exit with the code the list expects.

    .venv/bin/nox -s readme_commands        # after `bash scripts/bootstrap.sh`; a few minutes
"""

from __future__ import annotations

import os
import subprocess

import pytest

from service_images.commands import COMMANDS, Command
from service_images.variants import ROOT

VENV = ROOT / ".venv"
TIMEOUT_S = 1200


def newcomer_environment() -> dict[str, str]:
    """This shell's environment as the activated .venv sees it, without nox's own session."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("NOX_", "VIRTUAL_ENV", "PYTEST_"))
    }
    # Without the nox session's own bin directory, so `nox` and `invoke` are the set-up's.
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if "/.nox/" not in entry]
    env["PATH"] = os.pathsep.join([str(VENV / "bin"), *path])
    env["VIRTUAL_ENV"] = str(VENV)
    return env


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.run)
def test_readme_command_runs(command: Command) -> None:
    if not (VENV / "bin" / "python").exists():
        pytest.fail(f"{VENV} does not exist: run `bash scripts/bootstrap.sh` first (README).")
    line = command.smoke or command.run
    result = subprocess.run(
        line,
        shell=True,
        cwd=ROOT,
        env=newcomer_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == command.exit_code, (
        f"`{line}` exited {result.returncode}, expected {command.exit_code}:\n{output}"
    )
    assert "Traceback" not in result.stderr, f"`{line}` printed a traceback:\n{output}"

"""One exit code per condition, from every command that can meet it (README, "When something is
wrong"): each condition of the table runs through each of its commands, as a user runs them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from commandline import assert_one_line_error, run

from service_images import errors
from service_images.variants import ROOT, VARIANTS

REGISTRY = "127.0.0.1:5000"  # never reached: each command fails before it would push


@dataclass(frozen=True)
class Condition:
    name: str
    error: type[errors.ToolError]
    commands: tuple[tuple[str, ...], ...]
    env: dict[str, str] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    """What the one error line must name (pytest.exit's line, for the contract, is not checked)."""


def broken_requirements(tmp: Path) -> Path:
    """A copy of the requirement files whose CI lock is empty."""
    root = tmp / "broken"
    root.mkdir()
    for name in ("requirements.txt", "requirements-ci.txt", "requirements-build.txt"):
        shutil.copy(ROOT / name, root)
    for path in ROOT.glob("*.lock"):
        shutil.copy(path, root)
    for path in ROOT.glob("pylock.*.toml"):
        shutil.copy(path, root)
    (root / VARIANTS["ci"].lock.name).write_text("")
    return root


CONDITIONS = (
    Condition(
        "unknown-variant",
        errors.UnknownVariant,
        (
            ("invoke", "test-image", "--variant", "gpu"),
            ("invoke", "sbom", "--variant", "gpu"),
            ("invoke", "push", "--variant", "gpu", "--registry", REGISTRY),
            ("invoke", "bench", "--variant", "gpu"),
        ),
        words=("'gpu'", "ci, full"),
    ),
    Condition(
        "missing-image",
        errors.ImageMissing,
        (
            ("invoke", "test-image", "--image", "nope:absent"),
            ("invoke", "sbom", "--image", "nope:absent"),
            ("invoke", "push", "--image", "nope:absent", "--registry", REGISTRY),
            ("nox", "-s", "ci_image", "--", "--image", "nope:absent"),
        ),
        words=("nope:absent",),
    ),
    Condition(
        "ca-bundle-is-a-directory",
        errors.BadCABundle,
        (("invoke", "build-ci"), ("invoke", "build-full"), ("nox", "-s", "ci_image")),
        env={"SSL_CERT_FILE": "/tmp"},
        words=("/tmp", "SSL_CERT_FILE"),
    ),
    Condition(
        "engine-unreachable",
        errors.EngineUnreachable,
        (
            ("invoke", "build-ci"),
            ("invoke", "test-image"),
            ("invoke", "sbom"),
            ("invoke", "clean"),
            ("invoke", "push", "--registry", REGISTRY),
            ("nox", "-s", "ci_image"),
        ),
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        words=("DOCKER_HOST",),
    ),
    Condition(
        "bad-option",
        errors.BadOption,
        (
            ("invoke", "build-ci", "--progress", "fancy"),
            ("invoke", "push", "--registry", "127.0.0.1:"),
            ("nox", "-s", "ci_image", "--", "--no-such-pytest-flag"),
        ),
    ),
)
CASES = [
    pytest.param(condition, command, id=f"{condition.name}:{' '.join(command[:3])}")
    for condition in CONDITIONS
    for command in condition.commands
]


@pytest.mark.parametrize(("condition", "command"), CASES)
def test_each_condition_has_one_code_from_every_command(
    condition: Condition, command: tuple[str, ...]
) -> None:
    result = run(command[0], *command[1:], env=condition.env)
    contract = command[:2] == ("invoke", "test-image") or "ci_image" in command
    if contract and condition.error in (errors.ImageMissing, errors.EngineUnreachable):
        # The contract's pytest says it (pytest.exit), with the same code.
        assert result.returncode == condition.error.exit_code, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        return
    assert_one_line_error(result, condition.error.exit_code, *condition.words)


@pytest.mark.parametrize(
    "entry_point",
    [("service_images.requirements",), ("nox", "-s", "requirements", "--")],
    ids=["module", "nox"],
)
def test_a_broken_lock_is_a_requirements_problem_from_every_entry_point(
    entry_point: tuple[str, ...], tmp_path: Path
) -> None:
    root = broken_requirements(tmp_path)
    command = [sys.executable, "-m", *entry_point, "--root", str(root)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == errors.RequirementsProblem.exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "requirements-ci.lock" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command",
    [("invoke", "build-ci", "--no-cache"), ("nox", "-s", "ci_image")],
    ids=["invoke", "nox"],
)
def test_ctrl_c_halfway_is_130_and_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it, while BuildKit builds."""
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("==> building"):
            break
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == errors.Interrupted.exit_code, out[-2000:] + err
    assert "Traceback" not in out + err
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        "error: interrupted."
    ]


def test_push_prints_the_digest_before_a_report_it_cannot_write(
    local_registry: str, tmp_path: Path
) -> None:
    """A read-only report directory: the push happens, its digest is printed, then one line."""
    reports = tmp_path / "reports"
    reports.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(reports)]
    ).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        result = run(
            "invoke", "push", "--image", "python:3.11-slim", "--registry", local_registry,
            "--tag", "report-test", "--output", str(reports / "push.json"),
        )  # fmt: skip
    finally:
        subprocess.run(["umount", str(reports)], check=True)
    assert_one_line_error(result, errors.WriteFailed.exit_code, "push.json", "Read-only")
    assert f"==> pushed {local_registry}/python-ai-service@sha256:" in result.stdout

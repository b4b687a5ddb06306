"""Bad input gets one clear line, its own exit code, and no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service_images import engine
from service_images.base_image import image_size_mb
from service_images.build import BuildOptions, build_command, build_image, failure_summary
from service_images.errors import BuildFailed, MissingFile, ToolError
from service_images.variants import (
    BASE_IMAGE_BUDGET_MB,
    DEFAULT_BASE_IMAGE,
    PROJECT_LABEL,
    ROOT,
    VARIANTS,
)


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def engine_up() -> bool:
    try:
        engine.client().close()
    except ToolError:
        return False
    return True


needs_docker = pytest.mark.skipif(not engine_up(), reason="no Docker engine answers here")


def test_unknown_variant() -> None:
    assert_one_line_error(invoke("test-image", "--variant", "gpu"), 2, "'gpu'", "ci, full")


def test_ca_bundle_that_is_not_a_file(tmp_path: Path) -> None:
    result = invoke("build-ci", "--ca-bundle", str(tmp_path / "missing.pem"))
    assert_one_line_error(result, 7, "missing.pem", "--ca-bundle")


def test_ca_bundle_from_a_variable_that_points_nowhere(tmp_path: Path) -> None:
    result = invoke("build-ci", env={"SSL_CERT_FILE": str(tmp_path / "gone.pem")})
    assert_one_line_error(result, 7, "gone.pem", "SSL_CERT_FILE")


def test_engine_unreachable(tmp_path: Path) -> None:
    result = invoke("build-ci", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert_one_line_error(result, 3, "Docker engine", "DOCKER_HOST")


def test_buildkit_missing(tmp_path: Path) -> None:
    # A docker client of today without the buildx plugin.
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = version ] && { echo 28.2.2; exit 0; }\n'
        'echo "unknown: $1" >&2; exit 1\n'
    )
    fake.chmod(0o755)
    result = invoke("build-ci", env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert_one_line_error(result, 4, "buildx")


def test_missing_lock_file(tmp_path: Path) -> None:
    shutil.copy(VARIANTS["ci"].dockerfile, tmp_path)
    with pytest.raises(MissingFile) as error:
        build_command(VARIANTS["ci"], BuildOptions(context=tmp_path))
    assert error.value.exit_code == 5
    assert "requirements-ci.lock is missing" in error.value.message
    assert "invoke lock" in error.value.message


def test_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match=r"Dockerfile\.ci is missing"):
        build_command(VARIANTS["ci"], BuildOptions(context=tmp_path))


@needs_docker
def test_base_image_missing() -> None:
    result = invoke("build-ci", "--base-image", "python-ai-service/no-such-base:0")
    assert_one_line_error(result, 6, "no-such-base", "invoke base-image")


@needs_docker
def test_doctor_blocks_without_an_engine(tmp_path: Path) -> None:
    result = invoke("doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.returncode == 12, result.stdout + result.stderr
    assert "BLOCKS" in result.stdout
    assert "Docker engine" in result.stderr


@needs_docker
def test_failed_build_names_the_failing_step(tmp_path: Path) -> None:
    """A lock whose hash is wrong fails the install step; the error names that step."""
    variant = VARIANTS["ci"]
    (tmp_path / "python-ai-service").mkdir()
    shutil.copytree(ROOT / "python-ai-service" / "app", tmp_path / "python-ai-service" / "app")
    shutil.copy(variant.dockerfile, tmp_path)
    shutil.copy(ROOT / ".dockerignore", tmp_path)
    lock = variant.lock.read_text()
    (tmp_path / variant.lock.name).write_text(lock.replace("--hash=sha256:", "--hash=sha256:0", 1))
    tag = "python-ai-service:test-failed-build"
    with pytest.raises(BuildFailed) as error:
        build_image(variant, BuildOptions(context=tmp_path, tag=tag))
    assert error.value.exit_code == 8
    assert "failed at [" in error.value.message
    assert "uv pip install" in error.value.message


def test_failure_summary_keeps_the_failing_steps_last_lines() -> None:
    output = [
        "#5 [uv 2/2] RUN pip install uv",
        "#5 1.20 Collecting uv",
        "#5 DONE 3.0s",
        "#7 [stage-1 4/6] RUN uv pip install -r /tmp/requirements.lock",
        *[f"#7 0.{i}1 line {i}" for i in range(30)],
        "#7 2.10 error: Hash mismatch for `aiofiles==25.1.0`",
        '#7 ERROR: process "/bin/sh -c uv pip install" did not complete successfully: exit code: 1',
        "ERROR: failed to solve: exit code: 1",
    ]
    summary = failure_summary("img:ci", output, 1)
    assert summary.startswith("build of img:ci failed at [stage-1 4/6] RUN uv pip install")
    assert "Hash mismatch" in summary
    assert "line 29" in summary
    assert "line 10" not in summary  # only the last lines
    assert "Collecting uv" not in summary  # not another step's


def test_failure_summary_without_buildkit_steps() -> None:
    summary = failure_summary("img:ci", ["", "ERROR: failed to dial the builder", ""], 1)
    assert summary == "build of img:ci failed (exit 1): ERROR: failed to dial the builder"


@needs_docker
def test_bootstrapped_base_image_within_budget() -> None:
    sdk = engine.client()
    if not engine.image_exists(sdk, DEFAULT_BASE_IMAGE):
        pytest.skip(f"no {DEFAULT_BASE_IMAGE} here")
    if PROJECT_LABEL not in (sdk.images.get(DEFAULT_BASE_IMAGE).labels or {}):
        pytest.skip(f"{DEFAULT_BASE_IMAGE} is the official image, not one `invoke base-image` made")
    assert image_size_mb(DEFAULT_BASE_IMAGE) <= BASE_IMAGE_BUDGET_MB

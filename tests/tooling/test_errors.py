"""Bad input gets one clear line, its own exit code, and no traceback."""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest
from commandline import assert_one_line_error, invoke, run

import service_images
from service_images import errors
from service_images.build import BuildOptions, failure_summary, prepare
from service_images.cli import user_errors
from service_images.errors import EXIT_CODES, MissingFile, ToolError
from service_images.variants import VARIANTS


def test_unknown_variant() -> None:
    assert_one_line_error(invoke("test-image", "--variant", "gpu"), 2, "'gpu'", "ci, full")


def test_exit_codes_are_one_table_of_distinct_codes() -> None:
    codes = [error.exit_code for error in EXIT_CODES]
    assert len(codes) == len(set(codes)), f"exit codes used twice: {sorted(codes)}"
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, ToolError)
    }
    assert defined == set(EXIT_CODES), f"not in EXIT_CODES: {defined - set(EXIT_CODES)}"


def subclasses(cls: type[ToolError]) -> set[type[ToolError]]:
    found = set(cls.__subclasses__())
    return found.union(*(subclasses(sub) for sub in found))


def test_every_tool_error_lives_in_the_table() -> None:
    for module in pkgutil.walk_packages(service_images.__path__, "service_images."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    strays = subclasses(ToolError) - set(EXIT_CODES)
    assert not strays, f"ToolErrors outside errors.EXIT_CODES: {sorted(map(str, strays))}"


@pytest.mark.parametrize(
    ("tool", "args"),
    [("invoke", ("build-ci",)), ("nox", ("--no-venv", "-s", "ci_image"))],
    ids=["invoke", "nox"],
)
def test_invoke_and_nox_exit_alike(tool: str, args: tuple[str, ...], tmp_path: Path) -> None:
    """The same failure exits with the same code and line from either entry point."""
    result = run(tool, *args, env={"SSL_CERT_FILE": str(tmp_path / "gone.pem")})
    assert_one_line_error(result, 7, "gone.pem", "SSL_CERT_FILE")


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
        prepare(VARIANTS["ci"], BuildOptions(context=tmp_path)).argv()
    assert error.value.exit_code == 5
    assert "requirements-ci.lock is missing" in error.value.message
    assert "invoke lock" in error.value.message


def test_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match=r"Dockerfile\.ci is missing"):
        prepare(VARIANTS["ci"], BuildOptions(context=tmp_path)).argv()


def test_doctor_blocks_without_an_engine(tmp_path: Path) -> None:
    result = invoke("doctor", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.returncode == 12, result.stdout + result.stderr
    assert "BLOCKS" in result.stdout
    assert "Docker engine" in result.stderr


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


def test_an_engine_error_is_one_line_and_its_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    """What the engine answers (the bench's `docker save` on a full disk, say): no traceback."""
    reason = "write /var/lib/docker/tmp/layer.tar: no space left on device"
    with pytest.raises(SystemExit) as exit_, user_errors():
        raise docker.errors.APIError("500 Server Error", explanation=reason)
    assert exit_.value.code == errors.EngineError.exit_code == 23
    assert capsys.readouterr().err == f"error: the Docker engine failed a request: {reason}\n"


def test_a_full_disk_is_one_line_and_its_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    """The bench's build log on a disk a full build had filled: no traceback."""
    with pytest.raises(SystemExit) as exit_, user_errors():
        raise OSError(errno.ENOSPC, "No space left on device", "reports/bench-build.log")
    assert exit_.value.code == errors.DiskShort.exit_code == 29
    assert capsys.readouterr().err == (
        "error: the disk filled up (reports/bench-build.log): free some (`docker system df`, "
        "`invoke clean`), then run it again.\n"
    )


def test_other_os_errors_are_not_called_a_full_disk() -> None:
    with pytest.raises(PermissionError), user_errors():
        raise PermissionError(errno.EACCES, "Permission denied", "reports")


def test_sigterm_cleans_up_as_ctrl_c_does(tmp_path: Path) -> None:
    """A cancelled CI job's SIGTERM: the `with` blocks on the way out run, then exit 130."""
    program = (
        "import os, signal, tempfile, time\n"
        "from service_images.cli import set_up, user_errors\n"
        "set_up()\n"
        f"with user_errors(), tempfile.TemporaryDirectory(dir={str(tmp_path)!r}):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert_one_line_error(done, errors.Interrupted.exit_code, "interrupted")
    assert not any(tmp_path.iterdir()), "the temporary directory was left behind"

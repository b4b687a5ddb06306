"""Adopting the suite for another service changes one file: a copy of the repository whose
project.py names another project (its service moved to match), regenerated as README says, names
the old project nowhere in the suite and passes the host tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from service_images import project
from service_images.variants import ROOT

NEW_NAME = "acme-pricing"
# Where the suite's own names live: none of these may name the old project once renamed.
SUITE = ("service_images", "tests/tooling", "tasks.py", "noxfile.py", "Dockerfile", "Dockerfile.ci",
         ".dockerignore", "pyproject.toml")  # fmt: skip
# Written about the pre-project write-up, or data that only looks like a name.
NOT_THE_SUITES_NAME = ("service_images/before/", "tests/tooling/fixtures/")


def tracked_copy(destination: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def committed(copy: Path) -> None:
    """The adopter's own repository: the build labels name its commit."""
    who = {f"GIT_{role}_{field}": value for role in ("AUTHOR", "COMMITTER")
           for field, value in (("NAME", "adopter"), ("EMAIL", "adopter@example.com"))}  # fmt: skip
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "adopted"]):
        subprocess.run(["git", *command], cwd=copy, env={**os.environ, **who}, check=True)


def renamed(copy: Path) -> Path:
    (copy / project.SERVICE_DIR).rename(copy / NEW_NAME)
    identity = copy / "service_images" / "project.py"
    text = identity.read_text(encoding="utf-8")
    for field in ("NAME", "SERVICE_DIR"):
        old = f'{field} = "{getattr(project, field)}"'
        assert old in text, f"project.py no longer reads {old}"
        text = text.replace(old, f'{field} = "{NEW_NAME}"')
    identity.write_text(text, encoding="utf-8")
    return copy


def leftovers(copy: Path) -> list[str]:
    found = []
    for top in SUITE:
        paths = [copy / top] if (copy / top).is_file() else sorted((copy / top).rglob("*"))
        for path in paths:
            relative = path.relative_to(copy).as_posix()
            if not path.is_file() or relative.startswith(NOT_THE_SUITES_NAME):
                continue
            if project.NAME in path.read_text(encoding="utf-8", errors="replace"):
                found.append(relative)
    return found


def test_a_renamed_copy_names_the_new_project_and_passes_the_host_tests(tmp_path: Path) -> None:
    copy = renamed(tracked_copy(tmp_path / "repository"))
    env = {**os.environ, "PYTHONPATH": str(copy)}  # the copy's suite, not this checkout's

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, check=False
        )

    for task in ("dockerfiles", "readme"):
        done = run("-m", "invoke", task)
        assert done.returncode == 0, done.stdout + done.stderr
    assert leftovers(copy) == [], "the old name outlives project.py"
    committed(copy)
    assert f"COPY {NEW_NAME}/app ./app" in (copy / "Dockerfile.ci").read_text(encoding="utf-8")
    tests = run(
        "-m", "pytest", "tests/tooling", "tests/service/test_config.py", "-q",
        "-p", "no:cacheprovider", "-m", "not docker",
        "--deselect", f"tests/tooling/{Path(__file__).name}",
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]

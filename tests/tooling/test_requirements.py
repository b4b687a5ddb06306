"""The requirements check: each failure mode on temporary copies, and the real files passing.

Every test that breaks something works on copies in tmp_path; the real files are only read. Nothing
here resolves, downloads or starts a process: staleness is the recorded digest against the inputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from service_images import debian_tools, lockfile, locks
from service_images.errors import RequirementsProblem
from service_images.lockfile import locked_versions
from service_images.platforms import get_platform, host_platform
from service_images.requirements import check, main, read_requirements
from service_images.variants import ROOT, VARIANTS, normalise

CI, FULL = VARIANTS["ci"], VARIANTS["full"]
FILES = (
    CI.requirements,
    CI.lock,
    FULL.requirements,
    FULL.lock,
    lockfile.wheels_file(CI),
    lockfile.wheels_file(FULL),
    locks.BUILD_REQUIREMENTS,
    locks.BUILD_LOCK,
    *(lock.path for lock in debian_tools.LOCKS),
)


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads files only: running uv (or anything else) here is a bug."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the requirements check started a process: {args!r}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of both requirement files and both locks."""
    for path in FILES:
        shutil.copyfile(path, tmp_path / path.relative_to(ROOT))
    return tmp_path


def problems(root: Path) -> str:
    with pytest.raises(RequirementsProblem) as caught:
        check(root)
    return caught.value.message


def direct_lines(path: Path) -> dict[str, int]:
    """`{normalised name: line number}` of a requirements file."""
    return {
        name: int(entry.location.rpartition(":")[2])
        for name, entry in read_requirements(path, []).items()
    }


def set_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def append(path: Path, text: str) -> int:
    """Add a line at the end; its line number."""
    lines = [*path.read_text().splitlines(), text]
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def set_locked_version(lock: Path, name: str, version: str) -> None:
    entry = re.compile(rf"^{re.escape(name)}==\S+", re.IGNORECASE | re.MULTILINE)
    text, count = entry.subn(f"{name}=={version}", lock.read_text())
    assert count == 1, f"{name} is not in {lock.name}"
    lock.write_text(text)


def shared_direct(root: Path) -> str:
    """A package both requirement files name."""
    shared = (
        direct_lines(root / CI.requirements.name).keys()
        & direct_lines(root / FULL.requirements.name).keys()
    )
    return sorted(shared)[0]


def shared_locked(root: Path) -> str:
    """A package both locks pin that neither requirement file names."""
    ci_lock, full_lock = (
        lockfile.read(root / CI.lock.name).entries,
        lockfile.read(root / FULL.lock.name).entries,
    )
    direct = (
        direct_lines(root / CI.requirements.name).keys()
        | direct_lines(root / FULL.requirements.name).keys()
    )
    return sorted(ci_lock.keys() & full_lock.keys() - direct)[0]


def test_real_files_pass() -> None:
    summary = check()
    assert summary.startswith("requirements: OK (")
    for variant in VARIANTS.values():
        direct = len(read_requirements(variant.requirements, []))
        locked = len(lockfile.read(variant.lock).entries)
        assert f"{direct} direct, {locked} locked for {variant.name}" in summary


def test_real_files_pass_from_main(capsys: pytest.CaptureFixture[str]) -> None:
    main([])
    assert capsys.readouterr().out.startswith("requirements: OK (")


def test_unchanged_copies_pass(root: Path) -> None:
    assert check(root).startswith("requirements: OK (")


@pytest.mark.parametrize("heavy", ["torch", "tensorflow", "torchvision", "torchaudio"])
def test_heavy_direct_requirement_in_ci(root: Path, heavy: str) -> None:
    pin = read_requirements(root / FULL.requirements.name, [])[heavy].requirement
    number = append(root / CI.requirements.name, str(pin))
    assert f"requirements-ci.txt:{number}: {heavy} is a heavy package" in problems(root)


@pytest.mark.parametrize(
    "distribution",
    ["triton", "nvidia-cublas-cu12", "NVIDIA_NCCL_CU12", "jaxlib", "tensorflow-io-gcs-filesystem"],
)
def test_heavy_package_pulled_into_ci_lock(root: Path, distribution: str) -> None:
    # A light requirement that pulls in a heavy one shows up only in the lock.
    append(
        root / CI.lock.name,
        f"{distribution}==1.0 \\\n    --hash=sha256:{'0' * 64}\n    # via torch",
    )
    expected = f"requirements-ci.lock: {normalise(distribution)}==1.0 (via torch) is a heavy"
    assert expected in problems(root)


def test_shared_package_differs_in_pin(root: Path) -> None:
    name = shared_direct(root)
    number = direct_lines(root / CI.requirements.name)[name]
    set_line(root / CI.requirements.name, number, f"{name}==0.0.1")
    message = problems(root)
    assert f"{name} differs in pin: requirements-ci.txt:{number} has {name}==0.0.1" in message


def test_shared_package_differs_in_extras(root: Path) -> None:
    name = shared_direct(root)
    ci = root / CI.requirements.name
    entry = read_requirements(ci, [])[name]
    # Drop the extras where there are some, add one where there are none.
    changed = f"{name}=={entry.pin}" if entry.requirement.extras else f"{name}[extra]=={entry.pin}"
    set_line(ci, direct_lines(ci)[name], changed)
    assert f"{name} differs in extras" in problems(root)


@pytest.mark.parametrize(
    "specifier",
    [">={version}", "~={version}", "==0.*", "", ">={version},<99", "===0.1", "<={version}"],
)
def test_direct_requirement_not_pinned_exactly(root: Path, specifier: str) -> None:
    full = root / FULL.requirements.name
    name = shared_direct(root)
    version = read_requirements(full, [])[name].pin
    number = direct_lines(full)[name]
    set_line(full, number, name + specifier.format(version=version))
    assert f"requirements.txt:{number}: {name}" in problems(root)
    assert "is not pinned exactly" in problems(root)


def test_url_requirement_is_not_a_pin(root: Path) -> None:
    number = append(root / CI.requirements.name, "leftpad @ https://example.invalid/leftpad.whl")
    assert f"requirements-ci.txt:{number}: leftpad @ " in problems(root)
    assert "not pinned exactly" in problems(root)


@pytest.mark.parametrize("line", ["numpy=2.3.5", "-r other.txt", "fastapi==0.1 extra words"])
def test_unparsable_line_is_named_with_file_and_line(root: Path, line: str) -> None:
    number = append(root / CI.requirements.name, line)
    assert f"requirements-ci.txt:{number}: cannot parse {line!r}" in problems(root)


def test_comments_and_blank_lines_are_skipped(root: Path) -> None:
    ci = root / CI.requirements.name
    name = shared_direct(root)
    number = direct_lines(ci)[name]
    original = ci.read_text().splitlines()[number - 1]
    set_line(ci, number, f"\n   # a comment\n{original}  # why this pin")
    message = problems(root)  # the lock is stale now (its input changed), and nothing else
    assert "cannot parse" not in message
    assert message.startswith("requirements: 1 problem:")


def test_duplicate_requirement(root: Path) -> None:
    ci = root / CI.requirements.name
    name = shared_direct(root)
    first = direct_lines(ci)[name]
    number = append(ci, ci.read_text().splitlines()[first - 1])
    expected = f"requirements-ci.txt:{number}: {name} is listed again (first at "
    assert expected + f"requirements-ci.txt:{first})" in problems(root)


@pytest.mark.parametrize(
    ("edited", "stale"),
    [
        ("requirements.txt", "requirements.lock"),
        ("requirements-ci.txt", "requirements-ci.lock"),
        # The CI lock is resolved with the full lock as constraints, so it is one of its inputs.
        ("requirements.lock", "requirements-ci.lock"),
        ("requirements-build.txt", "requirements-build.lock"),
    ],
)
def test_lock_stale_against_its_inputs(root: Path, edited: str, stale: str) -> None:
    append(root / edited, "# edited after locking")
    message = problems(root)
    assert f"{stale} is stale" in message
    assert "run `invoke lock`" in message
    assert message.count(" is stale") == 1


def test_missing_lock(root: Path) -> None:
    (root / CI.lock.name).unlink()
    assert "requirements-ci.lock is missing" in problems(root)


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        (lambda text: "", "requirements-ci.lock locks nothing"),
        (lambda text: text[: text.index("--hash=", text.index("\nloguru==")) + 20], "cut off"),
    ],
    ids=["empty", "cut-inside-an-entry"],
)
def test_an_empty_or_cut_off_lock_is_named(
    root: Path, cut: Callable[[str], str], expected: str
) -> None:
    lock = root / CI.lock.name
    lock.write_text(cut(lock.read_text()))
    assert expected in problems(root)


def test_missing_build_backend_lock(root: Path) -> None:
    (root / locks.BUILD_LOCK.name).unlink()
    assert "requirements-build.lock is missing: run `invoke lock`" in problems(root)


def test_an_unhashed_build_backend_is_named(root: Path) -> None:
    lock = root / locks.BUILD_LOCK.name
    lock.write_text(
        re.sub(r"(?m)^ +--hash=\S+( \\)?\n", "", lock.read_text()).replace(" \\\n", "\n")
    )
    assert "requirements-build.lock pins setuptools without a hash" in problems(root)


def test_missing_binutils_lock(root: Path) -> None:
    (root / debian_tools.LOCK.name).unlink()
    assert "debian-tools.lock is missing: run `invoke lock`" in problems(root)


def test_binutils_lock_without_an_architecture_or_a_hash(root: Path) -> None:
    lock = root / debian_tools.LOCK.name
    text = lock.read_text()
    lock.write_text(
        re.sub(r"(?m)^arm64 .*\n", "", re.sub(r" [0-9a-f]{64}$", "", text, count=1, flags=re.M))
    )
    message = problems(root)
    assert "debian-tools.lock line 4 is not `arch pool/....deb sha256`" in message
    assert (
        "debian-tools.lock pins no binutils-aarch64-linux-gnu, libbinutils, libctf-nobfd0 for arm64"
        in message
    )


def test_locks_disagree_on_a_shared_package(root: Path) -> None:
    name = shared_locked(root)
    set_locked_version(root / CI.lock.name, name, "0.0.1")
    message = problems(root)
    expected = f"the locks disagree on {name}: requirements-ci.lock has 0.0.1, requirements.lock"
    assert expected in message
    # The lock's PEP 751 twin still has the resolved version: an edited lock is named too.
    assert "pylock.ci.toml and requirements-ci.lock pin different versions" in message
    assert message.startswith("requirements: 2 problems:")


def test_lock_disagrees_with_a_direct_pin(root: Path) -> None:
    name = shared_direct(root)
    set_locked_version(root / CI.lock.name, name, "0.0.1")
    message = problems(root)
    assert f"{name} is pinned to " in message
    assert "requirements-ci.lock has 0.0.1" in message
    assert f"the locks disagree on {name}" in message


def test_every_problem_in_one_message_with_exit_code_9(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci = root / CI.requirements.name
    name = shared_direct(root)
    set_line(ci, direct_lines(ci)[name], f"{name}>=0")
    heavy = append(ci, "torch==2.9.1")
    transitive = shared_locked(root)
    set_locked_version(root / FULL.lock.name, transitive, "0.0.1")

    with pytest.raises(SystemExit) as exited:
        main(["--root", str(root)])
    assert exited.value.code == RequirementsProblem.exit_code == 9
    error = capsys.readouterr().err
    assert error.startswith("error: requirements: ")
    assert error.count("error:") == 1
    for expected in (
        f"the locks disagree on {transitive}",
        "requirements-ci.lock is stale",  # requirements-ci.txt and requirements.lock changed
        f"requirements-ci.txt:{heavy}: torch is a heavy package",
        f"{name}>=0 is not pinned exactly",
        f"{name} differs in pin",
    ):
        assert expected in error


# -- both platforms: one version per package, markers, a hashed wheel for each platform ---------


def drop_wheels(pylock: Path, name: str, machine: str) -> None:
    """Remove the `machine` wheels of one package from a PEP 751 file (uv writes one per line)."""
    lines, inside, dropped = [], False, 0
    for line in pylock.read_text().splitlines():
        if line.startswith("name = "):
            inside = line == f'name = "{name}"'
        if inside and line.lstrip().startswith("{ url =") and f"_{machine}" in line:
            dropped += 1
            continue
        lines.append(line)
    assert dropped, f"{pylock.name} has no {machine} wheel of {name}"
    pylock.write_text("\n".join(lines) + "\n")


def test_a_package_without_an_arm64_wheel_is_named(root: Path) -> None:
    drop_wheels(root / "pylock.ci.toml", "numpy", "aarch64")
    message = problems(root)
    assert "numpy==2.3.5 has no wheel for linux/arm64" in message
    assert "requirements-ci.lock" in message
    assert "numpy==2.3.5 has no wheel for linux/amd64" not in message


def test_a_wheel_whose_hash_the_lock_lacks_is_named(root: Path) -> None:
    lock = root / FULL.lock.name
    # Keep only the first hash of pydantic-core: its aarch64 and x86_64 wheels lose theirs.
    text, entry, kept = [], False, False
    for line in lock.read_text().splitlines():
        if not line[:1].isspace():
            entry, kept = line.startswith("pydantic-core=="), False
        elif entry and "--hash=" in line:
            if kept:
                continue
            kept = True
            line = line.rstrip(" \\")
        text.append(line)
    lock.write_text("\n".join(text) + "\n")
    message = problems(root)
    assert "pydantic-core==" in message
    assert "requirements.lock pins no hash of its linux/arm64 wheel" in message


def test_markers_decide_which_platforms_need_a_wheel(root: Path) -> None:
    """nvidia-* and triton are x86_64-only: no arm64 wheel needed, until the marker goes."""
    assert check(root).startswith("requirements: OK (")
    lock = root / FULL.lock.name
    text = lock.read_text()
    marked = "triton==3.5.1 ; platform_machine == 'x86_64' and sys_platform == 'linux' \\"
    assert marked in text
    lock.write_text(text.replace(marked, "triton==3.5.1 \\"))
    assert "triton==3.5.1 has no wheel for linux/arm64" in problems(root)


def test_one_version_per_package_for_every_platform(root: Path) -> None:
    lock = root / CI.lock.name
    append(lock, "numpy==1.26.4 ; platform_machine == 'aarch64'")
    message = problems(root)
    assert "numpy is locked twice (2.3.5 and 1.26.4)" in message


def test_locked_versions_follow_the_platform() -> None:
    full_amd64 = locked_versions(FULL.lock, get_platform("linux/amd64"))
    full_arm64 = locked_versions(FULL.lock, get_platform("linux/arm64"))
    assert "triton" in full_amd64
    assert "triton" not in full_arm64
    assert not [name for name in full_arm64 if name.startswith("nvidia-")]
    assert full_arm64["torch"] == full_amd64["torch"]
    # Windows-only entries (colorama for loguru) are in the lock, on neither image.
    assert "colorama" not in full_amd64
    assert "colorama" in lockfile.read(FULL.lock).entries
    assert locked_versions(FULL.lock) == locked_versions(FULL.lock, host_platform())


def test_uv_is_found_without_the_venv_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`.venv/bin/invoke lock` on a machine whose PATH has only the system's directories."""
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    uv = Path(locks.uv_executable())
    assert uv.is_file(), uv
    assert uv.parent != Path("/usr/bin"), f"{uv}: not the task suite's own uv"

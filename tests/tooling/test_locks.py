"""`invoke lock` on copies of the lock files: every pin kept that it was not asked to move, all
files written or none, and a network failure told apart from pins that do not resolve.

These tests run uv against PyPI; Debian's index comes from the `debian_index` fixture.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from service_images import debian_tools, lockfile, locks
from service_images.errors import IndexUnreachable, RequirementsProblem, ToolError
from service_images.requirements import check
from service_images.variants import ROOT, VARIANTS

# The files a bump of a package both images have must move: each variant's lock and its twin.
VARIANT_FILES = {
    path.name
    for variant in VARIANTS.values()
    for path in (variant.lock, lockfile.wheels_file(variant))
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of what `invoke lock` reads and writes."""
    sources = [variant.requirements for variant in VARIANTS.values()]
    for path in [*sources, locks.BUILD_REQUIREMENTS, ROOT / "pyproject.toml", *locks.lock_files()]:
        shutil.copy2(path, tmp_path / path.name)
    return tmp_path


def contents(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in locks.lock_files(root)}


def pins(path: Path) -> dict[str, str]:
    """{name: version} of a requirements-format lock or a PEP 751 file."""
    if path.suffix == ".toml":
        return dict(lockfile.read_pylock(path).keys())
    return {name: entry.version for name, entry in lockfile.read(path).entries.items()}


def set_pin(root: Path, package: str, version: str) -> None:
    """Pin `package` to `version` in both requirement files, as a user bumping it would."""
    for variant in VARIANTS.values():
        path = root / variant.requirements.name
        lines = path.read_text(encoding="utf-8").splitlines()
        new = [
            f"{package}=={version}" if line.startswith(f"{package}==") else line for line in lines
        ]
        assert new != lines, f"{path.name} does not pin {package}"
        path.write_text("\n".join(new) + "\n", encoding="utf-8")


@pytest.mark.usefixtures("debian_index")
def test_a_bump_moves_that_pin_only_and_a_second_run_nothing(root: Path) -> None:
    debian = {lock.path.name for lock in debian_tools.LOCKS}
    python_locks = [path for path in locks.lock_files(root) if path.name not in debian]
    before = {path.name: pins(path) for path in python_locks}
    set_pin(root, "loguru", "0.7.2")
    report = locks.lock_all(root)
    for name, old in before.items():
        new = pins(root / name)
        moved = {
            package for package in old.keys() | new.keys() if old.get(package) != new.get(package)
        }
        assert moved == ({"loguru"} if name in VARIANT_FILES else set()), f"{name}: {moved} moved"
    assert "==> wrote requirements.lock: loguru 0.7.3 -> 0.7.2" in report
    assert check(root).startswith("requirements: OK (")
    written = contents(root)
    assert all(line.endswith(": unchanged") for line in locks.lock_all(root))
    assert contents(root) == written


def test_pypi_unreachable_is_its_own_error_and_writes_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_pin(root, "loguru", "0.7.2")
    unchanged = contents(root)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(IndexUnreachable) as caught:
        locks.lock_all(root)
    assert caught.value.exit_code == 24
    assert "a package index is unreachable" in caught.value.message
    assert "\n" not in caught.value.message
    assert contents(root) == unchanged


def test_debian_unreachable_writes_no_lock_at_all(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python locks resolve; Debian's index does not answer: not one file changes."""
    set_pin(root, "loguru", "0.7.2")
    unchanged = contents(root)

    def unreachable(url: str, **_: object) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(httpx, "get", unreachable)
    with pytest.raises(IndexUnreachable, match="Debian's archive is unreachable"):
        locks.lock_all(root)
    assert contents(root) == unchanged


def test_pins_that_do_not_resolve_are_a_requirements_problem(root: Path) -> None:
    set_pin(root, "loguru", "0.0.0.999")
    unchanged = contents(root)
    with pytest.raises(RequirementsProblem, match=r"does not resolve: .*fix the pins"):
        locks.lock_all(root)
    assert contents(root) == unchanged


def test_a_failed_write_puts_back_what_it_replaced(tmp_path: Path) -> None:
    first, second = tmp_path / "a.lock", tmp_path / "b.lock"
    first.write_text("old a\n")
    second.mkdir()  # a file cannot replace a directory
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "a.lock").write_text("new a\n")
    (staged / "b.lock").write_text("new b\n")
    with pytest.raises(ToolError, match=r"^could not write b\.lock .*no lock file was changed"):
        lockfile.replace_all({first: staged / "a.lock", second: staged / "b.lock"})
    assert first.read_text() == "old a\n"

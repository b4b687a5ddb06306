"""The lock cut into install tiers: by dependency closure, every package in exactly one tier,
entries kept byte for byte, and each Dockerfile installing exactly its variant's tiers in order."""

from __future__ import annotations

import hashlib
import io
import re
import textwrap
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service_images import lockfile, locks, tiers
from service_images.errors import BuildFailed, MissingFile, RequirementsProblem
from service_images.lockfile import wheel_tags
from service_images.platforms import PLATFORMS, get_platform, host_platform
from service_images.variants import VARIANTS, Tier, Variant

LOCK = textwrap.dedent(
    """\
    # inputs-sha256: 0
    anyio==4.0 \\
        --hash=sha256:aa
        # via fastapi
    fastapi==1.0 \\
        --hash=sha256:bb
        # via -r requirements.txt
    numpy==2.0 \\
        --hash=sha256:cc \\
        --hash=sha256:cd
        # via
        #   -r requirements.txt
        #   pandas
        #   torch
    pandas==2.0 \\
        --hash=sha256:dd
        # via -r requirements.txt
    torch==2.9 \\
        --hash=sha256:ee
        # via -r requirements.txt
    """
)
# Each `sha256:xy` above stands for a whole digest: 64 hex digits, as a lock has them.
LOCK = re.sub(r"sha256:([0-9a-f]{2})\b", lambda match: f"sha256:{match[1] * 32}", LOCK)
LOCK_PATH = Path("requirements.lock")
SMALL_TIERS = (Tier("torch", ("torch",)), Tier("numeric", ("pandas",)), Tier("rest", ()))


def test_a_tier_is_its_roots_closure_less_earlier_tiers(tmp_path: Path) -> None:
    path = tmp_path / "requirements.lock"
    path.write_text(LOCK)
    assigned = tiers.assign(lockfile.read(path).entries, SMALL_TIERS)
    assert assigned == {
        "torch": ["numpy", "torch"],
        "numeric": ["pandas"],
        "rest": ["anyio", "fastapi"],
    }


def test_entries_keep_their_hashes_and_lose_their_via_comments() -> None:
    blocks = {name: entry.text for name, entry in lockfile.parse(LOCK, LOCK_PATH).entries.items()}
    cc, cd = "cc" * 32, "cd" * 32
    assert blocks["numpy"] == f"numpy==2.0 \\\n    --hash=sha256:{cc} \\\n    --hash=sha256:{cd}\n"
    assert "via" not in "".join(blocks.values())


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=lambda variant: variant.name)
def test_the_tiers_hold_every_locked_package_once(variant: Variant) -> None:
    slices = tiers.split(variant)
    entries = [name for text in slices.values() for name in lockfile.parse(text, LOCK_PATH).entries]
    assert sorted(entries) == sorted(lockfile.read(variant.lock).entries), (
        "a package lost or doubled"
    )
    assert len(entries) == len(set(entries))


def test_staging_writes_the_slices_of_the_contexts_lock_and_a_verified_uv(tmp_path: Path) -> None:
    variant = VARIANTS["ci"]
    lock = variant.lock.read_text()
    (tmp_path / variant.lock.name).write_text(lock.replace("loguru==", "loguru===", 1))
    args = tiers.stage(variant, tmp_path)
    service = (tmp_path / ".build" / variant.name / "service.lock").read_text()
    assert "loguru===" in service, "the context's lock (a bench's bumped copy) is what is staged"
    _, sha256 = tiers.uv_binary()
    assert args == {"UV_SHA256_AMD64": sha256}
    staged = sorted(path.name for path in (tmp_path / ".build" / variant.name).iterdir())
    assert staged == sorted(f"{tier}.lock" for tier in tiers.split(variant))
    assert (tmp_path / tiers.uv_target(host_platform())).stat().st_mode & 0o111


def cut_inside(text: str, package: str) -> str:
    """The lock cut off in the middle of `package`'s hash lines, as a failed write leaves it."""
    start = text.index(f"\n{package}==") + 1
    return text[: text.index("--hash=sha256:", text.index("--hash=", start) + 1) + 20]


@pytest.mark.parametrize(
    "broken",
    [
        lambda text: "",
        lambda text: cut_inside(text, "pydantic-core"),
        lambda text: text[: text.index("\n", text.index("--hash=", text.index("\nloguru==")))],
        lambda text: "<html><body>502 Bad Gateway</body></html>\n",
        lambda text: b"\x89PNG\r\n\x1a\n\x00\x00",
    ],
    ids=["empty", "cut-inside-an-entry", "cut-after-a-continued-hash", "html", "binary"],
)
def test_a_broken_lock_is_a_requirements_problem_and_stages_nothing(
    tmp_path: Path, broken: Callable[[str], str | bytes]
) -> None:
    variant = VARIANTS["ci"]
    lock = tmp_path / variant.lock.name
    text = broken(variant.lock.read_text())
    lock.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RequirementsProblem) as caught:
        tiers.stage(variant, tmp_path)
    assert caught.value.exit_code == 9
    assert variant.lock.name in caught.value.message
    assert not (tmp_path / ".build").exists()


def test_a_tier_the_lock_no_longer_has_leaves_no_slice_behind(tmp_path: Path) -> None:
    variant = VARIANTS["ci"]
    staged = tmp_path / ".build" / variant.name
    staged.mkdir(parents=True)
    (staged / "numeric.lock").write_text("# an earlier build's slice\n")
    loguru = lockfile.read(variant.lock).entries["loguru"]
    (tmp_path / variant.lock.name).write_text(loguru.text)  # a lock of the service tier only
    tiers.stage(variant, tmp_path)
    assert sorted(path.name for path in staged.iterdir()) == ["service.lock"]


# -- uv for another platform: its wheel, checked against pylock.tools.toml ---------------------


def fake_uv_wheel(version: str, binary: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(f"uv-{version}.data/scripts/uv", binary)
    return buffer.getvalue()


@pytest.fixture
def foreign_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """A tools lock naming one aarch64 uv wheel, and that wheel in the download cache."""
    wheel = fake_uv_wheel("9.9.9", b"an aarch64 uv")
    name = "uv-9.9.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    tools = tmp_path / "pylock.tools.toml"
    tools.write_text(
        '[[packages]]\nname = "uv"\nversion = "9.9.9"\nwheels = [{ url = '
        f'"https://files.example/{name}", hashes = {{ sha256 = '
        f'"{hashlib.sha256(wheel).hexdigest()}" }} }}]\n'
    )
    monkeypatch.setattr(locks, "TOOLS_WHEELS", tools)
    monkeypatch.setattr(locks, "uv_pin", lambda: "9.9.9")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / name).write_bytes(wheel)
    return cache / name, wheel


def test_a_foreign_uv_comes_from_its_recorded_wheel(foreign_uv: tuple[Path, bytes]) -> None:
    cached, _ = foreign_uv
    binary, sha256 = tiers.foreign_uv_binary(get_platform("linux/arm64"), cached.parent)
    assert binary == b"an aarch64 uv"
    assert sha256 == hashlib.sha256(b"an aarch64 uv").hexdigest()


def test_a_foreign_uv_wheel_with_another_hash_is_refused(
    foreign_uv: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    cached, _ = foreign_uv
    tampered = fake_uv_wheel("9.9.9", b"something else")
    cached.write_bytes(tampered)  # the cache no longer matches: downloaded again, same bytes
    monkeypatch.setattr(
        httpx,
        "get",
        lambda url, **_: httpx.Response(200, content=tampered, request=httpx.Request("GET", url)),
    )
    with pytest.raises(BuildFailed, match=r"does not match the sha256 pylock\.tools\.toml records"):
        tiers.foreign_uv_binary(get_platform("linux/arm64"), cached.parent)


def test_no_foreign_uv_for_a_platform_the_tools_lock_lacks(foreign_uv: tuple[Path, bytes]) -> None:
    cached, _ = foreign_uv
    with pytest.raises(MissingFile, match=r"uv 9\.9\.9 has no wheel for linux/amd64"):
        tiers.foreign_uv_binary(get_platform("linux/amd64"), cached.parent)


def test_the_tools_lock_records_the_pinned_uv_for_both_platforms() -> None:
    packages = tomllib.loads(locks.TOOLS_WHEELS.read_text())["packages"]
    (uv,) = [p for p in packages if p["name"] == "uv"]
    assert uv["version"] == locks.uv_pin()
    for target in PLATFORMS.values():
        names = [str(w["url"]).rpartition("/")[2] for w in uv["wheels"]]
        assert any(target.wheel_tags() & wheel_tags(name) for name in names), target.docker

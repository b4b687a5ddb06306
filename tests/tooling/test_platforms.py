"""The two platforms: markers, wheel tags, per-architecture base tags, emulation detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.tags import Tag

from service_images import platforms
from service_images.errors import UnknownPlatform
from service_images.platforms import PLATFORMS, base_image_for, get_platform

AMD64, ARM64 = PLATFORMS["linux/amd64"], PLATFORMS["linux/arm64"]
X86_ONLY = "platform_machine == 'x86_64' and sys_platform == 'linux'"


def test_markers_are_evaluated_for_the_platform_not_the_host() -> None:
    assert AMD64.installs(X86_ONLY)
    assert not ARM64.installs(X86_ONLY)
    assert ARM64.installs(None)
    assert not ARM64.installs("sys_platform == 'win32'")
    assert ARM64.installs("python_version >= '3.11' and platform_machine == 'aarch64'")


@pytest.mark.parametrize(
    ("target", "accepted", "refused"),
    [
        (AMD64, "cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux_2_17_aarch64"),
        (ARM64, "cp311-cp311-manylinux_2_28_aarch64", "cp311-cp311-manylinux_2_39_aarch64"),
        (ARM64, "py3-none-any", "cp312-cp312-manylinux_2_17_aarch64"),
        (ARM64, "cp311-abi3-manylinux2014_aarch64", "cp311-cp311-musllinux_1_2_aarch64"),
    ],
)
def test_wheel_tags_follow_python_311_and_the_bases_glibc(
    target: platforms.Platform, accepted: str, refused: str
) -> None:
    tags = target.wheel_tags()
    assert Tag(*accepted.split("-")) in tags
    assert Tag(*refused.split("-")) not in tags


def test_another_platforms_base_has_a_tag_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.host, "machine", lambda: "x86_64")
    classic = {"one_platform_per_tag": True}
    assert base_image_for("python:3.11-slim", AMD64, **classic) == "python:3.11-slim"
    assert base_image_for("python:3.11-slim", ARM64, **classic) == "python:3.11-slim-arm64"
    assert base_image_for("host:5000/python", ARM64, **classic) == "host:5000/python:latest-arm64"
    assert base_image_for("python@sha256:" + "0" * 64, ARM64, **classic).startswith("python@")
    # The containerd store keeps both platforms under the one tag.
    assert base_image_for("python:3.11-slim", ARM64, one_platform_per_tag=False) == (
        "python:3.11-slim"
    )


def test_platform_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.host, "machine", lambda: "aarch64")
    assert get_platform(None) is ARM64
    assert get_platform("amd64") is AMD64
    with pytest.raises(UnknownPlatform) as raised:
        get_platform("linux/riscv64")
    assert raised.value.exit_code == 21
    assert "linux/amd64, linux/arm64" in raised.value.message


def test_emulation_needs_a_registered_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(platforms.host, "machine", lambda: "x86_64")
    monkeypatch.setattr(platforms, "BINFMT_DIR", tmp_path)
    assert AMD64.emulation_ready()
    assert not ARM64.emulation_ready()
    (tmp_path / "qemu-aarch64").write_text("disabled\n")
    assert not ARM64.emulation_ready()
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/x\n")
    assert ARM64.emulation_ready()

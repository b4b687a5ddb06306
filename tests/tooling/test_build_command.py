"""The BuildKit arguments the tasks pass: secret, labels, cache flags, context (no engine)."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from service_images import build, engine, platforms
from service_images.build import BuildOptions, git, prepare
from service_images.errors import BadOption, BaseImageMissing
from service_images.variants import PROJECT_LABEL, ROOT, VARIANTS


@pytest.fixture(autouse=True)
def buildx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "buildx_version", lambda: "0.13.1")


def flag_values(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == flag]


def test_ca_bundle_is_only_a_secret(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    command = prepare(VARIANTS["ci"], BuildOptions(ca_bundle=str(bundle))).argv()
    assert flag_values(command, "--secret") == [f"id=ca_bundle,src={bundle}"]
    assert sum(str(bundle) in arg for arg in command) == 1


def test_labels_name_the_commit_and_the_project() -> None:
    command = prepare(VARIANTS["full"], BuildOptions()).argv()
    labels = dict(value.split("=", 1) for value in flag_values(command, "--label"))
    assert labels["org.opencontainers.image.revision"] == git("rev-parse", "HEAD")
    assert labels[PROJECT_LABEL] == "true"
    assert command[-1] == str(ROOT)
    assert flag_values(command, "--file") == [str(VARIANTS["full"].dockerfile)]


def test_cache_flags_pass_through_and_empty_ones_are_dropped() -> None:
    options = BuildOptions(cache_from="type=registry,ref=r:cache", cache_to="", builder="remote")
    command = prepare(VARIANTS["ci"], options).argv()
    assert flag_values(command, "--cache-from") == ["type=registry,ref=r:cache"]
    assert flag_values(command, "--cache-to") == []
    assert flag_values(command, "--builder") == ["remote"]


@pytest.mark.parametrize(
    ("containerd", "base"),
    [(False, "python:3.11-slim-arm64"), (True, "python:3.11-slim")],
    ids=["classic-store", "containerd-store"],
)
def test_another_platform_builds_on_its_own_base_and_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, containerd: bool, base: str
) -> None:
    from service_images import platforms, tiers

    monkeypatch.setattr(engine, "client", lambda: None)
    monkeypatch.setattr(engine, "containerd_store", lambda sdk: containerd)
    monkeypatch.setattr(platforms.host, "machine", lambda: "x86_64")
    monkeypatch.setattr(platforms.Platform, "emulation_ready", lambda self: True)
    monkeypatch.setattr(tiers, "foreign_uv_binary", lambda target, cache: (b"arm uv", "ab" * 32))
    (tmp_path / VARIANTS["ci"].lock.name).write_bytes(VARIANTS["ci"].lock.read_bytes())
    (tmp_path / VARIANTS["ci"].dockerfile.name).write_text("FROM scratch\n")
    options = BuildOptions(platform="linux/arm64", context=tmp_path)
    command = prepare(VARIANTS["ci"], options).argv()
    assert flag_values(command, "--platform") == ["linux/arm64"]
    build_arguments = dict(value.split("=", 1) for value in flag_values(command, "--build-arg"))
    assert build_arguments["BASE_IMAGE"] == base
    assert build_arguments["UV_SHA256_ARM64"] == "ab" * 32
    assert (tmp_path / ".build" / "uv-arm64").read_bytes() == b"arm uv"
    # A remote builder resolves the base for the platform itself: the name is left alone.
    remote = prepare(
        VARIANTS["ci"], BuildOptions(platform="arm64", context=tmp_path, builder="b")
    ).argv()
    assert "BASE_IMAGE=python:3.11-slim" in flag_values(remote, "--build-arg")


def test_another_platform_without_emulation_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from service_images import platforms
    from service_images.errors import EmulationUnavailable

    monkeypatch.setattr(platforms.host, "machine", lambda: "x86_64")
    monkeypatch.setattr(platforms.Platform, "emulation_ready", lambda self: self.native)
    with pytest.raises(EmulationUnavailable, match=r"no QEMU registered for aarch64"):
        prepare(VARIANTS["ci"], BuildOptions(platform="linux/arm64")).argv()
    assert "--platform" not in prepare(VARIANTS["ci"], BuildOptions()).argv()


@pytest.mark.parametrize("containerd", [True, False], ids=["containerd-store", "classic-store"])
def test_a_reproducible_build_is_dated_1970_and_loaded_from_an_oci_archive(
    monkeypatch: pytest.MonkeyPatch, containerd: bool
) -> None:
    monkeypatch.setattr(engine, "client", lambda: None)
    monkeypatch.setattr(engine, "containerd_store", lambda sdk: containerd)
    plain = prepare(VARIANTS["ci"], BuildOptions())
    assert plain.build_args["SOURCE_DATE_EPOCH"] == "0"
    assert plain.loaded_archive is None
    if not containerd:
        with pytest.raises(BadOption, match="the classic store compresses it again"):
            prepare(VARIANTS["ci"], BuildOptions(reproducible=True))
        return
    for options in (BuildOptions(reproducible=True), BuildOptions(push_to="127.0.0.1:5000")):
        plan = prepare(VARIANTS["ci"], options)
        (output,) = flag_values(plan.argv(), "--output")
        assert output.startswith(f"type=oci,dest={plan.loaded_archive},name={plan.tag},")
        assert "rewrite-timestamp=true" in output
    # A docker-container builder pushes what it rewrote itself: nothing is loaded here.
    remote = prepare(
        VARIANTS["ci"], BuildOptions(push_to="127.0.0.1:5000", reproducible=True, builder="b")
    )
    assert remote.loaded_archive is None
    assert flag_values(remote.argv(), "--output")[0].startswith("type=registry,")


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_build_whose_output_cannot_be_written_is_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The build ends with its caller: left running, it kept the cache it was writing "in use"."""
    stopped = tmp_path / "stopped"
    script = f"trap 'echo TERM > {stopped}; exit 143' TERM; echo step; sleep 5 & wait"
    monkeypatch.setattr(engine, "build_command", lambda args: ["sh", "-c", script])
    with pytest.raises(OSError, match="No space left"):
        engine.run_build([], echo=FullDisk())
    assert stopped.exists(), "the build ran on to its end"


def test_the_base_image_is_read_whole_only_to_build_another_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`docker save` of the base image, to list its platforms, took 5 s before every build."""
    host = platforms.host_platform()
    (other,) = [platform for platform in platforms.PLATFORMS.values() if platform != host]
    sdk = SimpleNamespace(
        images=SimpleNamespace(get=lambda name: SimpleNamespace(attrs={"Architecture": host.arch}))
    )
    read: list[str] = []
    monkeypatch.setattr(engine, "client", lambda: sdk)
    monkeypatch.setattr(engine, "image_exists", lambda sdk, name: True)
    monkeypatch.setattr(engine, "ensure_base_image", lambda sdk, name: None)
    monkeypatch.setattr(engine, "containerd_store", lambda sdk: True)
    monkeypatch.setattr(
        build, "image_platforms", lambda sdk, name: read.append(name) or {host.arch}
    )
    native = SimpleNamespace(build_args={"BASE_IMAGE": "base"}, targets=(host,))
    build.check_base_platform(native)  # type: ignore[arg-type]
    assert read == []
    foreign = SimpleNamespace(build_args={"BASE_IMAGE": "base"}, targets=(host, other))
    with pytest.raises(
        BaseImageMissing, match=f"holds {host.arch}, the build is for {other.docker}"
    ):
        build.check_base_platform(foreign)  # type: ignore[arg-type]
    assert read == ["base"]

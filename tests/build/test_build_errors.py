"""Failures that need an engine: a base image nobody has, a build that fails at a named step."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import docker
import pytest
from commandline import assert_one_line_error, invoke

from service_images import debian_tools, engine, inputs, tiers
from service_images.base_image import image_size_mb
from service_images.build import BuildOptions, build_image
from service_images.errors import BuildFailed
from service_images.variants import (
    BASE_IMAGE_BUDGET_MB,
    DEFAULT_BASE_IMAGE,
    PROJECT_LABEL,
    VARIANTS,
)


def test_base_image_missing() -> None:
    result = invoke("build-ci", "--base-image", "python-ai-service/no-such-base:0")
    assert_one_line_error(result, 6, "no-such-base", "invoke base-image")


def test_failed_build_names_the_failing_step(tmp_path: Path) -> None:
    """A lock whose hash is wrong fails the install step; the error names that step."""
    variant = VARIANTS["ci"]
    inputs.copy(tmp_path, inputs.for_builds([variant]))
    lock = variant.lock.read_text()
    # Well-formed hashes of no file: the lock parses, the install step's hash check fails.
    wrong = re.sub(r"--hash=sha256:[0-9a-f]{64}", "--hash=sha256:" + "0" * 64, lock)
    (tmp_path / variant.lock.name).write_text(wrong)
    tag = "python-ai-service:test-failed-build"
    with pytest.raises(BuildFailed) as error:
        build_image(variant, BuildOptions(context=tmp_path, tag=tag))
    assert error.value.exit_code == 8
    assert "failed at [" in error.value.message
    assert "install-tier.sh" in error.value.message, "not the install step"


def test_bootstrapped_base_image_within_budget(docker_client: docker.DockerClient) -> None:
    sdk = docker_client
    if not engine.image_exists(sdk, DEFAULT_BASE_IMAGE):
        pytest.skip(f"no {DEFAULT_BASE_IMAGE} here")
    if PROJECT_LABEL not in (sdk.images.get(DEFAULT_BASE_IMAGE).labels or {}):
        pytest.skip(f"{DEFAULT_BASE_IMAGE} is the official image, not one `invoke base-image` made")
    assert image_size_mb(DEFAULT_BASE_IMAGE) <= BASE_IMAGE_BUDGET_MB


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "gone-from-debian"])
def test_tools_stage_fetches_pinned_binutils_or_falls_back_to_apt(
    tmp_path: Path, docker_client: docker.DockerClient, pinned: bool
) -> None:
    """The `tools` stage fetches the packages debian-tools.lock pins; when Debian's archive no
    longer has them (a point release replaced them), it installs binutils with apt-get, saying
    so. Either way strip and readelf are there for the install steps."""
    shutil.copy(VARIANTS["ci"].dockerfile, tmp_path)
    (tmp_path / "scripts").mkdir()
    shutil.copy(tiers.INSTALL_SCRIPT, tmp_path / "scripts")
    lock = debian_tools.LOCK.read_text()
    (tmp_path / debian_tools.LOCK.name).write_text(lock if pinned else lock.replace("_2.", "_0."))
    tag = f"python-ai-service:test-tools-{'pinned' if pinned else 'fallback'}"
    args = ["--file", str(tmp_path / "Dockerfile.ci"), "--target", "tools", "--tag", tag]
    returncode, output = engine.run_build(
        [*args, "--no-cache", "--progress", "plain", str(tmp_path)], echo=io.StringIO()
    )
    try:
        assert returncode == 0, "\n".join(output[-15:])
        fallback = "could not be fetched (gone from Debian's archive? run `invoke lock`)"
        assert any(fallback in line for line in output) != pinned, "\n".join(output[-15:])
        versions = docker_client.containers.run(
            tag,
            ["sh", "-c", "/usr/bin/*-linux-gnu-strip -V && /usr/bin/*-linux-gnu-readelf -v"],
            remove=True,
        ).decode()
        assert versions.count("GNU") >= 2, versions
    finally:
        if engine.image_exists(docker_client, tag):
            docker_client.images.remove(tag, force=True)

"""Failures that need an engine: a base image nobody has, a build that fails at a named step."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest
from commandline import assert_one_line_error, invoke

from service_images import engine, tiers
from service_images.base_image import image_size_mb
from service_images.build import BuildOptions, build_image
from service_images.errors import BuildFailed
from service_images.variants import (
    BASE_IMAGE_BUDGET_MB,
    DEFAULT_BASE_IMAGE,
    PROJECT_LABEL,
    ROOT,
    VARIANTS,
)


def test_base_image_missing() -> None:
    result = invoke("build-ci", "--base-image", "python-ai-service/no-such-base:0")
    assert_one_line_error(result, 6, "no-such-base", "invoke base-image")


def test_failed_build_names_the_failing_step(tmp_path: Path) -> None:
    """A lock whose hash is wrong fails the install step; the error names that step."""
    variant = VARIANTS["ci"]
    (tmp_path / "python-ai-service").mkdir()
    shutil.copytree(ROOT / "python-ai-service" / "app", tmp_path / "python-ai-service" / "app")
    shutil.copy(variant.dockerfile, tmp_path)
    shutil.copy(ROOT / ".dockerignore", tmp_path)
    for path in tiers.install_inputs(variant):
        (tmp_path / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / path.relative_to(ROOT))
    lock = variant.lock.read_text()
    (tmp_path / variant.lock.name).write_text(lock.replace("--hash=sha256:", "--hash=sha256:0", 1))
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

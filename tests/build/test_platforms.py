"""One tag for two platforms: on the containerd image store, `invoke build-ci --platform
linux/amd64,linux/arm64` makes one OCI index; pushed, each platform's image passes the contract,
verified by its own digest (linux/arm64 under QEMU, as on an x86_64 runner).

    pytest tests/build/test_platforms.py   # containerd store, QEMU for arm64; ~5 min on 2 cores
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator

import docker
import pytest
from commandline import invoke

from service_images import contract, engine, registry
from service_images.build import git, image_platforms
from service_images.platforms import PLATFORMS
from service_images.variants import DEFAULT_BASE_IMAGE, IMAGE_NAME, ROOT, VARIANTS

BOTH = ",".join(PLATFORMS)


@pytest.fixture(scope="module")
def pushed(
    docker_client: docker.DockerClient, local_registry: str
) -> Iterator[registry.PushResult]:
    if not engine.containerd_store(docker_client):
        pytest.skip("one tag for two platforms needs the containerd image store")
    missing = {p.docker for p in PLATFORMS.values() if not p.emulation_ready()}
    if missing:
        pytest.skip(f"no QEMU registered for {missing}: scripts/bootstrap.sh --platform ...")
    held = image_platforms(docker_client, DEFAULT_BASE_IMAGE)
    if held != {p.arch for p in PLATFORMS.values()}:
        pytest.skip(f"{DEFAULT_BASE_IMAGE} holds {held}: invoke base-image --platform linux/arm64")
    tag = f"{IMAGE_NAME}:test-platforms-{secrets.token_hex(4)}"
    built = invoke("build-ci", "--platform", BOTH, "--tag", tag)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr
    try:
        yield registry.push(VARIANTS["ci"], local_registry, image=tag, tag="platforms")
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


def test_one_index_holds_both_platforms(pushed: registry.PushResult) -> None:
    assert sorted(image.platform for image in pushed.images) == sorted(PLATFORMS)
    index = registry.raw_manifest(pushed.digest_reference)
    assert registry.is_index(index)


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_each_platform_passes_the_contract_by_its_digest(
    pushed: registry.PushResult, platform: str, docker_client: docker.DockerClient
) -> None:
    (image,) = [image for image in pushed.images if image.platform == platform]
    command = contract.pytest_args(
        "ci", image.digest_reference, f"--revision={git('rev-parse', 'HEAD')}", "-m", "not abuse"
    )
    try:
        done = subprocess.run(
            [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=1800
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        pulled = docker_client.images.get(image.digest_reference)
        assert pulled.attrs["Architecture"] == PLATFORMS[platform].arch
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image.digest_reference, force=True)

"""OCI labels are a function of the commit and the base image, not of the clock (no engine).

Two builds of one commit must carry the same labels, so `created` is the commit time, and the
base image is named, with its digest where the local engine knows one.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from service_images import engine
from service_images.build import BuildOptions, git, oci_labels, prepare
from service_images.variants import DEFAULT_BASE_IMAGE, VARIANTS

BASE = "oci.example/team/python:3.11-slim"
REPO_DIGEST = "sha256:" + "a" * 64
IMAGE_ID = "sha256:" + "b" * 64


def inspected(repo_digests: list[str], image_id: str = IMAGE_ID, code: int = 0) -> object:
    """A fake `engine.cli` answering `docker image inspect` as the engine would."""

    def cli(*args: str, **_: object) -> subprocess.CompletedProcess[str]:
        assert args[:2] == ("image", "inspect"), args
        return subprocess.CompletedProcess(
            ["docker", *args], code, f"{json.dumps(repo_digests)} {image_id}\n", ""
        )

    return cli


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "buildx_version", lambda: "0.13.1")
    monkeypatch.setattr(engine, "cli", inspected([f"oci.example/team/python@{REPO_DIGEST}"]))


def labels_of(command: list[str]) -> dict[str, str]:
    values = [command[i + 1] for i, arg in enumerate(command) if arg == "--label"]
    return dict(value.split("=", 1) for value in values)


def test_created_is_the_commit_time() -> None:
    created = oci_labels(VARIANTS["ci"])["org.opencontainers.image.created"]
    assert created == git("log", "-1", "--format=%cI")


def test_two_builds_of_one_commit_carry_the_same_labels() -> None:
    options = BuildOptions(base_image=BASE)
    first = labels_of(prepare(VARIANTS["ci"], options).argv())
    time.sleep(1.1)  # a wall-clock `created` would differ by now
    assert labels_of(prepare(VARIANTS["ci"], options).argv()) == first


def test_base_image_is_named_with_its_registry_digest() -> None:
    labels = oci_labels(VARIANTS["full"], BASE)
    assert labels["org.opencontainers.image.base.name"] == BASE
    assert labels["org.opencontainers.image.base.digest"] == REPO_DIGEST


def test_a_digest_from_another_repository_is_not_the_base_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A push tags the base elsewhere (127.0.0.1:5000/python@...): that digest is not its origin."""
    monkeypatch.setattr(engine, "cli", inspected([f"127.0.0.1:5000/python@{REPO_DIGEST}"]))
    labels = oci_labels(VARIANTS["ci"], BASE)
    assert labels["org.opencontainers.image.base.digest"] == IMAGE_ID


def test_docker_hub_short_names_match_their_repo_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cli", inspected([f"python@{REPO_DIGEST}"]))
    labels = oci_labels(VARIANTS["ci"], DEFAULT_BASE_IMAGE)
    assert labels["org.opencontainers.image.base.digest"] == REPO_DIGEST


def test_no_digest_label_where_the_engine_does_not_know_the_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "cli", inspected([], "", code=1))
    labels = oci_labels(VARIANTS["ci"], BASE)
    assert labels["org.opencontainers.image.base.name"] == BASE
    assert "org.opencontainers.image.base.digest" not in labels


def test_a_remote_builder_s_base_gets_no_local_digest() -> None:
    """A remote BuildKit resolves the base itself: the local engine's copy says nothing about it."""
    labels = labels_of(
        prepare(VARIANTS["ci"], BuildOptions(base_image=BASE, builder="remote")).argv()
    )
    assert labels["org.opencontainers.image.base.name"] == BASE
    assert "org.opencontainers.image.base.digest" not in labels

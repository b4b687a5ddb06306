"""Image configuration: user, working directory, environment, port, health check, OCI labels."""

from __future__ import annotations

from typing import Any

import docker.models.images
import pytest

OCI_LABELS = ("source", "revision", "created", "version", "base.name")


def config(image: docker.models.images.Image) -> dict[str, Any]:
    return dict(image.attrs["Config"])


def test_runs_as_a_non_root_user(image: docker.models.images.Image, facts: dict[str, Any]) -> None:
    user = config(image).get("User") or ""
    assert user.split(":")[0] not in ("", "0", "root"), f"image user is {user!r}"
    assert facts["uid"] != 0, "the container's processes run as uid 0"


def test_workdir_and_pythonpath(image: docker.models.images.Image, facts: dict[str, Any]) -> None:
    env = dict(item.split("=", 1) for item in config(image).get("Env") or ())
    assert config(image).get("WorkingDir") == "/app"
    assert env.get("PYTHONPATH") == "/app"
    assert (facts["cwd"], facts["pythonpath"]) == ("/app", "/app")


def test_exposes_the_service_port(image: docker.models.images.Image) -> None:
    assert "8000/tcp" in (config(image).get("ExposedPorts") or {})


def test_has_a_healthcheck(image: docker.models.images.Image) -> None:
    healthcheck = config(image).get("Healthcheck") or {}
    assert healthcheck.get("Test", ["NONE"])[0] not in ("NONE", None), healthcheck


def test_oci_labels_name_the_commit(
    image: docker.models.images.Image, expected_revision: str
) -> None:
    labels = config(image).get("Labels") or {}
    missing = [name for name in OCI_LABELS if not labels.get(f"org.opencontainers.image.{name}")]
    assert not missing, f"OCI labels missing: {missing}"
    assert labels["org.opencontainers.image.revision"] == expected_revision


def test_a_digest_reference_is_the_image_verified(
    image: docker.models.images.Image, pytestconfig: pytest.Config
) -> None:
    """`--image HOST/REPO@sha256:...`: the engine holds these bytes under that very digest."""
    reference = str(pytestconfig.getoption("--image") or "")
    if "@sha256:" not in reference:
        pytest.skip("--image is not a digest reference")
    repository, digest = reference.split("@", 1)
    if repository.rfind(":") > repository.rfind("/"):  # HOST:PORT/REPO:TAG@sha256:...
        repository = repository[: repository.rfind(":")]
    repo_digests = image.attrs.get("RepoDigests") or []
    expected = f"{repository}@{digest}"
    assert expected in repo_digests, f"{expected} is not among the image's {repo_digests}"

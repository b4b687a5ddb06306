"""Image-contract fixtures: any image tag, one container per session, always removed.

    pytest tests/contract --variant ci [--image TAG] [--revision SHA]

The contract (what must and must not be in the image) comes from the variants table and the
variant's lock file, never from lists written here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.models.images
import pytest
import testinfra

from service_images.build import git
from service_images.containers import Service, running
from service_images.requirements import locked_versions
from service_images.variants import VARIANTS, Variant, get_variant

PROBE = (Path(__file__).parent / "probe.py").read_text()
EXEC_TIMEOUT_S = 240  # the full image imports torch and TensorFlow in one exec
STARTUP_DEADLINE_S = 90


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("image contract")
    group.addoption(
        "--variant",
        choices=sorted(VARIANTS),
        help="Image variant whose contract to verify (the variants table's entry).",
    )
    group.addoption("--image", help="Image to verify (default: the variant's tag).")
    group.addoption(
        "--revision",
        help="Commit the image must say it was built from (default: this checkout's HEAD).",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--variant"):
        return
    skip = pytest.mark.skip(reason="image contract: pass --variant ci|full (nox -s ci_image does)")
    for item in items:
        if "variant" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def variant(pytestconfig: pytest.Config) -> Variant:
    return get_variant(pytestconfig.getoption("--variant"))


@pytest.fixture(scope="session")
def locked(variant: Variant) -> dict[str, str]:
    return locked_versions(variant.lock)


@pytest.fixture(scope="session")
def image(
    pytestconfig: pytest.Config, variant: Variant, docker_client: docker.DockerClient
) -> docker.models.images.Image:
    tag = pytestconfig.getoption("--image") or variant.tag
    try:
        return docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        pytest.exit(
            f"image {tag} not found: build it (invoke build-{variant.name}) or pass --image.",
            returncode=5,
        )


@pytest.fixture(scope="session")
def expected_revision(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--revision") or git("rev-parse", "HEAD"))


@pytest.fixture(scope="session")
def service(
    docker_client: docker.DockerClient, image: docker.models.images.Image
) -> Iterator[Service]:
    """The one container of this session, started from the image's default CMD."""
    with running(docker_client, image.id) as started:
        started.wait_until("answers", STARTUP_DEADLINE_S)
        yield started


@pytest.fixture(scope="session")
def host(service: Service) -> Any:
    return testinfra.get_host(f"docker://{service.container.id}")


@pytest.fixture(scope="session")
def facts(service: Service, variant: Variant) -> dict[str, Any]:
    """Everything the contract needs from inside the image, gathered in ONE exec."""
    request = {
        "import_all": True,
        "forbidden_modules": sorted(
            {pattern.rstrip("*-").replace("-", "_") for pattern in variant.forbidden}
        ),
        "backends": list(variant.backends),
    }
    code, output = service.run("python", "-c", PROBE, json.dumps(request), timeout=EXEC_TIMEOUT_S)
    if code != 0:
        pytest.fail(f"the probe failed in the container (exit {code}):\n{output[-3000:]}")
    return dict(json.loads(output.strip().splitlines()[-1]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failing contract test, show the container's logs."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    service = getattr(item, "funcargs", {}).get("service")
    if report.failed and isinstance(service, Service):
        report.sections.append(("container logs", service.logs()))

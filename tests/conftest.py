"""What every test folder shares: the one Docker client, and the `docker` marker by folder.

tests/service           the service on the host (no Docker)
tests/tooling           the task suite on the host (no Docker)
tests/build             builds: the build context, failed builds, the base image
tests/contract          the image contract, for any tag (`--variant`, `--image`)
tests/contract_selftest the contract fails on deliberately broken images
tests/readme            every README command, as a newcomer runs it
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from service_images import engine, housekeeping
from service_images.bench.machine import other_builds
from service_images.buildcache import BuildCache, with_descendants
from service_images.errors import ToolError
from service_images.variants import SERVICE_SOURCE

# The service's package (`app`) imports as it does in the image, wherever project.py puts it.
sys.path.insert(0, str(SERVICE_SOURCE.parent))

NEEDS_DOCKER = ("build", "contract", "contract_selftest", "readme")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        if folder in NEEDS_DOCKER:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine, or the run stops with the one-line reason and its exit code (3: unreachable)."""
    try:
        sdk = engine.client()
    except ToolError as error:
        pytest.exit(error.message, returncode=error.exit_code)
    yield sdk
    sdk.close()


@pytest.fixture(scope="session", autouse=True)
def no_build_cache_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """The build cache of the Dockerfiles tests write for themselves (broken images, fixtures, the
    write-up's own) goes with the session. The project's Dockerfiles' records stay for the
    sessions after (`invoke clean` prunes them); while another build runs nothing is pruned, as
    its records cannot be told from the tests'."""
    if not any(item.get_closest_marker("docker") for item in request.session.items):
        yield
        return
    cache = BuildCache()
    try:
        before = {record.id for record in cache.records()}
    except ToolError:  # no engine: the tests that need one say so
        yield
        return
    yield
    if other_builds():
        return
    records = cache.records()
    project = {record.id for record in cache.ours(housekeeping.project_dockerfiles(), records)}
    added = [record for record in records if record.id not in before]
    cache.prune(with_descendants(added, (r.id for r in added if r.id not in project)))

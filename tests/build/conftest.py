"""A real registry for the tests that push: Debian's docker-registry on 127.0.0.1, removed after.

The package is not installed here: on a machine with systemd it would also enable a registry
service listening on every interface. `.ci/run` installs it on the CI machine (no init system, so
nothing starts); elsewhere the tests that push skip, saying what to install.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from service_images import registry
from service_images.errors import RegistryUnavailable


@pytest.fixture(scope="session")
def local_registry() -> Iterator[str]:
    """HOST:PORT of a registry that lives for the session (plain HTTP, loopback only)."""
    if not shutil.which(registry.REGISTRY_BINARY):
        pytest.skip(f"no {registry.REGISTRY_BINARY}: `apt-get install docker-registry` (Debian)")
    try:
        with registry.serve() as address:
            yield address
    except RegistryUnavailable as error:  # the binary is there: not starting it is a failure
        pytest.fail(error.message)

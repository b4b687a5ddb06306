"""A real registry for the tests that push: Debian's docker-registry on 127.0.0.1, removed after.

Where the binary is missing and this is a root Debian/Ubuntu machine, the fixture installs the
package (it is small and has no daemon of its own to start); elsewhere those tests skip, saying
what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from service_images import registry
from service_images.errors import RegistryUnavailable

PACKAGE = "docker-registry"


def install_registry() -> str | None:
    """Install Debian's docker-registry where we may; None on success, else why not."""
    if shutil.which(registry.REGISTRY_BINARY):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"no {registry.REGISTRY_BINARY}: `apt-get install -y {PACKAGE}` as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE]
    for attempt in (install, ["apt-get", "update", "-qq"], install):
        done = subprocess.run(attempt, env=env, capture_output=True, text=True, check=False)
        if done.returncode == 0 and attempt is install and shutil.which(registry.REGISTRY_BINARY):
            return None
    return f"`apt-get install {PACKAGE}` failed: {done.stderr.strip()[-200:]}"


@pytest.fixture(scope="session")
def local_registry() -> Iterator[str]:
    """HOST:PORT of a registry that lives for the session (plain HTTP, loopback only)."""
    if reason := install_registry():
        pytest.skip(reason)
    try:
        with registry.serve() as address:
            yield address
    except RegistryUnavailable as error:
        pytest.skip(error.message)

"""A private engine runs beside the machine's without touching its network, and leaves nothing:
no bridge, no firewall rule, no directory, no mount. What a killed owner left of one, or of a
loopback registry, goes with the next one started."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from service_images import engine, private_engine, registry, scratch
from service_images.variants import DEFAULT_BASE_IMAGE


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def echo(sdk: docker.DockerClient, text: str) -> str:
    return bytes(sdk.containers.run(DEFAULT_BASE_IMAGE, ["echo", text], remove=True)).decode()


def test_side_by_side_and_gone_without_a_trace(docker_client: docker.DockerClient) -> None:
    with private_engine.running("overlay2") as private:
        private.load(DEFAULT_BASE_IMAGE)
        with private.activated():
            assert engine.facts(engine.client()).store == "overlay2"
            assert echo(engine.client(), "private") == "private\n"
        assert echo(docker_client, "machine") == "machine\n", "the machine's engine broke"
        assert private.bridge in run("iptables-save"), "dockerd added no rule for its bridge"
    assert not private.root.exists()
    assert private.bridge not in run("ip", "-o", "link", "show")
    assert private.bridge not in run("iptables-save"), "firewall rules left behind"
    assert str(private.root) not in Path("/proc/self/mounts").read_text()
    assert echo(docker_client, "still") == "still\n"


KILLED_OWNER = """
import os, signal
from service_images import private_engine
with private_engine.running("overlay2") as private:
    print(private.root, private.bridge, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_a_killed_owner_left_goes_with_the_next_private_engine() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", KILLED_OWNER], capture_output=True, text=True, check=False
    )
    assert ran.returncode == -9, ran.stderr
    root, bridge = ran.stdout.split()
    dockerd = int(Path(root, "dockerd.pid").read_text())
    assert scratch.alive(dockerd), "the killed owner's dockerd should outlive it"
    with private_engine.running("overlay2"):
        assert not Path(root).exists()
        assert not scratch.alive(dockerd)
        assert bridge not in run("ip", "-o", "link", "show")
        assert bridge not in run("iptables-save"), "firewall rules left behind"
        assert root not in Path("/proc/self/mounts").read_text()


KILLED_REGISTRY_OWNER = """
import os, signal, tempfile
from pathlib import Path
from service_images import project, registry
with registry.serve():
    for workdir in Path(tempfile.gettempdir()).glob(project.NAME + "-registry-*"):
        if (workdir / ".owner").read_text().split()[0] == str(os.getpid()):
            print(workdir, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_a_killed_owner_left_of_a_registry_goes_with_the_next() -> None:
    if not shutil.which(registry.REGISTRY_BINARY):
        pytest.skip(f"no {registry.REGISTRY_BINARY}: `apt-get install docker-registry` (Debian)")
    ran = subprocess.run(
        [sys.executable, "-c", KILLED_REGISTRY_OWNER], capture_output=True, text=True, check=False
    )
    assert ran.returncode == -9, ran.stderr
    workdir = Path(ran.stdout.strip())
    server = int((workdir / "registry.pid").read_text())
    assert scratch.alive(server), "the killed owner's registry should outlive it"
    with registry.serve():
        assert not workdir.exists()
        assert not scratch.alive(server)

"""A private engine runs beside the machine's without touching its network, and leaves nothing:
no bridge, no firewall rule, no directory, no mount."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker

from service_images import engine, private_engine
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

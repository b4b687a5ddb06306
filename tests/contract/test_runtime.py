"""The running container, as testinfra reads it: the service's process, user, socket, files and
environment (one exec each; the bulk checks of what is installed are the probe's)."""

from __future__ import annotations

from typing import Any

import pytest
import testinfra
from conftest import Emulation

from service_images.containers import Service

SERVICE_UID = 10001
SERVICE_PORT = 8000
# What the build passes and must not stay in the image's environment.
BUILD_ONLY = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "UV_", "PIP_")
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY")


@pytest.fixture(scope="module")
def root(service: Service) -> Any:
    """The container as root reads it (every directory), for the filesystem checks."""
    return testinfra.get_host(f"docker://root@{service.container.id}")


def status(host: Any, pid: int = 1) -> dict[str, str]:
    lines = host.file(f"/proc/{pid}/status").content_string.splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def listening_ports(host: Any) -> set[int]:
    """TCP ports in state LISTEN (0A), IPv4 and IPv6: the image carries no ss or netstat."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in host.file(table).content_string.splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            if state == "0A":
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def command_line(host: Any, emulation: Emulation, pid: int = 1) -> list[str]:
    """The process's argv. Under QEMU user emulation (binfmt_misc's P flag), the kernel starts
    the emulator with the program's path, then the program's own argv."""
    argv = host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    return argv[2:] if emulation.active and "qemu" in argv[0] else argv


def test_the_service_process_runs_as_the_service_user(host: Any, emulation: Emulation) -> None:
    uids = status(host)["Uid"].split()[:2]
    assert uids == [str(SERVICE_UID)] * 2, uids
    assert command_line(host, emulation)[:3] == ["python", "-m", "app"]
    user = host.user()
    assert (user.uid, user.name) == (SERVICE_UID, "app")


def test_only_the_service_port_listens(host: Any) -> None:
    assert listening_ports(host) == {SERVICE_PORT}


def test_the_service_cannot_change_its_code_or_its_packages(root: Any) -> None:
    """Nothing under /app or /opt/venv is the service user's or writable by group or others
    (by mode: the session's root filesystem is read-only, which hides a writable one)."""
    found = root.run(
        f"find /app /opt/venv \\( -uid {SERVICE_UID} -o -perm -g+w -o -perm -o+w \\) "
        "! -type l -print | head -20"
    ).stdout.split()
    assert not found, f"the service can change: {found}"


def test_no_setuid_or_setgid_program(root: Any) -> None:
    found = root.run("find / -xdev -type f -perm /6000 -print 2>/dev/null").stdout.split()
    assert not found, f"setuid/setgid programs: {found}"


def test_the_service_s_environment_holds_no_build_setting_or_secret(host: Any) -> None:
    environment = dict(
        item.split("=", 1)
        for item in host.file("/proc/1/environ").content_string.split("\0")
        if "=" in item
    )
    assert environment["PYTHONPATH"] == "/app"
    assert environment["PATH"].startswith("/opt/venv/bin:")
    leaked = sorted(
        name
        for name in environment
        if name.startswith(BUILD_ONLY) or any(word in name for word in SECRET_WORDS)
    )
    assert not leaked, f"in the service's environment: {leaked}"

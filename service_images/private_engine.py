"""A throwaway Docker engine beside the machine's own, for the duration of a `with` block.

It proves what one engine cannot: the other image store, a clean engine that never built our
images (a registry cache, a pull, a reproducible rebuild). It is the same dockerd binary with its
own data root, exec root (so its own managed containerd), pid file, socket and network bridge: a
dockerd started with `--bridge=none` would delete the default `docker0` and break `docker run` on
the machine's engine. On the way out it stops, and everything it made goes: its directories, its
bridge and the firewall rules dockerd added for that bridge; the next private engine sweeps
those of one whose owner was killed (service_images/scratch.py). It needs root, as dockerd does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from service_images import engine, ledger, scratch
from service_images.errors import EngineUnavailable

STORES = ("containerd", "overlay2")
PREFIX = "service-images-engine-"
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")  # one /24 of it per private engine
START_DEADLINE_S = 60
STOP_DEADLINE_S = 30


@dataclass(frozen=True)
class PrivateEngine:
    host: str
    """Its DOCKER_HOST: unix://<root>/docker.sock."""
    store: str
    root: Path
    bridge: str
    """Its network bridge's name (the machine's engine keeps docker0)."""

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def load(self, image: str, source: Mapping[str, str] | None = None) -> None:
        """Copy `image` from the engine `source` names (default: this process's) into this one,
        as `docker save | docker load` (a registry would serve it to a real clean machine)."""
        saved = subprocess.Popen(
            ["docker", "save", image],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(source or {})},
        )
        assert saved.stdout is not None
        loaded = subprocess.run(
            ["docker", "load", "--quiet"],
            stdin=saved.stdout,
            capture_output=True,
            env={**os.environ, **self.env()},
            check=False,
        )
        saved.stdout.close()
        _, error = saved.communicate()
        if saved.returncode != 0 or loaded.returncode != 0:
            reason = (error or loaded.stderr).decode(errors="replace").strip()
            raise EngineUnavailable(f"could not copy {image} into a private engine: {reason}")

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """DOCKER_HOST points at this engine in this process (the SDK and the CLI both read it)."""
        before = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = self.host
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = before


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNETS that no network of this machine overlaps."""
    listed = _run("ip", "-4", "-o", "addr", "show").stdout.split()
    used = [ipaddress.ip_interface(word).network for word in listed if "/" in word and "." in word]
    free = [net for net in SUBNETS.subnets(new_prefix=24) if not any(net.overlaps(u) for u in used)]
    if not free:
        raise EngineUnavailable(f"no free /24 in {SUBNETS} for a private engine's bridge.")
    return free[secrets.randbelow(len(free))]


def _check_can_start() -> str:
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("ip") is None:
        raise EngineUnavailable(
            "a private engine needs dockerd and ip on PATH (scripts/bootstrap.sh installs dockerd)."
        )
    if os.geteuid() != 0:
        raise EngineUnavailable("a private engine needs root, as dockerd does.")
    return dockerd


@contextlib.contextmanager
def running(store: str = "containerd") -> Iterator[PrivateEngine]:
    """A private engine on `store` (containerd or overlay2); removed with all it made."""
    if store not in STORES:
        raise EngineUnavailable(
            f"unknown image store {store!r}: choose one of {', '.join(STORES)}."
        )
    dockerd = _check_can_start()
    with scratch.directory(PREFIX, reap=_reap) as root:
        bridge = f"sie{secrets.token_hex(4)}"  # at most 15 characters, as Linux wants
        (root / "bridge").write_text(bridge)
        process: subprocess.Popen[bytes] | None = None
        engine_id = ""
        try:
            subnet = _free_subnet()
            for command in (
                ("ip", "link", "add", bridge, "type", "bridge"),
                (
                    "ip",
                    "addr",
                    "add",
                    f"{subnet.network_address + 1}/{subnet.prefixlen}",
                    "dev",
                    bridge,
                ),
                ("ip", "link", "set", bridge, "up"),
            ):
                if (done := _run(*command)).returncode != 0:
                    raise EngineUnavailable(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
            config = root / "daemon.json"
            config.write_text(
                json.dumps({"features": {"containerd-snapshotter": store == "containerd"}})
            )
            private = PrivateEngine(f"unix://{root}/docker.sock", store, root, bridge)
            with (root / "dockerd.log").open("wb") as log:
                process = subprocess.Popen(
                    [
                        dockerd,
                        f"--config-file={config}",
                        f"--data-root={root / 'data'}",
                        f"--exec-root={root / 'exec'}",
                        f"--pidfile={root / 'dockerd.pid'}",
                        f"--host={private.host}",
                        f"--bridge={bridge}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal reaches us, not it
                )
            engine_id = _wait_until_up(private, process)
            yield private
        finally:
            if process is not None:
                _stop(process)
            if engine_id:
                ledger.drop_engine(engine_id)
            _forget_network(bridge)
            _unmount_under(root)


def _reap(root: Path) -> None:
    """What the engine of a killed owner left: its dockerd (which stops its containerd), bridge
    and firewall rules, mounts. scratch.directory then removes its directory."""
    scratch.stop_recorded(root / "dockerd.pid", f"--data-root={root / 'data'}")
    with contextlib.suppress(OSError):
        _forget_network((root / "bridge").read_text().strip())
    _unmount_under(root)


def _wait_until_up(private: PrivateEngine, process: subprocess.Popen[bytes]) -> str:
    """Its engine id, once it answers."""
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline and process.poll() is None:
        answer = engine.cli("info", "--format", "{{.ID}}", env=private.env())
        if answer.returncode == 0 and answer.stdout.strip():
            return answer.stdout.strip()
        time.sleep(0.2)
    lines = (private.root / "dockerd.log").read_text(errors="replace").strip().splitlines()
    raise EngineUnavailable(
        f"a private engine did not answer within {START_DEADLINE_S} s: " + " | ".join(lines[-3:])
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an init system stops dockerd (it stops its containers and containerd), then
    SIGKILL for the whole session if it hangs."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _forget_network(bridge: str) -> None:
    """The bridge, and the rules dockerd added for it (it leaves them when it stops)."""
    for table in ("filter", "nat"):
        rules = _run("iptables", "-t", table, "-S").stdout.splitlines()
        for rule in rules:
            if rule.startswith("-A ") and f" {bridge} " in f"{rule} ":
                _run("iptables", "-t", table, "-D", *rule.split()[1:])
    _run("ip", "link", "delete", bridge)


def _unmount_under(root: Path) -> None:
    """Mounts a killed dockerd or containerd left (overlays, shm), deepest first."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, key=len, reverse=True):
        _run("umount", "--lazy", point)

"""`invoke clean` removes what this checkout made and nothing else, on a private engine.

The engine holds, beside this checkout's CI image (built by `invoke build-ci`), what is not ours:
a tag the user put on our image, an unrelated image, a running container of another checkout of
the project, and another build's cache (a cache mount and a step). All of it must survive, and a
running container of ours goes only with `--running`, the bootstrapped base only with `--base`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from service_images import buildcache, engine, housekeeping, ledger, private_engine
from service_images.private_engine import PrivateEngine
from service_images.variants import DEFAULT_BASE_IMAGE, PROJECT_LABEL, ROOT, VARIANTS

INVOKE = str(Path(sys.executable).with_name("invoke"))
FOREIGN = """\
FROM {base}
RUN --mount=type=cache,id=someone-else,target=/root/.cache/other echo not ours {marker}
RUN echo another build step {marker}
"""


def run(on: PrivateEngine, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env={**os.environ, **on.env()}, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateEngine]:
    with private_engine.running("containerd") as private:
        private.load(DEFAULT_BASE_IMAGE)
        built = run(private, INVOKE, "build-ci")
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr
        marker = secrets.token_hex(4)
        foreign = tmp_path_factory.mktemp("foreign")
        (foreign / "Dockerfile").write_text(FOREIGN.format(base=DEFAULT_BASE_IMAGE, marker=marker))
        for command in (
            ("docker", "tag", VARIANTS["ci"].tag, "mine:kept"),
            ("docker", "tag", DEFAULT_BASE_IMAGE, "unrelated:1"),
            ("docker", "buildx", "build", "--load", "--tag", "foreign:1", str(foreign)),
            ("docker", "rmi", "foreign:1"),  # its build cache stays
        ):
            assert run(private, *command).returncode == 0, command
        with private.activated():
            sdk = engine.client()
            other = {PROJECT_LABEL: "true", ledger.CHECKOUT_LABEL: "another-checkout"}
            ours = {PROJECT_LABEL: "true", **ledger.container_labels()}
            sdk.containers.run(DEFAULT_BASE_IMAGE, ["sleep", "600"], detach=True, labels=other)
            sdk.containers.run(DEFAULT_BASE_IMAGE, ["sleep", "600"], detach=True, labels=ours)
            sdk.containers.create(VARIANTS["ci"].tag, labels=ours)  # stopped, left by a crash
            # As `invoke base-image` records the base it bootstraps.
            base_id = str(sdk.images.get(DEFAULT_BASE_IMAGE).id)
            ledger.record_image(engine.engine_id(sdk), DEFAULT_BASE_IMAGE, base_id)
        yield private


@dataclass(frozen=True)
class State:
    tags: set[str]
    containers: set[tuple[str | None, str]]
    """(checkout label, status) of each container."""
    mounts: set[str]
    """Cache mount ids."""
    foreign_steps: set[str]
    ours: set[str]
    """Ids of the records of the project's Dockerfiles (mutable ones included)."""


def state(on: PrivateEngine) -> State:
    with on.activated():
        sdk = engine.client()
        cache = buildcache.BuildCache()
        records = cache.records()
        return State(
            tags={tag for image in sdk.images.list() for tag in image.tags},
            containers={
                (c.labels.get(ledger.CHECKOUT_LABEL), c.status)
                for c in sdk.containers.list(all=True)
            },
            mounts={record.mount_id for record in records if record.mount_id},
            foreign_steps={r.description for r in records if "another build step" in r.description},
            ours={r.id for r in cache.ours(housekeeping.project_dockerfiles(), records)},
        )


def test_clean_leaves_what_is_not_ours(machine: PrivateEngine) -> None:
    assert state(machine).mounts == {"python-ai-service-uv", "someone-else"}
    cleaned = run(machine, INVOKE, "clean")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    after = state(machine)
    mine = ledger.checkout_id()
    assert VARIANTS["ci"].tag not in after.tags, "our tag stays"
    assert {"mine:kept", "unrelated:1", DEFAULT_BASE_IMAGE} <= after.tags
    assert after.containers == {("another-checkout", "running"), (mine, "running")}
    assert after.mounts == {"someone-else"}, "the foreign cache mount went, or ours stayed"
    assert after.foreign_steps, "another build's step record went"
    assert after.ours == set(), "records of ours stayed (a step's mutable record, say)"
    with machine.activated():
        kept = engine.client().images.get("mine:kept")
        assert kept.labels.get("io.python-ai-service.variant") == "ci", "the user's tag was moved"


def test_running_and_base_go_only_when_asked(machine: PrivateEngine) -> None:
    cleaned = run(machine, INVOKE, "clean", "--running", "--base")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    after = state(machine)
    assert after.containers == {("another-checkout", "running")}
    assert DEFAULT_BASE_IMAGE not in after.tags
    assert "unrelated:1" in after.tags, "a tag of the base's image that is not ours went"
    with machine.activated(), pytest.raises(docker.errors.ImageNotFound):
        engine.client().images.get(VARIANTS["ci"].tag)

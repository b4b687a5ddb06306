"""The image contract must fail on an image that breaks it, and say what is wrong.

Each case builds a small image FROM the CI image with one thing broken, runs the contract suite
against it (only the tests that guard that thing), and expects a failure naming the problem.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from service_images import contract, engine
from service_images.build import CA_SECRET_ID, resolve_ca_bundle
from service_images.variants import ROOT, VARIANTS

SITE = '"$(python -c "import sysconfig; print(sysconfig.get_paths()[\'purelib\'])")"'
# The service as the image starts it, but every body it parses keeps 3 MiB (up to 300 MiB).
LEAKY_SERVICE = """
import runpy, sys, app.api.work as work
kept, on_body = [], work.Work.on_body
async def leaky(self, *args):
    len(kept) < 100 and kept.append(b'x' * (3 << 20))
    return await on_body(self, *args)
work.Work.on_body = leaky
sys.argv = ['app', '--host', '0.0.0.0', '--port', '8000']
runpy.run_module('app', run_name='__main__')
"""


@dataclass(frozen=True)
class Breakage:
    name: str
    dockerfile: str
    """Lines added after `FROM <ci image>`."""
    tests: str
    """pytest -k expression: the contract tests that guard this."""
    expected: str
    """Text the failure must contain."""
    needs_ca_bundle: bool = False


BREAKAGES = (
    Breakage(
        "fake-torch",
        f"USER root\nRUN site={SITE} && mkdir $site/torch $site/torch-2.9.1.dist-info"
        " && touch $site/torch/__init__.py $site/torch-2.9.1.dist-info/RECORD"
        " && printf 'Metadata-Version: 2.1\\nName: torch\\nVersion: 2.9.1\\n'"
        " > $site/torch-2.9.1.dist-info/METADATA\nUSER app",
        "forbidden or beyond_the_lock",
        "torch",
    ),
    Breakage("runs-as-root", "USER root", "non_root", "image user is 'root'"),
    Breakage(
        "no-pandas",
        f"USER root\nRUN site={SITE} && rm -r $site/pandas $site/pandas-*.dist-info\nUSER app",
        "locked_distribution or top_level_module",
        "pandas",
    ),
    Breakage(
        "gcc-left",
        "USER root\nRUN printf '#!/bin/sh\\n' > /usr/local/bin/gcc && chmod +x /usr/local/bin/gcc"
        "\nUSER app",
        "build_tools",
        "gcc",
    ),
    Breakage(
        "pip-cache-left",
        "USER root\nRUN mkdir -p /root/.cache/pip/http && echo cached > /root/.cache/pip/http/x"
        "\nUSER app",
        "caches",
        "/root/.cache/pip",
    ),
    Breakage(
        "ca-bundle-copied",
        f"USER root\nRUN --mount=type=secret,id={CA_SECRET_ID} cp /run/secrets/{CA_SECRET_ID}"
        " /opt/bundle\nUSER app",
        "ca_bundle",
        "CA certificates are in the image's layers",
        needs_ca_bundle=True,
    ),
    Breakage(
        "wrong-revision",
        "LABEL org.opencontainers.image.revision=0000000",
        "oci_labels",
        "0000000",
    ),
    Breakage("no-healthcheck", "HEALTHCHECK NONE", "healthcheck", "NONE"),
    Breakage(
        "setuid-left",
        "USER root\nRUN chmod u+s /usr/bin/find\nUSER app",
        "setuid",
        "/usr/bin/find",
    ),
    Breakage(
        "app-writable",
        "USER root\nRUN chmod -R o+w /app/app\nUSER app",
        "cannot_change_its_code",
        "/app/app",
    ),
    Breakage(
        "second-listener",
        'CMD ["sh", "-c", "python -m http.server 9000 >/dev/null 2>&1 & '
        'exec python -m app --host 0.0.0.0 --port 8000"]',
        "only_the_service_port",
        "9000",
    ),
    Breakage(
        "secret-in-environment",
        "ENV API_TOKEN=not-a-real-token",
        "environment_holds",
        "API_TOKEN",
    ),
    Breakage(
        "leaks-memory",
        f"CMD {json.dumps(['python', '-c', LEAKY_SERVICE])}",
        "memory_growth",
        "memory after the abuse",
    ),
    Breakage(
        "ignores-sigterm",
        'CMD ["sh", "-c", "python -m app --host 0.0.0.0 --port 8000 & wait"]',
        "sigterm",
        "after SIGTERM",
    ),
    Breakage(
        "slow-start",
        'CMD ["sh", "-c", "sleep 32 && exec python -m app --host 0.0.0.0 --port 8000"]',
        "start_period",
        "start period",
    ),
    Breakage(
        "writes-outside-tmp",
        'CMD ["sh", "-c", "touch /app/started && exec python -m app --host 0.0.0.0 --port 8000"]',
        "hardened",
        "Read-only file system",
    ),
)


@pytest.fixture
def broken_image(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, tmp_path: Path
) -> Iterator[str]:
    if not engine.image_exists(docker_client, VARIANTS["ci"].tag):
        pytest.fail(f"{VARIANTS['ci'].tag} is missing: build it first (invoke build-ci).")
    breakage: Breakage = request.param
    bundle = resolve_ca_bundle(None)
    if breakage.needs_ca_bundle and bundle is None:
        pytest.skip("no CA bundle on this host to leak")
    tag = f"python-ai-service:broken-{breakage.name}-{uuid.uuid4().hex[:8]}"
    (tmp_path / "Dockerfile").write_text(f"FROM {VARIANTS['ci'].tag}\n{breakage.dockerfile}\n")
    args = ["--tag", tag, str(tmp_path)]
    if bundle is not None:
        args[-1:-1] = ["--secret", f"id={CA_SECRET_ID},src={bundle}"]
    returncode, output = engine.run_build(args, echo=io.StringIO())
    assert returncode == 0, "\n".join(output[-30:])
    try:
        yield tag
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


@pytest.mark.parametrize(
    ("broken_image", "breakage"),
    [(breakage, breakage) for breakage in BREAKAGES],
    ids=[breakage.name for breakage in BREAKAGES],
    indirect=["broken_image"],
)
def test_contract_fails_and_names_the_problem(broken_image: str, breakage: Breakage) -> None:
    contract_run = subprocess.run(
        [sys.executable, *contract.pytest_args("ci", broken_image, "-k", breakage.tests, "-q")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    output = contract_run.stdout + contract_run.stderr
    assert contract_run.returncode == 1, f"the contract did not fail on {breakage.name}:\n{output}"
    assert breakage.expected in output, (
        f"the failure does not name {breakage.expected!r}:\n{output}"
    )

"""The base image is a drop-in for the official python:3.11-slim.

Where no registry is reachable, `invoke base-image` builds python:3.11-slim from Debian packages
(service_images/base_image.py). Any Dockerfile that builds on the official image must build
unchanged on that one, so two tests hold it to the official image's documented behaviour:

- `test_behaves_like_official_slim`: a table of the official image's behaviours (pip, python and
  their `3` names in /usr/local/bin; `pip install` into the system Python; `python -m venv`; a
  UTF-8 locale; CA certificates Python's ssl loads; PYTHON_VERSION; tzdata, netbase, apt-get; the
  config's LANG and CMD), each in its own throwaway container, every failure in one message.
- `test_preproject_dockerfile_builds`: the write-up's own `Dockerfile.ci` (tests/build/preproject)
  builds on it and the image imports the service's packages. Needs PyPI. That Dockerfile mounts no
  CA secret, so where a CA bundle is configured (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, PIP_CERT) its
  FROM names a throwaway image: the base plus that bundle in its trust store, removed afterwards.

Both run on whatever python:3.11-slim is here, the bootstrapped one or the official one (the
behaviours hold for both), and the test id says which. To check a candidate base before tagging it
python:3.11-slim, name it in PYTHON_AI_SERVICE_BASE_IMAGE:

    pytest tests/build/test_base_image.py      # needs a Docker engine
    PYTHON_AI_SERVICE_BASE_IMAGE=TAG pytest tests/build/test_base_image.py
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from service_images import engine
from service_images.build import resolve_ca_bundle
from service_images.errors import ToolError
from service_images.variants import DEFAULT_BASE_IMAGE, PROJECT_LABEL, ROOT

pytestmark = pytest.mark.docker

BASE_IMAGE = os.environ.get("PYTHON_AI_SERVICE_BASE_IMAGE") or DEFAULT_BASE_IMAGE
PREPROJECT = Path(__file__).parent / "preproject"
TEST_REPOSITORY = "python-ai-service-test"

# A wheel made on the spot, so `pip install` needs no index: one module and one console script.
MAKE_WHEEL = textwrap.dedent(
    """\
    import base64, hashlib, zipfile
    files = {
        "confprobe.py": "def main():\\n    print('confprobe ok')\\n",
        "confprobe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: confprobe\\n"
        "Version: 1.0\\n",
        "confprobe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: conformance\\n"
        "Root-Is-Purelib: true\\nTag: py3-none-any\\n",
        "confprobe-1.0.dist-info/entry_points.txt": "[console_scripts]\\n"
        "confprobe = confprobe:main\\n",
    }
    record = []
    with zipfile.ZipFile("/tmp/confprobe-1.0-py3-none-any.whl", "w") as wheel:
        for name, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
            wheel.writestr(name, data)
        record.append("confprobe-1.0.dist-info/RECORD,,")
        wheel.writestr("confprobe-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    """
)


@dataclass(frozen=True)
class Behaviour:
    """One documented behaviour of the official image: a shell script that exits 0 when it holds."""

    name: str
    script: str


BEHAVIOURS = (
    Behaviour(
        "python, python3, pip and pip3 are /usr/local/bin's, first on PATH",
        'for c in python python3 pip pip3; do p=$(command -v "$c"); '
        '[ "$p" = "/usr/local/bin/$c" ] || { echo "$c is ${p:-not on PATH}"; exit 1; }; done',
    ),
    Behaviour(
        "python is 3.11 and PYTHON_VERSION names it",
        "python -c 'import os, platform; v = platform.python_version(); "
        'e = os.environ.get("PYTHON_VERSION"); '
        'assert v.startswith("3.11.") and v == e, f"python {v}, PYTHON_VERSION={e}"\'',
    ),
    Behaviour(
        "pip and pip3 run on that python",
        "pip --version | grep -F '(python 3.11)' && pip3 --version | grep -F '(python 3.11)' "
        "&& python -m pip --version",
    ),
    Behaviour(
        "pip installs into the system python without a venv (no EXTERNALLY-MANAGED)",
        f"python - <<'EOF'\n{MAKE_WHEEL}EOF\n"
        "pip install --no-index --no-cache-dir --disable-pip-version-check "
        "/tmp/confprobe-1.0-py3-none-any.whl "
        '&& [ "$(command -v confprobe)" = /usr/local/bin/confprobe ] && confprobe '
        "&& python -c 'import sys, confprobe; assert sys.prefix == sys.base_prefix' "
        "&& pip uninstall --yes --disable-pip-version-check confprobe",
    ),
    Behaviour(
        "setuptools and wheel are installed beside pip, as in the official 3.11 image",
        "python -c 'import setuptools, wheel, pkg_resources' && pip show --quiet setuptools wheel",
    ),
    Behaviour(
        "python -m venv makes a venv with pip",
        "python -m venv /tmp/venv && /tmp/venv/bin/python -m pip --version "
        "&& /tmp/venv/bin/python -c 'import sys; assert sys.prefix != sys.base_prefix'",
    ),
    Behaviour(
        "the locale is UTF-8 (LANG=C.UTF-8)",
        '[ "$LANG" = C.UTF-8 ] && python -c \'import locale, sys; '
        'locale.setlocale(locale.LC_ALL, ""); '
        'assert sys.getfilesystemencoding() == "utf-8", sys.getfilesystemencoding(); '
        'assert locale.getpreferredencoding(False) == "UTF-8", locale.getpreferredencoding(False); '
        'print("\\u00e9\\u20ac")\'',
    ),
    Behaviour(
        "CA certificates are installed and Python's ssl loads them",
        "[ -s /etc/ssl/certs/ca-certificates.crt ] && python -c 'import ssl; "
        "c = ssl.create_default_context(); "
        "c.load_verify_locations(ssl.get_default_verify_paths().cafile); "
        'n = c.cert_store_stats()["x509_ca"]; assert n > 50, f"{n} CA certificates"\'',
    ),
    Behaviour(
        "the stdlib's compiled modules import",
        "python -c 'import bz2, ctypes, curses, decimal, hashlib, lzma, readline, sqlite3, ssl, "
        "uuid, zlib, ensurepip, venv; hashlib.sha3_256(); ctypes.CDLL(None)'",
    ),
    Behaviour(
        "time zones and service names resolve (tzdata, netbase)",
        'python -c \'import socket, zoneinfo; zoneinfo.ZoneInfo("Europe/Berlin"); '
        'assert socket.getservbyname("https", "tcp") == 443\'',
    ),
    Behaviour(
        "apt-get and a POSIX shell are there for RUN steps",
        "command -v apt-get && command -v dpkg && command -v bash",
    ),
)


def base_kind(tag: str) -> str:
    """'bootstrapped' (made by `invoke base-image`), 'official', 'absent' or 'no-engine'."""
    try:
        sdk = engine.client()
    except ToolError:
        return "no-engine"
    try:
        labels = sdk.images.get(tag).labels or {}
    except docker.errors.ImageNotFound:
        return "absent"
    finally:
        sdk.close()
    return "bootstrapped" if PROJECT_LABEL in labels else "official"


BASE_PARAM = pytest.param(BASE_IMAGE, id=f"{BASE_IMAGE}-{base_kind(BASE_IMAGE)}")


@pytest.fixture
def base(request: pytest.FixtureRequest, docker_client: docker.DockerClient) -> str:
    tag: str = request.param
    if not engine.image_exists(docker_client, tag):
        pytest.skip(f"no {tag} here: `invoke base-image` builds one")
    return tag


def run(sdk: docker.DockerClient, image: str, script: str) -> tuple[int, str]:
    """Run `sh -c SCRIPT` as the image's default user in a throwaway container."""
    container = sdk.containers.run(image, ["sh", "-c", script], detach=True, network_disabled=True)
    try:
        status = container.wait(timeout=120)
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    return int(status["StatusCode"]), output


@pytest.mark.parametrize("base", [BASE_PARAM], indirect=True)
def test_behaves_like_official_slim(base: str, docker_client: docker.DockerClient) -> None:
    failures = []
    config = docker_client.images.get(base).attrs["Config"] or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    if config.get("Cmd") != ["python3"]:
        failures.append(f"CMD is {config.get('Cmd')}, not ['python3']")
    for name in ("LANG", "PYTHON_VERSION"):
        if name not in env:
            failures.append(f"the image sets no {name} (the official image does)")
    for behaviour in BEHAVIOURS:
        status, output = run(docker_client, base, behaviour.script)
        if status != 0:
            tail = textwrap.indent("\n".join(output.strip().splitlines()[-6:]), "      ")
            failures.append(f"{behaviour.name}: exit {status}\n{tail}")
    assert not failures, f"{base} is not a drop-in python:3.11-slim:\n- " + "\n- ".join(failures)


def build(dockerfile: Path, context: Path, tag: str) -> None:
    """A BuildKit build with the project's front end, labelled as the project's."""
    args = ["--file", str(dockerfile), "--tag", tag, "--progress", "plain"]
    args += ["--label", f"{PROJECT_LABEL}=true", str(context)]
    returncode, output = engine.run_build(args)
    tail = "\n".join(output[-25:])
    assert returncode == 0, f"building {dockerfile.name} on it failed (exit {returncode}):\n{tail}"


@pytest.fixture
def throwaway_tags(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Tags the test builds; all removed at the end, whether it passed or not."""
    tags: list[str] = []
    yield tags
    for tag in reversed(tags):
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


def trusting_base(base: str, bundle: Path, work: Path, tags: list[str]) -> str:
    """A throwaway image: `base` with `bundle` added to its system trust store."""
    context = work / "trust"
    context.mkdir()
    shutil.copy(bundle, context / "host-ca.crt")
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt\n"
        "RUN update-ca-certificates\n"
    )
    tag = f"{TEST_REPOSITORY}/base-with-host-ca:{secrets.token_hex(4)}"
    tags.append(tag)
    build(context / "Dockerfile", context, tag)
    return tag


@pytest.mark.parametrize("base", [BASE_PARAM], indirect=True)
def test_preproject_dockerfile_builds(
    base: str,
    docker_client: docker.DockerClient,
    throwaway_tags: list[str],
    tmp_path: Path,
) -> None:
    # The write-up's context, ./python-ai-service: both requirement files and the service.
    context = tmp_path / "python-ai-service"
    context.mkdir()
    for name in ("requirements-ci.txt", "requirements.txt"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(
        ROOT / "python-ai-service" / "app",
        context / "app",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    original = (PREPROJECT / "Dockerfile.ci").read_text()
    assert original.count(f"FROM {DEFAULT_BASE_IMAGE}\n") == 1
    bundle = resolve_ca_bundle(None)
    parent = trusting_base(base, bundle, tmp_path, throwaway_tags) if bundle else base
    dockerfile = context / "Dockerfile.ci"
    dockerfile.write_text(original.replace(f"FROM {DEFAULT_BASE_IMAGE}\n", f"FROM {parent}\n"))

    tag = f"{TEST_REPOSITORY}/preproject-ci:{secrets.token_hex(4)}"
    throwaway_tags.append(tag)
    build(dockerfile, context, tag)
    # The write-up's own check ("Test the image").
    status, output = run(
        docker_client,
        tag,
        "python -c 'import fastapi, pandas, numpy, sklearn, uvicorn, app.main; print(\"ok\")'",
    )
    assert status == 0, f"the pre-project image cannot import the service:\n{output}"

"""Image-contract fixtures: any image tag, one container per session, always removed.

    pytest tests/contract --variant ci [--image TAG] [--revision SHA]

The contract (what must and must not be in the image) comes from the variants table and the
variant's lock file, never from lists written here.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.models.images
import pytest
import testinfra
from saved_image import SavedImage, foreign_needles, scan

from service_images.build import git, resolve_ca_bundle
from service_images.containers import Service, running
from service_images.errors import ImageMissing, ToolError
from service_images.lockfile import locked_versions
from service_images.platforms import Platform, by_architecture, host_platform
from service_images.variants import LEFTOVER_PATTERNS, VARIANTS, Variant, get_variant

# The public trust stores an image may carry: the system's, certifi's, and the copy pip vendors
# (the official python image has one). Their certificates are no evidence of the build's bundle.
OWN_TRUST_STORES = (
    "cat /etc/ssl/certs/ca-certificates.crt /usr/local/lib/python3*/*-packages/pip/_vendor/"
    "certifi/cacert.pem 2>/dev/null; "
    "python -c 'import certifi; print(open(certifi.where()).read())' 2>/dev/null; true"
)
EXEC_TIMEOUT_S = 240  # the full image imports torch and TensorFlow in one exec
STARTUP_DEADLINE_S = 90
# The session's container runs as README says production should: read-only root, only /tmp
# writable, no capabilities, no privilege escalation. Every test on it proves the image works so.
HARDENED: dict[str, Any] = {
    "read_only": True,
    "tmpfs": {"/tmp": ""},
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
}
# An image of another architecture runs under QEMU user emulation: every deadline is this many
# times longer, and time budgets are not measured (they would measure QEMU).
EMULATION_SLOWDOWN = 10
READS_BACKGROUND = {"facts", "saved_image"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("image contract")
    group.addoption(
        "--variant",
        choices=sorted(VARIANTS),
        help="Image variant whose contract to verify (the variants table's entry).",
    )
    group.addoption("--image", help="Image to verify (default: the variant's tag).")
    group.addoption(
        "--revision",
        help="Commit the image must say it was built from (default: this checkout's HEAD).",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The tests that read the background's results run once the others have, and the one that
    # stops the session's container runs last.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("stops_the_service") is not None,
            bool(READS_BACKGROUND & set(getattr(item, "fixturenames", ()))),
        )
    )
    if config.getoption("--variant"):
        return
    skip = pytest.mark.skip(reason="image contract: pass --variant ci|full (nox -s ci_image does)")
    for item in items:
        if "variant" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def variant(pytestconfig: pytest.Config) -> Variant:
    return get_variant(pytestconfig.getoption("--variant"))


@dataclass(frozen=True)
class Emulation:
    """The image's platform against the host's: native, or emulated by QEMU."""

    image: Platform
    host: Platform

    @property
    def active(self) -> bool:
        return self.image != self.host

    def scaled(self, seconds: float) -> float:
        """A deadline for this image: `seconds` natively, EMULATION_SLOWDOWN times more emulated."""
        return seconds * (EMULATION_SLOWDOWN if self.active else 1)

    def run_options(self, image: docker.models.images.Image) -> dict[str, Any]:
        """Under emulation, the image's own health check with its timings scaled (Python starts
        seconds slower under QEMU than its 3 s timeout allows); natively, nothing overridden."""
        check = image.attrs["Config"].get("Healthcheck") or {}
        if not self.active or not check.get("Test"):
            return {}
        scaled = {
            key: int(self.scaled(check[name]))
            for key, name in (
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start_period", "StartPeriod"),
            )
            if check.get(name)
        }
        return {
            "healthcheck": {"test": check["Test"], "retries": check.get("Retries", 3), **scaled}
        }

    def skip_time_budget(self, what: str) -> None:
        """Time budgets hold for native runs only: under emulation, say so and skip."""
        if self.active:
            pytest.skip(
                f"{what}: a time budget, not measured under QEMU emulation "
                f"({self.image.docker} image on a {self.host.docker} host)"
            )


@pytest.fixture(scope="session")
def emulation(pytestconfig: pytest.Config, image: docker.models.images.Image) -> Emulation:
    found = Emulation(by_architecture(str(image.attrs.get("Architecture"))), host_platform())
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if found.active and reporter is not None:
        reporter.write_line(
            f"image contract: {found.image.docker} image on a {found.host.docker} host, under QEMU "
            f"emulation: deadlines and the image's health-check timings x{EMULATION_SLOWDOWN}, "
            "time budgets skipped"
        )
    return found


@pytest.fixture(scope="session")
def locked(variant: Variant, emulation: Emulation) -> dict[str, str]:
    """What the image must hold: the lock's entries whose markers hold on its platform."""
    return locked_versions(variant.lock, emulation.image)


@pytest.fixture(scope="session")
def image(
    pytestconfig: pytest.Config, variant: Variant, docker_client: docker.DockerClient
) -> docker.models.images.Image:
    tag = pytestconfig.getoption("--image") or variant.tag
    try:
        return docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        if tag.startswith("sha256:"):  # the id a build made (nox -s ci_image)
            pytest.exit(
                f"image {tag} is no longer on this engine: another build of the same tag "
                "replaced it (the containerd store keeps no untagged image); build again.",
                returncode=ImageMissing.exit_code,
            )
        if not names_a_registry(tag):
            pytest.exit(
                f"image {tag} not found: build it (invoke build-{variant.name}) or pass --image.",
                returncode=ImageMissing.exit_code,
            )
    # An image pushed elsewhere (`invoke push` prints HOST/REPO@sha256:...): verify the very bytes
    # the registry holds, on an engine that never built them.
    try:
        return docker_client.images.pull(tag)
    except docker.errors.APIError as error:
        pytest.exit(
            f"image {tag} is neither here nor pullable: {error.explanation}",
            returncode=ImageMissing.exit_code,
        )


def names_a_registry(reference: str) -> bool:
    """HOST[:PORT]/REPO... or REPO@sha256:...: something a pull can find (not a local-only tag)."""
    first = reference.split("/", 1)[0]
    has_host = "/" in reference and ("." in first or ":" in first or first == "localhost")
    return has_host or "@sha256:" in reference


@pytest.fixture(scope="session")
def expected_revision(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--revision") or git("rev-parse", "HEAD"))


@pytest.fixture(scope="session")
def container(
    docker_client: docker.DockerClient, image: docker.models.images.Image, emulation: Emulation
) -> Iterator[Service]:
    """The one container of this session, hardened, started from the image's default CMD (not
    waited for)."""
    options = {**HARDENED, **emulation.run_options(image)}
    with running(docker_client, image.id, **options) as started:
        yield started


@dataclass(frozen=True)
class Background:
    """The contract's slow work, under way while the tests that need none of it run: `docker
    save`, and the probe once the service answers."""

    answered: Future[float]
    """Seconds from the container's start until its /health first answered."""
    probe: Future[dict[str, Any]]
    saved: Future[SavedImage]
    ca_needles: set[bytes]
    """The build's CA certificates the image's own trust stores lack (empty: nothing to find)."""


@pytest.fixture(scope="session")
def background(
    container: Service, image: docker.models.images.Image, variant: Variant, emulation: Emulation
) -> Iterator[Background]:
    bundle = resolve_ca_bundle(None)
    needles: set[bytes] = set()
    if bundle is not None:
        _, own_stores = container.run("sh", "-c", OWN_TRUST_STORES, timeout=60)
        needles = foreign_needles(bundle.read_bytes(), own_stores.encode())
    timeout = int(emulation.scaled(EXEC_TIMEOUT_S))
    with ThreadPoolExecutor(3, thread_name_prefix="contract") as pool:
        answered = pool.submit(
            container.wait_until, "answers", emulation.scaled(STARTUP_DEADLINE_S)
        )
        saved = pool.submit(scan, image.save(chunk_size=8 << 20), needles, LEFTOVER_PATTERNS)
        probe = pool.submit(run_probe_once_answered, answered, container, variant, timeout)
        yield Background(answered, probe, saved, needles)


@pytest.fixture(scope="session")
def service(
    container: Service,
    background: Background,
    emulation: Emulation,
    image: docker.models.images.Image,
) -> Service:
    """The session's container once Docker reports it `healthy`, as an orchestrator waits for it
    (once it answers, for an image without a health check; the slow reads already under way)."""
    has_check = (image.attrs["Config"].get("Healthcheck") or {}).get("Test", ["NONE"]) != ["NONE"]
    container.wait_until(
        "healthy" if has_check else "answers", emulation.scaled(STARTUP_DEADLINE_S)
    )
    return container


@pytest.fixture(scope="session")
def host(service: Service) -> Any:
    return testinfra.get_host(f"docker://{service.container.id}")


def run_probe_once_answered(
    answered: Future[float], container: Service, variant: Variant, timeout: int
) -> dict[str, Any]:
    answered.result()  # the probe would compete with the service's start-up for the CPU
    return run_probe(container, variant, timeout)


def run_probe(
    container: Service, variant: Variant, timeout: int = EXEC_TIMEOUT_S
) -> dict[str, Any]:
    """Everything the contract needs from inside the image, gathered in ONE exec."""
    request = {
        "import_all": True,
        "forbidden_modules": sorted(
            {pattern.rstrip("*-").replace("-", "_") for pattern in variant.forbidden}
        ),
        "backends": list(variant.backends),
    }
    try:
        answer = container.probe(request, timeout)
    except ToolError as error:
        pytest.fail(error.message)
    service = [d for d in answer.pop("distributions") if d["environment"] == "service"]
    answer["distributions"] = {d["name"]: d["version"] for d in service}
    answer["top_level"] = {d["name"]: d["top_level"] for d in service}
    return answer


@pytest.fixture(scope="session")
def facts(background: Background) -> dict[str, Any]:
    return background.probe.result()


@pytest.fixture(scope="session")
def saved_image(background: Background) -> SavedImage:
    return background.saved.result()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failing contract test, show the container's logs."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    service = getattr(item, "funcargs", {}).get("service")
    if report.failed and isinstance(service, Service):
        report.sections.append(("container logs", service.logs()))

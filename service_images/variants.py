"""The one table of image variants.

Everything that differs between the light CI image and the full production image lives here:
tasks.py, noxfile.py, the image-contract tests, the requirements checks and the bench all read it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from service_images import project
from service_images.errors import UnknownVariant

ROOT = Path(__file__).resolve().parent.parent
IMAGE_NAME = project.NAME
SERVICE_SOURCE = ROOT / project.SERVICE_DIR / "app"
"""The service's code: what the Dockerfiles copy into /app/app."""
DEFAULT_BASE_IMAGE = "python:3.11-slim"
BASE_IMAGE_BUDGET_MB = 148  # `invoke base-image`: min(160, measured 134 MB + 10 %)
# Per architecture: arm64's machine code is larger (measured 158 MB, the same packages).
BASE_IMAGE_BUDGETS_MB = {"amd64": BASE_IMAGE_BUDGET_MB, "arm64": 174}  # arm64: 158 MB + 10 %

# Every image and container the project creates carries this label (what `invoke clean` removes
# is what service_images/ledger.py says this checkout made).
PROJECT_LABEL = f"{project.LABELS}.project"
VARIANT_LABEL = f"{project.LABELS}.variant"
BASE_LABEL = f"{project.LABELS}.base"
"""On the base image `invoke base-image` bootstraps (its value: the Debian release)."""
BEFORE_DOCKERFILES = ROOT / "service_images" / "before"
"""The pre-project Dockerfiles the bench measures against."""

# Distributions that must never reach the light image, directly or transitively (glob patterns on
# normalised distribution names).
HEAVY_PACKAGES = (
    "tensorflow*",
    "torch*",
    "torchvision",
    "torchaudio",
    "nvidia-*",
    "triton",
    "jax*",
)

# Neither image may carry a compiler, a build system or a VCS client into production.
BUILD_TOOLS = ("gcc", "g++", "cc", "make", "cmake", "git")
# Nor package-manager caches, or repository files that are not the service.
LEFTOVER_PATTERNS = ("*/.cache/pip", "*/.cache/uv", "/app/.git", "/app/.env*", "/app/tests")


@dataclass(frozen=True)
class Tier:
    """One install layer: the lock's packages that change about as rarely as each other.

    A tier is the dependency closure of its roots in a variant's lock, less what an earlier tier
    holds; the last tier (no roots) takes everything left. Each is its own cached RUN, so a bumped
    light package rebuilds (and a node pulls) only its own small layer.
    """

    name: str
    roots: tuple[str, ...]


# Ordered from the rarest change and biggest layer to the most frequent and smallest.
TIERS = (
    Tier("cuda-torch", ("torch", "torchvision", "torchaudio")),
    Tier("tensorflow", ("tensorflow",)),
    Tier("numeric", ("numpy", "scipy", "pandas", "scikit-learn")),
    Tier("service", ()),
)


@dataclass(frozen=True)
class Budgets:
    """Limits the bench and the image contract enforce for one variant."""

    image_mb: int
    """Image size, base included."""
    size_over_base_ratio: float
    """Our size above the base / the pre-project image's size above the base."""
    cold_build_ratio: float
    """Our cold build time / the pre-project Dockerfile's, same run."""
    peak_build_rss_mb: int
    """Peak resident memory of the build's processes (page cache excluded)."""
    health_s: float
    """Container start to `/health` answering (Docker's `healthy` waits a check interval more)."""
    rebuild_s: float | None = None
    """Rebuild after a change to service code only (None: not a target for this variant)."""
    image_ratio: float | None = None
    """Our image size / the pre-project image's (None: not a target for this variant)."""
    bump_rebuild_s: float | None = None
    """Rebuild after bumping one light dependency (the lock's last tier)."""
    bump_new_share: float | None = None
    """The bytes that rebuild adds, as a share of the image (what every node pulls again)."""
    contract_s: float | None = None
    """The contract suite on a built image (the abuse module excluded: its time is its own)."""
    health_ratio: float | None = None
    """Start to `/health` answering: ours / the pre-project image's."""
    push_ratio: float | None = None
    """Our push to a registry / the pre-project image's, same run."""
    pushed_ratio: float | None = None
    """The bytes our push sends / the pre-project image's."""
    node_start_ratio: float | None = None
    """A cold node (pull on a clean engine, start, /health answers): ours / the pre-project's."""
    release_ratio: float | None = None
    """Cold build, contract, push and a cold node's start, summed: ours / the pre-project's."""
    differing_layers: int | None = 0
    """Layers that differ between two cold builds of one commit on two clean engines."""
    memory_growth_ratio: float = 1.5
    """Container memory after the abuse suite / after start-up and one of each valid request."""
    memory_limit_mib: int | None = 1024
    """The abuse suite's container runs with this memory limit (no swap): it must not be killed.
    None: no limit."""
    slow_client_s: float = 20.0
    """An unfinished request (no bytes, partial headers, short body) is disconnected within this."""
    stop_s: float = 10.0
    """SIGTERM to the container's exit, which must be exit code 0."""


@dataclass(frozen=True)
class Variant:
    """One image: how to build it and what it must (and must not) contain."""

    name: str
    dockerfile: Path
    requirements: Path
    lock: Path
    description: str
    budgets: Budgets
    forbidden: tuple[str, ...] = ()
    """Distribution patterns that must not be installed."""
    backends: tuple[str, ...] = ()
    """Deep-learning backends the image must import and run."""
    compile_bytecode: bool = False
    """Whether the install steps compile the bytecode (the root filesystem may be read-only)."""
    constrained_by: str | None = None
    """The variant whose lock constrains this one's resolution, so shared packages agree."""
    bench_disk_gb: int = 8
    """Free disk the bench needs for this variant where the engine keeps its data (GB): the most
    its bench took, on the containerd store (which keeps every layer compressed as well; the
    classic store takes less). The full variant's took 69.4 GB, while `docker save` read the
    pre-project bump's rebuild, the ci variant's 3.8 GB (both 2026-12-07)."""

    @property
    def tag(self) -> str:
        return f"{IMAGE_NAME}:{self.name}"

    def forbids(self, distribution: str) -> bool:
        name = normalise(distribution)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.forbidden)


def normalise(distribution: str) -> str:
    """PEP 503 name: lower case, runs of `-_.` as one `-`."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant(
            name="ci",
            dockerfile=ROOT / "Dockerfile.ci",
            requirements=ROOT / "requirements-ci.txt",
            lock=ROOT / "requirements-ci.lock",
            description="light image for CI: the service without TensorFlow/PyTorch",
            forbidden=HEAVY_PACKAGES,
            constrained_by="full",
            compile_bytecode=True,
            budgets=Budgets(
                image_mb=700,
                size_over_base_ratio=0.50,
                cold_build_ratio=0.35,
                rebuild_s=3.0,
                bump_rebuild_s=4.0,
                bump_new_share=0.25,
                contract_s=8.0,
                peak_build_rss_mb=512,
                health_s=3.0,
                health_ratio=1.0,
                release_ratio=0.4,
                slow_client_s=20.0,
                stop_s=10.0,
            ),
        ),
        Variant(
            name="full",
            bench_disk_gb=70,
            dockerfile=ROOT / "Dockerfile",
            requirements=ROOT / "requirements.txt",
            lock=ROOT / "requirements.lock",
            description="production image: the service with TensorFlow and PyTorch",
            backends=("torch", "tensorflow"),
            compile_bytecode=True,
            budgets=Budgets(
                image_mb=11_000,
                size_over_base_ratio=0.9,
                cold_build_ratio=0.45,
                image_ratio=0.88,
                bump_rebuild_s=15.0,
                bump_new_share=0.03,
                peak_build_rss_mb=4096,
                health_s=10.0,
                push_ratio=0.25,
                pushed_ratio=0.85,
                node_start_ratio=0.5,
                release_ratio=0.4,
                memory_growth_ratio=1.5,
                # torch and TensorFlow loaded: about 1.5x the abuse suite's peak (git log).
                memory_limit_mib=1536,
                slow_client_s=20.0,
                stop_s=10.0,
            ),
        ),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownVariant(name, tuple(VARIANTS)) from None

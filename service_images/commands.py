"""The commands a user runs, in ONE list: README.md's command table is rendered from it and the
README smoke test (tests/readme/) runs every entry, so a command cannot go undocumented or untested.

`smoke` is how the smoke test runs a command whose real run is too long or changes the machine
(a full build, `invoke clean`): its `--help`, or the same command on a small selection.
"""

from __future__ import annotations

from dataclasses import dataclass

from service_images.variants import IMAGE_NAME


@dataclass(frozen=True)
class Command:
    run: str
    """As the README shows it."""
    what: str
    smoke: str | None = None
    """What the smoke test runs instead (None: exactly `run`)."""
    exit_code: int = 0
    """What the smoke test expects it to exit with."""

    @property
    def tool_and_name(self) -> tuple[str, str]:
        """("nox", session) or ("invoke", task): which entry point this documents."""
        words = self.run.split()
        return (words[0], words[2]) if words[0] == "nox" else (words[0], words[1])


COMMANDS: tuple[Command, ...] = (
    Command(
        "nox -s ci_image",
        "build the CI image, then run its contract suite (JUnit in `reports/`)",
    ),
    Command(
        "nox -s ci_image -- --image TAG",
        "verify an existing image (built anywhere) without building; other arguments go to pytest",
        smoke=f"nox -s ci_image -- --image {IMAGE_NAME}:ci -k health_answers",
    ),
    Command(
        "nox -s full_image",
        "the same for the production image (several GB; a cold build takes minutes)",
        smoke="nox -s full_image -- --help",
    ),
    Command(
        "nox -s contract_selftest",
        "build deliberately broken images and prove the contract fails on each, naming the problem",
        smoke="nox -s contract_selftest -- -k no-healthcheck",
    ),
    Command(
        "nox -s builds",
        "tests that build: secrets stay out of the build context, a failed build names its step, "
        "the base image is a drop-in for `python:3.11-slim`, a push/pull round trip through a "
        "real loopback registry",
        smoke="nox -s builds -- -k failing_step",
    ),
    Command(
        "nox -s tests",
        "service and tooling tests on the host (no Docker)",
        smoke="nox -s tests -- tests/tooling/test_errors.py",
    ),
    Command(
        "nox -s reproducible",
        "build the CI image cold on two clean private engines and compare the manifests "
        "(exit 32 naming the first differing file)",
        smoke="nox -s reproducible -- --help",
    ),
    Command("nox -s requirements", "requirements/lock integrity (no Docker)"),
    Command(
        "nox -s lint",
        "ruff, mypy, hadolint, actionlint, zizmor and the workflow/Dependabot schemas",
        smoke="nox -s lint -- ruff",
    ),
    Command(
        "nox -s audit",
        "vulnerability audit of both locks (exit 11 where the vulnerability service cannot answer)",
        smoke="nox -s audit -- --help",
    ),
    Command(
        "nox -s verify -- REPO@sha256:... --key cosign.pub",
        "`invoke verify` in a nox session (not in the default run)",
        smoke="nox -s verify -- --help",
    ),
    Command(
        "nox -s readme_commands",
        "run every command of this table the way the smoke test does (CI runs it)",
        smoke="nox -s readme_commands -- --collect-only -q",
    ),
    Command(
        "nox -s bench",
        "`invoke bench` in a nox session (not in the default run)",
        smoke="nox -s bench -- --help",
    ),
    Command("invoke build-ci", "build the CI image"),
    Command("invoke build-full", "build the production image", smoke="invoke build-full --help"),
    Command("invoke build", "build both images", smoke="invoke build --help"),
    Command(
        "invoke test-image --variant ci",
        "run the contract suite on an existing image (`--image TAG`; `--variant full`)",
    ),
    Command(
        "invoke base-image",
        "build a `python:3.11-slim` equivalent from Debian packages (no registry needed)",
        smoke="invoke base-image --help",
    ),
    Command(
        "invoke doctor", "can this machine build? engine, BuildKit, base image, CA bundle, disk"
    ),
    Command(
        "invoke clean",
        "remove what this checkout created and nothing else: the tags it set while they name "
        "its images, its stopped containers (`--running`: running ones too), the project's "
        "build cache, the files of builds killed outright (`--base`: the base it bootstrapped)",
        smoke="invoke clean --help",
    ),
    Command(
        "invoke lock",
        "hash-pinned locks from both requirement files; the builds' backends, uv, binutils too",
        smoke="invoke lock --help",
    ),
    Command(
        "invoke bench",
        "measure both images against the pre-project Dockerfiles in one run (`--variant ci`)",
        smoke="invoke bench --help",
    ),
    Command(
        "invoke push --variant ci --registry HOST:PORT",
        "push an image; print and write (`reports/push-<variant>.json`) its digest and "
        "compressed bytes",
        smoke="invoke push --help",
    ),
    Command(
        "invoke sbom --variant ci",
        "CycloneDX SBOM of what the image holds (`reports/sbom-<variant>.cdx.json`), checked "
        "against its lock",
        smoke="invoke sbom --variant ci --output reports/sbom-ci.cdx.json",
    ),
    Command(
        "invoke sign --image REPO@sha256:... --key cosign.key",
        "sign a pushed image by its digest with cosign and attest its SBOM (`invoke sbom`'s, "
        "checked against the lock first); keyless (the CI job's OIDC identity) without `--key`",
        smoke="invoke sign --help",
    ),
    Command(
        "invoke verify REPO@sha256:... --key cosign.pub",
        "verify a pushed image: the signer's signature (exit 33 none, 34 another signer's), its "
        "SBOM attestation against the lock (18), a tag with `--digest` still naming it (35), "
        "BuildKit provenance where present (36); keyless with `--certificate-identity-regexp`",
        smoke="invoke verify --help",
    ),
    Command(
        "invoke scan-coverage",
        "every distribution in the full image is seen by the CI image's scan or the full lock's "
        "audit (each gap listed)",
        smoke="invoke scan-coverage --help",
    ),
    Command(
        "invoke dockerfiles",
        "render the Dockerfiles' tier blocks from the variants table and the locks (`--check` "
        "only compares; `nox -s lint` does)",
        smoke="invoke dockerfiles --check",
    ),
    Command(
        "invoke readme",
        "regenerate README.md's generated sections (`--check` only compares)",
        smoke="invoke readme --check",
    ),
)

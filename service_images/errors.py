"""Errors a user can act on, and the one table of exit codes.

Each error is one line saying what is wrong and what to do, and exits with its own code, the same
from invoke, nox and `python -m service_images...` (`service_images.cli.user_errors` does that).
README.md's exit-code table is rendered from `EXIT_CODES`; a test keeps them equal.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable


class ToolError(Exception):
    """A failure with a one-line explanation for the user and a distinct exit code."""

    exit_code = 1
    meaning = "a check failed (a contract or tooling test, a linter) or an error not listed here"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownVariant(ToolError):
    exit_code = 2
    meaning = "unknown image variant"

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown image variant {name!r}: choose one of {', '.join(known)}.")


class EngineUnreachable(ToolError):
    exit_code = 3
    meaning = "Docker engine unreachable (start it: `scripts/bootstrap.sh`, or set `DOCKER_HOST`)"


class BuildKitMissing(ToolError):
    exit_code = 4
    meaning = "no BuildKit (install the buildx plugin: `scripts/bootstrap.sh` does)"


class MissingFile(ToolError):
    exit_code = 5
    meaning = "a Dockerfile, requirements or lock file, or a tool the task needs, is missing"


class BaseImageMissing(ToolError):
    exit_code = 6
    meaning = "base image neither present nor pullable (`invoke base-image`)"


class BadCABundle(ToolError):
    exit_code = 7
    meaning = "the CA bundle path is not a file"


class BuildFailed(ToolError):
    exit_code = 8
    meaning = "the build failed (the failing step and its last lines are shown)"


class RequirementsProblem(ToolError):
    exit_code = 9
    meaning = "requirements/locks problem (every problem is listed)"


class BudgetExceeded(ToolError):
    exit_code = 10
    meaning = "a budget of the variants table exceeded (bench, base image)"


class AuditUnavailable(ToolError):
    exit_code = 11
    meaning = "the vulnerability service is unreachable (nothing was checked, so no verdict)"


class DoctorFailed(ToolError):
    exit_code = 12
    meaning = "`invoke doctor` found something that blocks a build"


class ServiceNotReady(ToolError):
    exit_code = 13
    meaning = "a container of the image did not start serving (its logs are shown)"


class OutOfDate(ToolError):
    exit_code = 14
    meaning = (
        "a generated part (README.md's sections, the Dockerfiles' tier blocks) is missing or out "
        "of date (`invoke readme`, `invoke dockerfiles`)"
    )


class VulnerabilitiesFound(ToolError):
    exit_code = 15
    meaning = "known vulnerabilities in a lock (each one is listed)"


class PushFailed(ToolError):
    exit_code = 16
    meaning = (
        "a push to (or a manifest read from) the registry failed (the engine's reason is shown)"
    )


class RegistryUnavailable(ToolError):
    exit_code = 17
    meaning = "no local registry could be started (`apt-get install docker-registry`)"


class SbomMismatch(ToolError):
    exit_code = 18
    meaning = "an image's SBOM differs from its lock (every difference is listed)"


class ScanCoverageGap(ToolError):
    exit_code = 19
    meaning = "a distribution in the full image is covered by no scan (each one is listed)"


class ImageMissing(ToolError):
    exit_code = 20
    meaning = "the image is not on this engine (build or pull it first)"


class UnknownPlatform(ToolError):
    exit_code = 21
    meaning = "unknown platform (the images are built for linux/amd64 and linux/arm64)"

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown platform {name!r}: choose one of {', '.join(known)}.")


class EmulationUnavailable(ToolError):
    exit_code = 22
    meaning = "a foreign platform, and no QEMU emulation registered for it (`scripts/bootstrap.sh`)"


class EngineError(ToolError):
    exit_code = 23
    meaning = "the Docker engine failed a request (its reason is shown, e.g. no space left)"


class IndexUnreachable(ToolError):
    exit_code = 24
    meaning = (
        "a package index or Debian's archive is unreachable (check the network or proxy; nothing "
        "was written)"
    )


class EngineUnavailable(ToolError):
    exit_code = 25
    meaning = (
        "no private engine could be started (it needs root and dockerd: `scripts/bootstrap.sh`)"
    )


class WriteFailed(ToolError):
    exit_code = 26
    meaning = "a file could not be written (its path is named; what was done before is printed)"


class BadOption(ToolError):
    exit_code = 27
    meaning = "an option's value is not one the command accepts (the accepted values are shown)"


class Busy(ToolError):
    exit_code = 28
    meaning = (
        "the same command is already running in this checkout (the run that holds it is named)"
    )


class DiskShort(ToolError):
    exit_code = 29
    meaning = (
        "too little free disk: before the work (what it needs and what is free are shown), "
        "or the disk filled up during it"
    )


def disk_filled(error: OSError) -> DiskShort | None:
    """The one-line error for a write that found the disk full; None for any other OSError."""
    if error.errno != errno.ENOSPC:
        return None
    return DiskShort(
        f"the disk filled up ({error.filename or error.strerror}): free some "
        "(`docker system df`, `invoke clean`), then run it again."
    )


class NotReproducible(ToolError):
    exit_code = 32
    meaning = "two builds of one commit differ (the first differing file is named)"


class Unsigned(ToolError):
    exit_code = 33
    meaning = "no signature, or no signed SBOM attestation, for the image's digest (`invoke sign`)"


class WrongSigner(ToolError):
    exit_code = 34
    meaning = "the image is signed or attested, but not by the key or identity given"


class Tampered(ToolError):
    exit_code = 35
    meaning = "the tag names another digest than the one expected (it was moved after signing)"


class ProvenanceMismatch(ToolError):
    exit_code = 36
    meaning = "the image's build provenance names another commit or repository than its labels"


class SigningFailed(ToolError):
    exit_code = 37
    meaning = "cosign could not sign, attest or read signatures (its reason is shown)"


class Interrupted(ToolError):
    exit_code = 130
    meaning = "interrupted (Ctrl-C, SIGTERM): what the command had started is stopped and removed"


# The one table: README.md's exit codes are rendered from it, and a test checks that every
# ToolError the package defines is here with a code of its own.
EXIT_CODES: tuple[type[ToolError], ...] = (
    ToolError,
    UnknownVariant,
    EngineUnreachable,
    BuildKitMissing,
    MissingFile,
    BaseImageMissing,
    BadCABundle,
    BuildFailed,
    RequirementsProblem,
    BudgetExceeded,
    AuditUnavailable,
    DoctorFailed,
    ServiceNotReady,
    OutOfDate,
    VulnerabilitiesFound,
    PushFailed,
    RegistryUnavailable,
    SbomMismatch,
    ScanCoverageGap,
    ImageMissing,
    UnknownPlatform,
    EmulationUnavailable,
    EngineError,
    IndexUnreachable,
    EngineUnavailable,
    WriteFailed,
    BadOption,
    Busy,
    DiskShort,
    NotReproducible,
    Unsigned,
    WrongSigner,
    Tampered,
    ProvenanceMismatch,
    SigningFailed,
    Interrupted,
)

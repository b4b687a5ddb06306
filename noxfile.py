"""Sessions that build and verify the service's images (`nox -l`).

`nox -s ci_image` is the main job: build the light CI image, then prove its contract.
`nox` alone runs the default sessions: everything CI runs. A tool error (engine down, a failed
build, ...) exits with the same code as the invoke task would (README, "When something is wrong").
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nox

from service_images import audit as dependency_audit
from service_images import contract, runlock, signing, verification
from service_images import dockerfiles as generated_blocks
from service_images import reproducible as reproducibility
from service_images import requirements as requirement_checks
from service_images.build import BuildOptions, build_image
from service_images.cli import set_up, user_errors
from service_images.errors import NotReproducible, OutOfDate
from service_images.files import ensure_writable
from service_images.variants import ROOT, SERVICE_SOURCE, VARIANTS, get_variant

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
# A second run of a session must not recreate the environment under a first one: each session
# holds its lock (service_images/runlock.py) before it installs anything, and a second refuses.
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "requirements",
    "tests",
    "ci_image",
    "builds",
    "contract_selftest",
    "reproducible",
    "readme_commands",
    "full_image",
]

PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
TEST_REQUIREMENTS = nox.project.dependency_groups(PYPROJECT, "test")
REPORTS = ROOT / "reports"

set_up()


def start(session: nox.Session) -> None:
    """Hold this session's lock in this checkout, and check reports/ can be written, first."""
    with user_errors():
        runlock.hold(f"nox -s {session.name}")
        ensure_writable(REPORTS)


def junit(name: str) -> str:
    return f"--junitxml={REPORTS / f'{name}.xml'}"


def pytest(session: nox.Session, *args: str) -> None:
    """Run pytest; a tool error it exits with (engine unreachable, image missing, ...) ends the run
    with that code, as invoke would; failed tests (1) fail the session as usual."""
    try:
        session.run(*args)
    except nox.command.CommandFailed as failed:
        if failed.return_code not in (None, 1):
            raise SystemExit(failed.return_code) from None
        raise


@nox.session
def tests(session: nox.Session) -> None:
    """Run the service and tooling tests on the host (no Docker needed)."""
    start(session)
    session.install("-r", "requirements-ci.txt", *TEST_REQUIREMENTS, "-e", ".")
    args = session.posargs or ["tests/service", "tests/tooling"]
    pytest(session, "pytest", "-m", "not docker", junit("tests"), *args)


@nox.session(venv_backend="none")
def requirements(session: nox.Session) -> None:
    """Check both requirement files and locks: pins, heavy packages, drift, stale locks."""
    parser = argparse.ArgumentParser(
        prog="nox -s requirements --", description="Check the requirement files and locks."
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="where the files are")
    args = parser.parse_args(session.posargs)
    start(session)
    # In this process, with the task suite's pinned `packaging`: its exit code is the check's.
    with user_errors():
        session.log(requirement_checks.check(args.root))


def verify_image(session: nox.Session, variant_name: str) -> None:
    """Build a variant (unless --image names an existing one), then run its contract suite."""
    variant = get_variant(variant_name)
    parser = argparse.ArgumentParser(
        prog=f"nox -s {variant.name}_image --",
        description=f"Build the {variant.name} image and verify its contract. Other arguments "
        "are passed to pytest (e.g. -k NAME, --revision SHA).",
    )
    parser.add_argument("--image", help="verify this existing image instead of building one")
    args, pytest_args = parser.parse_known_args(session.posargs)
    start(session)
    image = args.image
    with user_errors():
        contract.check_arguments(variant.name, pytest_args)  # before a long build, not after
        if image is None:  # built before anything is installed: a tool error fails at once
            # The contract verifies what this build made, by its id: another build of the same
            # tag (another checkout) may move the tag meanwhile.
            image = build_image(variant, BuildOptions()).image_id
    session.install(*TEST_REQUIREMENTS, "-e", ".")
    arguments = contract.pytest_args(variant.name, image, junit(f"{variant.name}-image"))
    pytest(session, "python", *arguments, *pytest_args)


@nox.session
def ci_image(session: nox.Session) -> None:
    """Build the CI image and verify its contract."""
    verify_image(session, "ci")


@nox.session
def full_image(session: nox.Session) -> None:
    """Build the full production image and verify its contract."""
    verify_image(session, "full")


@nox.session
def builds(session: nox.Session) -> None:
    """Prove the builds: no secrets from the context, failures name their step, a drop-in base."""
    start(session)
    session.install(*TEST_REQUIREMENTS, "-e", ".")
    pytest(session, "pytest", "tests/build", junit("builds"), *session.posargs)


@nox.session
def contract_selftest(session: nox.Session) -> None:
    """Prove the image contract fails on deliberately broken CI images."""
    start(session)
    with user_errors():
        build_image(get_variant("ci"), BuildOptions())  # the broken images start from it
    session.install(*TEST_REQUIREMENTS, "-e", ".")
    pytest(
        session, "pytest", "tests/contract_selftest", junit("contract-selftest"), *session.posargs
    )


@nox.session
def readme_commands(session: nox.Session) -> None:
    """Run every command of the README's table in the set-up's virtual environment."""
    start(session)
    session.install(*TEST_REQUIREMENTS, "-e", ".")
    pytest(session, "pytest", "tests/readme", junit("readme-commands"), *session.posargs)


@nox.session(venv_backend="none")
def reproducible(session: nox.Session) -> None:
    """Build the CI image cold on two clean engines and prove both give the same digest."""
    argparse.ArgumentParser(
        prog="nox -s reproducible --",
        description="Two cold builds of this commit on two private engines (containerd store), "
        "compared platform manifest by platform manifest; exit 32 names the first file that "
        "differs.",
    ).parse_args(session.posargs)
    start(session)
    with user_errors(), tempfile.TemporaryDirectory(prefix="reproducible-") as work:
        builds = reproducibility.build_twice(get_variant("ci"), Path(work))
        if builds.difference:
            raise NotReproducible(builds.difference)
        for platform, digest in builds.digests.items():
            session.log(f"{platform}: both builds gave {digest}")


# `nox -s lint -- NAME...` runs only some of them (e.g. the security scan runs `hadolint`).
LINTERS = ("ruff", "mypy", "hadolint", "workflows")
TYPE_CHECKED = ("service_images", "noxfile.py", "tasks.py", str(SERVICE_SOURCE.relative_to(ROOT)))
WORKFLOWS = ROOT / ".github" / "workflows"


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and type-check the code, the Dockerfiles and the workflows."""
    linters = session.posargs or list(LINTERS)
    if unknown := sorted(set(linters) - set(LINTERS)):
        session.error(f"Usage: nox -s lint -- [{' | '.join(LINTERS)} ...]; unknown: {unknown}")
    start(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    commands: list[tuple[str, ...]] = []
    if "ruff" in linters:
        commands += [("ruff", "check", "."), ("ruff", "format", "--check", ".")]
    if "mypy" in linters:
        # The service is type-checked against the pins its images run.
        session.install("-r", "requirements-ci.txt", "-e", ".")
        commands.append(("mypy", *TYPE_CHECKED))
    if "hadolint" in linters:
        dockerfiles = [str(variant.dockerfile.relative_to(ROOT)) for variant in VARIANTS.values()]
        commands.append(("hadolint", "--config", ".hadolint.yaml", *dockerfiles))
    if "workflows" in linters:
        workflows = sorted(str(path.relative_to(ROOT)) for path in WORKFLOWS.glob("*.yml"))
        commands.append(("actionlint", *workflows))
        schema = ("check-jsonschema", "--builtin-schema", "vendor.github-workflows")
        commands.append((*schema, *workflows))
        # Security audit of the workflows and dependabot.yml (template injection, cache
        # poisoning, unpinned actions...). --offline: its online audits need a GitHub token.
        commands.append(("zizmor", "--offline", "--no-progress", ".github"))
        dependabot = ("check-jsonschema", "--builtin-schema", "vendor.dependabot")
        commands.append((*dependabot, ".github/dependabot.yml"))
    # Every linter runs, so one run shows every finding.
    failed = []
    if "hadolint" in linters:
        try:
            generated_blocks.regenerate(check=True)
        except OutOfDate as error:
            session.warn(error.message)
            failed.append("invoke dockerfiles --check")
    for command in commands:
        try:
            session.run(*command)
        except nox.command.CommandFailed:
            failed.append(" ".join(command[:2]))
    if failed:
        session.error(f"lint failed: {'; '.join(failed)}")


@nox.session
def audit(session: nox.Session) -> None:
    """Audit both locks for known vulnerabilities (exit 11 when the service cannot answer)."""
    argparse.ArgumentParser(
        prog="nox -s audit --",
        description="pip-audit over both hash-pinned locks. Exit 0: no known vulnerabilities; "
        "15: some (each listed); 11: the vulnerability service could not answer (no verdict).",
    ).parse_args(session.posargs)
    start(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "audit"))
    audits: list[dependency_audit.LockAudit] = []
    with user_errors():
        for variant in VARIANTS.values():
            report = REPORTS / f"audit-{variant.name}.json"
            report.unlink(missing_ok=True)
            # pip-audit exits 1 for findings and for its own failures alike: the report (or its
            # absence) tells them apart.
            output = session.run(
                *dependency_audit.command(variant.lock, report), silent=True, success_codes=[0, 1]
            )
            if output is None:  # --install-only
                return
            text = report.read_text() if report.is_file() else None
            audits.append(dependency_audit.classify(variant.lock.name, str(output), text))
        for line in dependency_audit.verdict(audits):
            session.log(line)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure both images against the pre-project Dockerfiles; not in the default run."""
    start(session)
    session.install("-e", ".")
    session.run("python", "-m", "service_images.bench", *session.posargs)


@nox.session(venv_backend="none", default=False)
def verify(session: nox.Session) -> None:
    """Verify a pushed image's signature, SBOM attestation and provenance (`invoke verify`)."""
    parser = argparse.ArgumentParser(
        prog="nox -s verify --",
        description="Verify REPO@sha256:... (or REPO:TAG with --digest) with cosign, as "
        "`invoke verify` does; exit 33 unsigned, 34 another signer, 35 a moved tag, 18 an SBOM "
        "that differs from the lock, 36 provenance of another commit, 32 a rebuild that differs.",
    )
    for name, text in verification.VERIFY_OPTIONS.items():
        if name == "reference":
            parser.add_argument(name, help=text)
        elif name == "tlog":
            parser.add_argument("--no-tlog", dest="tlog", action="store_false", help=text)
        elif name == "rebuild":
            parser.add_argument("--rebuild", action="store_true", help=text)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=text)
    args = vars(parser.parse_args(session.posargs))
    with user_errors():
        reference, digest, rebuild = args.pop("reference"), args.pop("digest"), args.pop("rebuild")
        signer = signing.Signer.from_options(**args)
        for line in verification.verify(reference, signer, digest, rebuild):
            session.log(line)

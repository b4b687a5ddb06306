"""Sessions that build and verify the python-ai-service images (`nox -l`).

`nox -s ci_image` is the main job: build the light CI image, then prove its contract.
`nox` alone runs the default sessions: everything CI runs.
"""

from __future__ import annotations

import argparse
import sys

import nox

import service_images.audit as dependency_audit
from service_images.build import BuildOptions, build_image
from service_images.errors import AuditUnavailable, ToolError
from service_images.variants import ROOT, VARIANTS, get_variant

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "requirements",
    "tests",
    "ci_image",
    "contract_selftest",
    "full_image",
]

PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
TEST_REQUIREMENTS = nox.project.dependency_groups(PYPROJECT, "test")
REPORTS = ROOT / "reports"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the service and tooling tests on the host (no Docker needed)."""
    # The bench group too: the tooling tests render the bench's chart.
    bench = nox.project.dependency_groups(PYPROJECT, "bench")
    session.install("-r", "requirements-ci.txt", *TEST_REQUIREMENTS, *bench, "-e", ".")
    args = session.posargs or ["tests/service", "tests/tooling"]
    session.run("pytest", f"--junitxml={REPORTS / 'tests.xml'}", *args)


@nox.session
def requirements(session: nox.Session) -> None:
    """Check both requirement files and locks: pins, heavy packages, drift, stale locks."""
    # Installed, not imported in-process: the check runs with the pinned `packaging` it declares.
    session.install("-e", ".")
    session.run("python", "-m", "service_images.requirements", *session.posargs)


def verify_image(session: nox.Session, variant_name: str) -> None:
    """Build a variant (unless --image names an existing one), then run its contract suite."""
    variant = get_variant(variant_name)
    parser = argparse.ArgumentParser(
        prog=f"nox -s {variant.name}_image --",
        description="Other arguments are passed to pytest.",
    )
    parser.add_argument("--image", help="verify this existing image instead of building one")
    args, pytest_args = parser.parse_known_args(session.posargs)
    session.install(*TEST_REQUIREMENTS, "-e", ".")
    if args.image is None:
        try:
            build_image(variant, BuildOptions())
        except ToolError as error:
            session.error(error.message)
    session.run(
        "pytest",
        "tests/contract",
        f"--variant={variant.name}",
        f"--image={args.image or variant.tag}",
        f"--junitxml={REPORTS / f'{variant.name}-image.xml'}",
        *pytest_args,
    )


@nox.session
def ci_image(session: nox.Session) -> None:
    """Build the CI image and verify its contract."""
    verify_image(session, "ci")


@nox.session
def full_image(session: nox.Session) -> None:
    """Build the full production image and verify its contract."""
    verify_image(session, "full")


@nox.session
def contract_selftest(session: nox.Session) -> None:
    """Prove the image contract fails on deliberately broken CI images."""
    session.install(*TEST_REQUIREMENTS, "-e", ".")
    try:
        build_image(get_variant("ci"), BuildOptions())  # the broken images start from it
    except ToolError as error:
        session.error(error.message)
    report = REPORTS / "contract-selftest.xml"
    session.run("pytest", "tests/contract_selftest", f"--junitxml={report}", *session.posargs)


# `nox -s lint -- NAME...` runs only some of them (e.g. the security scan runs `hadolint`).
LINTERS = ("ruff", "mypy", "hadolint", "workflows")
TYPE_CHECKED = ("service_images", "noxfile.py", "tasks.py", "python-ai-service/app")
WORKFLOWS = ROOT / ".github" / "workflows"


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and type-check the code, the Dockerfiles and the workflows."""
    linters = session.posargs or list(LINTERS)
    if unknown := sorted(set(linters) - set(LINTERS)):
        session.error(f"Usage: nox -s lint -- [{' | '.join(LINTERS)} ...]; unknown: {unknown}")
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
    # Every linter runs, so one run shows every finding.
    failed = []
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
    session.install(*nox.project.dependency_groups(PYPROJECT, "audit"))
    REPORTS.mkdir(exist_ok=True)
    audits: list[dependency_audit.LockAudit] = []
    try:
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
    except AuditUnavailable as error:
        # Its own exit code, so CI can tell "could not check" from "found something".
        print(f"error: {error.message}", file=sys.stderr, flush=True)
        raise SystemExit(error.exit_code) from None
    except ToolError as error:
        session.error(error.message)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure both images against naive Dockerfiles (`-- --variant ci`); not in the default run."""
    bench_requirements = nox.project.dependency_groups(PYPROJECT, "bench")
    # pytest: the bench times the image-contract suite too.
    session.install(*bench_requirements, *TEST_REQUIREMENTS, "-e", ".")
    session.run("python", "-m", "service_images.bench", *session.posargs)

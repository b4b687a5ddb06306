"""The GitHub workflows call only nox sessions and invoke tasks that exist, and follow house rules.

Sessions are resolved by nox itself (`nox --list --json` with the workflow's own selection) and task
command lines are parsed by invoke's own parser, so renaming a session, a task or a task's option
breaks these tests instead of the pipeline.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Program
from invoke.exceptions import Exit, ParseError

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))

# What each workflow must keep running (the contract), as (tool, session or task).
REQUIRED_CALLS = {
    "tests.yml": {("nox", "tests"), ("nox", "requirements")},
    # Both platforms: the arm64 image is built with `invoke build-ci --platform linux/arm64`.
    "ci-cd.yml": {
        ("nox", "lint"),
        ("nox", "ci_image"),
        ("invoke", "build-ci"),
        ("invoke", "linux/arm64"),
    },
    "security-scan.yml": {("nox", "lint"), ("nox", "audit"), ("invoke", "build-ci")},
    "docker-build-push.yml": {
        ("invoke", "build-full"),
        ("nox", "full_image"),  # the contract runs on the image before it is pushed
        ("invoke", "sbom"),
        ("invoke", "scan-coverage"),
        ("invoke", "push"),
        ("invoke", "sign"),  # the pushed digest, keyless, with its SBOM
        ("invoke", "verify"),  # and a consumer's check of both
    },
    "contract-selftest.yml": {("nox", "contract_selftest")},
}
# Workflows that must also run on a schedule: what they check can break without a change here.
SCHEDULED = ("security-scan.yml", "contract-selftest.yml")
# Actions whose output is what a publishing job ships must run after the contract; the scanner
# uploads SARIF through this action.
SARIF_UPLOAD = "github/codeql-action/upload-sarif@"

EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
SHELL_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;"})
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHA_PIN = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")


@dataclass(frozen=True)
class Call:
    """One `nox ...` or `invoke ...` command in a workflow's `run:` script."""

    workflow: str
    job: str
    tool: str
    """nox or invoke"""
    args: tuple[str, ...]
    """Everything after the tool's name (`${{ ... }}` expressions replaced by a placeholder)."""

    def __str__(self) -> str:
        return f"{self.workflow} job {self.job}: `{self.tool} {shlex.join(self.args)}`"


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def commands(script: str) -> Iterator[list[str]]:
    """Simple commands of a shell script, split at `&&`, `;`, pipes and the like."""
    script = EXPRESSION.sub("EXPR", script).replace("\\\n", " ")
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in lexer:
            if token in SHELL_OPERATORS:
                if command:
                    yield command
                command = []
            else:
                command.append(token)
        if command:
            yield command


def tool_call(command: list[str]) -> tuple[str, list[str]] | None:
    """(tool, its arguments) when the command runs nox or invoke, directly or as `python -m`."""
    words = list(command)
    # Assignments, and `sudo -E env A=B`, before the command.
    while words and (ASSIGNMENT.match(words[0]) or words[0] in ("sudo", "env")):
        words.pop(0)
        while words and words[0].startswith("-"):
            words.pop(0)
    if words[:1] and Path(words[0]).name.startswith("python") and words[1:2] == ["-m"]:
        words = words[2:]
    if words and words[0] in ("nox", "invoke", "inv"):
        tool = "invoke" if words[0] == "inv" else words[0]
        return tool, words[1:]
    return None


def calls(path: Path) -> list[Call]:
    found = []
    for job_id, job in load(path).get("jobs", {}).items():
        for step in job.get("steps", []):
            for command in commands(step.get("run", "")):
                if parsed := tool_call(command):
                    found.append(Call(path.name, job_id, parsed[0], tuple(parsed[1])))
    return found


ALL_CALLS = [call for path in WORKFLOWS for call in calls(path)]
NOX_CALLS = [call for call in ALL_CALLS if call.tool == "nox"]
INVOKE_CALLS = [call for call in ALL_CALLS if call.tool == "invoke"]


@functools.cache
def nox_listing(selection: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """nox's own answer to which sessions this selection runs."""
    return subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", *selection],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def invoke_tasks(args: tuple[str, ...]) -> list[str]:
    """The tasks invoke would run for this command line, parsed by invoke itself."""
    program = Program(binary_names=["invoke", "inv"])
    program.create_config()
    program.parse_core(["invoke", "--search-root", str(ROOT), *args])
    program.parse_collection()
    program.parse_tasks()
    return [context.name for context in program.tasks if context.name]


# -- the parser itself: if it missed calls, every check below would pass vacuously ---------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("nox -s lint", [("nox", ["-s", "lint"])]),
        ("pip install -e . && nox -s tests -- -x", [("nox", ["-s", "tests", "--", "-x"])]),
        ("python -m nox --session audit", [("nox", ["--session", "audit"])]),
        (
            'CI=1 invoke build-full --tag "${{ env.TAG }}" \\\n  --builder x',
            [("invoke", ["build-full", "--tag", "EXPR", "--builder", "x"])],
        ),
        ("echo nox; inv clean | tee log", [("invoke", ["clean"])]),
        ('sudo -E env "PATH=$PATH" HOME=/h invoke verify X', [("invoke", ["verify", "X"])]),
        ("# nox -s commented-out\nnoxious -s x", []),
    ],
)
def test_finds_tool_calls_in_scripts(script: str, expected: list[tuple[str, list[str]]]) -> None:
    found = [parsed for command in commands(script) if (parsed := tool_call(command))]
    assert found == expected


def test_workflows_call_the_suite() -> None:
    """Each workflow still runs what the issue asks of it, through nox and invoke."""
    missing = []
    for name, required in REQUIRED_CALLS.items():
        path = WORKFLOW_DIR / name
        if not path.is_file():
            missing.append(f"{name}: the workflow is missing")
            continue
        seen = {(call.tool, arg) for call in calls(path) for arg in call.args}
        missing += [f"{name}: no `{tool} ... {what}`" for tool, what in sorted(required - seen)]
    assert not missing, "workflows no longer run:\n" + "\n".join(missing)


# -- every call names something that exists ------------------------------------------------------


@pytest.mark.parametrize("call", NOX_CALLS, ids=str)
def test_nox_sessions_exist(call: Call) -> None:
    args = list(call.args)
    selection = tuple(args[: args.index("--")] if "--" in args else args)
    listing = nox_listing(selection)
    if listing.returncode != 0:
        pytest.fail(f"{call}: nox cannot select it: {listing.stderr.strip()}")
    assert json.loads(listing.stdout), f"{call}: nox selects no session at all"


@pytest.mark.parametrize("call", INVOKE_CALLS, ids=str)
def test_invoke_tasks_and_options_exist(call: Call) -> None:
    try:
        tasks = invoke_tasks(call.args)
    except (ParseError, Exit) as error:
        pytest.fail(f"{call}: invoke cannot parse it: {error}")
    assert tasks, f"{call}: names no task"


def test_default_sessions_exist() -> None:
    """`nox` alone (what the README and CI run) resolves every session it names."""
    listing = nox_listing(())
    if listing.returncode != 0:
        pytest.fail(f"nox's default sessions: {listing.stderr.strip()}")


# -- house rules for every workflow --------------------------------------------------------------


def rule_violations(path: Path) -> Iterator[str]:
    workflow = load(path)
    if workflow.get("permissions") != {"contents": "read"}:
        yield "top-level `permissions` must be exactly `contents: read` (jobs widen it)"
    if not (workflow.get("concurrency") or {}).get("group"):
        yield "no `concurrency` group"
    for job_id, job in workflow.get("jobs", {}).items():
        permissions = job.get("permissions", {})
        if not isinstance(permissions, dict):
            yield f"job {job_id}: `permissions: {permissions}` is not least privilege"
        if "timeout-minutes" not in job:
            yield f"job {job_id}: no `timeout-minutes`"
        steps = job.get("steps", [])
        for step in steps:
            action = step.get("uses")
            if action and not SHA_PIN.match(action):
                yield f"job {job_id}: `{action}` is not pinned to a commit (`@<sha> # vX.Y.Z`)"
        runs = [step.get("run", "") for step in steps]
        uses_suite = any(tool_call(c) for run in runs for c in commands(run))
        if uses_suite and not any("pip install -e ." in run for run in runs):
            yield f"job {job_id}: runs nox/invoke without `pip install -e .` first"


def publishing_violations(path: Path) -> Iterator[str]:
    """Rules for jobs that can write packages: what they push is what they proved."""
    workflow = load(path)
    text = path.read_text(encoding="utf-8")
    # Registries refuse capitals, and GitHub owner/repository names may have them.
    for raw in ("ghcr.io/${{ github.repository", "ghcr.io/${{ github.repository_owner"):
        if raw in text:
            yield f"`{raw} }}}}` in an image reference: lower-case it first"
    for job_id, job in workflow.get("jobs", {}).items():
        if (job.get("permissions") or {}).get("packages") != "write":
            continue
        steps = job.get("steps", [])
        for step in steps:
            if "cache" in (step.get("with") or {}):
                yield f"job {job_id}: `{step['uses']}` restores a cache in a publishing job"
        calls = [tool_call(c) for step in steps for c in commands(step.get("run", ""))]
        order = [f"{tool} {' '.join(args[:2])}" for tool, args in filter(None, calls)]
        pushes = [i for i, call in enumerate(order) if call.startswith("invoke push")]
        contract = [i for i, call in enumerate(order) if call.startswith("nox -s full_image")]
        if pushes and not (contract and contract[0] < pushes[0]):
            yield f"job {job_id}: pushes before (or without) `nox -s full_image` on the image"
        if not any(str(step.get("uses", "")).startswith(SARIF_UPLOAD) for step in steps):
            yield f"job {job_id}: no scan of the shipped image uploaded ({SARIF_UPLOAD}...)"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_publishing_jobs_verify_what_they_ship(path: Path) -> None:
    violations = list(publishing_violations(path))
    assert not violations, f"{path.name}:\n" + "\n".join(violations)


@pytest.mark.parametrize("name", SCHEDULED)
def test_scheduled_workflows(name: str) -> None:
    triggers = load(WORKFLOW_DIR / name).get(True) or load(WORKFLOW_DIR / name).get("on") or {}
    assert "schedule" in triggers, f"{name} has no `schedule` trigger"


def test_dependabot_watches_actions_pip_and_docker() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    ecosystems = {update["package-ecosystem"] for update in config["updates"]}
    assert {"github-actions", "pip", "docker"} <= ecosystems, ecosystems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_house_rules(path: Path) -> None:
    violations = list(rule_violations(path))
    assert not violations, f"{path.name}:\n" + "\n".join(violations)


def test_every_workflow_is_checked() -> None:
    assert WORKFLOWS, f"no workflows in {WORKFLOW_DIR}"
    assert NOX_CALLS, "no `nox` call found in any workflow: is the parser broken?"
    assert INVOKE_CALLS, "no `invoke` call found in any workflow: is the parser broken?"

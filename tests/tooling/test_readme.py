"""README.md's generated sections: rendered from their one source each, replaced between their
markers only, and the committed README.md is what they render (so docs cannot drift)."""

from __future__ import annotations

import functools
import json
import re
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import nox
import pytest
from test_bench import X, sample_report

from service_images import readme
from service_images.bench import report
from service_images.commands import COMMANDS
from service_images.errors import EXIT_CODES, OutOfDate
from service_images.variants import ROOT

START, END = readme.markers("bench")
README = textwrap.dedent(
    f"""\
    # a service

    Intro written by hand.

    {START}
    figures typed by hand: 85% faster!
    {END}

    ## Afterwards
    Also by hand.
    """
)


def test_a_section_is_replaced_between_its_markers_only() -> None:
    section = report.render_readme_section(sample_report(), chart="docs/bench.png")
    updated = readme.replace_section(README, "bench", section)
    before, _, rest = README.partition(START)
    _, _, after = rest.partition(END)
    assert updated.startswith(before + START + "\n")
    assert updated.endswith(END + after)
    assert "85% faster" not in updated
    assert f"| cold build | 25.0 s | 8.00 s | 0.32{X} |" in updated
    assert "![ours/before per figure, lower is better](docs/bench.png)" in updated
    assert "Measured 2026-11-28T18:40:00+00:00" in updated


def test_replacing_is_idempotent() -> None:
    section = report.render_readme_section(sample_report())
    once = readme.replace_section(README, "bench", section)
    assert readme.replace_section(once, "bench", section) == once
    assert "![" not in once, "no chart link unless a chart is given"


@pytest.mark.parametrize(
    "text",
    [
        "# README without markers\n",
        f"only the start {START}\n",
        f"{END}\nreversed\n{START}\n",
        f"{START}\n{END}\n{START}\n{END}\n",
    ],
)
def test_markers_missing_or_doubled_is_a_clear_error(text: str) -> None:
    with pytest.raises(OutOfDate, match="bench:start"):
        readme.replace_section(text, "bench", "section")


def test_regenerate_needs_the_readme(tmp_path: Path) -> None:
    with pytest.raises(OutOfDate, match="does not exist"):
        readme.regenerate(readme=tmp_path / "README.md", check=False)


def test_check_fails_on_a_stale_readme_and_regenerate_mends_it(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stale.write_text(text.replace("| `invoke doctor` |", "| `invoke doctor --old` |"))
    with pytest.raises(OutOfDate, match="invoke readme"):
        readme.regenerate(readme=stale, check=True)
    assert readme.regenerate(readme=stale, check=False)
    assert stale.read_text(encoding="utf-8") == text


def test_the_committed_readme_is_current() -> None:
    """Command table, exit codes and bench figures are what their sources render."""
    readme.regenerate(check=True)


def test_every_command_and_exit_code_is_in_the_readme() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [command.run for command in COMMANDS if f"`{command.run}`" not in text]
    missing += [f"exit {e.exit_code}" for e in EXIT_CODES if f"| {e.exit_code} | " not in text]
    assert not missing, f"not in README.md: {missing}"


@functools.cache
def entry_points() -> frozenset[tuple[str, str]]:
    """Every nox session the noxfile registers and every task `invoke --list` shows."""
    runpy.run_path(str(ROOT / "noxfile.py"))
    sessions = {("nox", name) for name in nox.registry.get()}
    invoke = subprocess.run(
        [sys.executable, "-m", "invoke", "--list", "--list-format", "json"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    tasks = {("invoke", task["name"]) for task in json.loads(invoke.stdout)["tasks"]}
    return frozenset(sessions | tasks)


def test_every_session_and_task_is_documented() -> None:
    documented = {command.tool_and_name for command in COMMANDS}
    undocumented = entry_points() - documented
    assert not undocumented, f"commands missing from service_images/commands.py: {undocumented}"
    gone = documented - entry_points()
    assert not gone, f"documented commands that do not exist: {gone}"


def test_the_architecture_section_matches_the_tree() -> None:
    """Every module of the package and every test folder is on README's map, and nothing else."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Architecture") : text.index("## How the images are built")]
    package = ROOT / "service_images"
    modules = {path.name for path in package.glob("*.py") if path.name != "__init__.py"}
    modules |= {f"{path.name}/" for path in package.iterdir() if (path / "__init__.py").is_file()}
    folders = {f"tests/{path.name}/" for path in (ROOT / "tests").iterdir() if path.is_dir()}
    folders -= {"tests/__pycache__/"}
    missing = sorted(name for name in modules | folders if f"`{name}`" not in section)
    assert not missing, f"README's architecture section does not mention: {missing}"
    named = set(re.findall(r"`([a-z_]+\.py)`", section)) - {"tasks.py", "noxfile.py"}
    gone = sorted(named - modules)
    assert not gone, f"README's architecture section names modules that do not exist: {gone}"

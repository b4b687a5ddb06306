"""The image contract's pytest command: nox, invoke, the bench and the self-test all run this one.

The contract itself is `tests/contract/` (what must and must not be in an image, for any tag);
this module only says how to run it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from service_images.errors import BadOption
from service_images.variants import ROOT

SUITE = ROOT / "tests" / "contract"


def pytest_args(variant: str, image: str, *extra: str) -> list[str]:
    """Arguments for `python` that verify `image` against `variant`'s contract.

    Run from the repository root; `extra` goes to pytest (`-k`, `--junitxml=...`, `--revision`).
    """
    suite = SUITE.relative_to(ROOT).as_posix()
    # Hypothesis's plugin is for the service's tests: importing it costs the contract ~0.8 s.
    command = ["-m", "pytest", suite, "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    return [*command, f"--variant={variant}", f"--image={image}", *extra]


def check_arguments(variant: str, extra: Sequence[str]) -> None:
    """pytest accepts `extra` and selects some test, or BadOption now (not after a long build)."""
    collect = [*pytest_args(variant, "not-built-yet", *extra), "--collect-only", "-q"]
    found = subprocess.run(
        [sys.executable, *collect], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if found.returncode == 0:
        return
    lines = (found.stderr.strip() or found.stdout.strip()).splitlines() or ["no output"]
    reason = "no contract test matches them" if found.returncode == 5 else lines[-1]
    raise BadOption(f"pytest arguments {' '.join(extra)!r}: {reason}.")

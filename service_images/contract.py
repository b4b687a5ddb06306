"""The image contract's pytest command: nox, invoke, the bench and the self-test all run this one.

The contract itself is `tests/contract/` (what must and must not be in an image, for any tag);
this module only says how to run it.
"""

from __future__ import annotations

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

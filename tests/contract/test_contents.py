"""What is installed: exactly the lock, everything imports, nothing forbidden, backends run."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Emulation
from saved_image import SavedImage

from service_images import lockfile, tiers
from service_images.variants import Variant


def test_every_locked_distribution_is_installed_at_its_version(
    facts: dict[str, Any], locked: dict[str, str]
) -> None:
    installed = facts["distributions"]
    wrong = {
        name: f"locked {version}, installed {installed.get(name, 'nothing')}"
        for name, version in locked.items()
        if installed.get(name) != version
    }
    assert not wrong, f"{len(wrong)} distributions differ from the lock: {wrong}"


def test_nothing_is_installed_beyond_the_lock(
    facts: dict[str, Any], locked: dict[str, str]
) -> None:
    extra = sorted(set(facts["distributions"]) - set(locked))
    assert not extra, f"installed but not in the lock: {extra}"


def test_every_top_level_module_imports(facts: dict[str, Any], locked: dict[str, str]) -> None:
    modules = {m for name in locked for m in facts["top_level"].get(name, ())}
    assert modules, "the probe found no top-level modules at all"
    failures = {m: error for m, error in facts["import_errors"].items() if m in modules}
    assert not failures, f"{len(failures)} of {len(modules)} modules fail to import: {failures}"


def test_no_forbidden_distribution_or_module(facts: dict[str, Any], variant: Variant) -> None:
    if not variant.forbidden:
        pytest.skip(f"the {variant.name} variant forbids no packages")
    distributions = sorted(name for name in facts["distributions"] if variant.forbids(name))
    found = [*distributions, *(f"module {m}" for m in facts["forbidden_modules"])]
    assert not found, (
        f"the {variant.name} image must not contain {', '.join(variant.forbidden)}; found {found}"
    )


def test_backends_import_at_pinned_versions_and_compute(
    facts: dict[str, Any], variant: Variant, locked: dict[str, str]
) -> None:
    if not variant.backends:
        pytest.skip(f"the {variant.name} variant ships no deep-learning backend")
    problems = {}
    for backend in variant.backends:
        outcome = facts["backends"].get(backend, {"error": "not run"})
        if "error" in outcome:
            problems[backend] = outcome["error"]
        elif outcome["version"] != locked[backend]:
            problems[backend] = f"version {outcome['version']}, locked {locked[backend]}"
        elif outcome["result"] != 9.0:  # ones(3x3) @ [0, 1, 2], summed
            problems[backend] = f"computed {outcome['result']}, expected 9.0"
    assert not problems, f"backends broken: {problems}"


def test_each_install_tier_is_a_layer_of_its_own(
    saved_image: SavedImage, variant: Variant, emulation: Emulation
) -> None:
    """A bumped light package rebuilds one small layer: the tiers must really be separate layers.

    The layers that add distributions to the venv, in order, hold exactly the variant's tiers
    (service_images/tiers.py, from the lock and variants.TIERS), less what the image's platform
    does not install (the lock's markers).
    """
    locked = lockfile.read(variant.lock).entries
    assigned = tiers.assign(locked)
    expected = {
        name: members
        for name, names in assigned.items()
        if (members := {n for n in names if locked[n].installed_on(emulation.image)})
    }
    found = [layer.distributions for layer in saved_image.layers if layer.distributions]
    problems = []
    if len(found) != len(expected):
        problems.append(f"{len(found)} layers install distributions, the tiers are {len(expected)}")
    for (tier, members), layer in zip(expected.items(), found, strict=False):
        if layer != members:
            missing, extra = sorted(members - layer), sorted(layer - members)
            problems.append(f"tier {tier}: missing {missing}, not of this tier {extra}")
    assert not problems, "install tiers are not one layer each:\n" + "\n".join(problems)

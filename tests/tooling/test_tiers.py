"""The lock cut into install tiers: by dependency closure, every package in exactly one tier,
entries kept byte for byte, and each Dockerfile installing exactly its variant's tiers in order."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from service_images import tiers
from service_images.requirements import read_lock
from service_images.variants import TIERS, VARIANTS, Tier, Variant

LOCK = textwrap.dedent(
    """\
    # inputs-sha256: 0
    anyio==4.0 \\
        --hash=sha256:aa
        # via fastapi
    fastapi==1.0 \\
        --hash=sha256:bb
        # via -r requirements.txt
    numpy==2.0 \\
        --hash=sha256:cc \\
        --hash=sha256:cd
        # via
        #   -r requirements.txt
        #   pandas
        #   torch
    pandas==2.0 \\
        --hash=sha256:dd
        # via -r requirements.txt
    torch==2.9 \\
        --hash=sha256:ee
        # via -r requirements.txt
    """
)
SMALL_TIERS = (Tier("torch", ("torch",)), Tier("numeric", ("pandas",)), Tier("rest", ()))


def test_a_tier_is_its_roots_closure_less_earlier_tiers(tmp_path: Path) -> None:
    path = tmp_path / "requirements.lock"
    path.write_text(LOCK)
    assigned = tiers.assign(read_lock(path, []), SMALL_TIERS)
    assert assigned == {
        "torch": ["numpy", "torch"],
        "numeric": ["pandas"],
        "rest": ["anyio", "fastapi"],
    }


def test_entries_keep_their_hashes_and_lose_their_via_comments() -> None:
    blocks = tiers.entry_blocks(LOCK)
    assert blocks["numpy"] == "numpy==2.0 \\\n    --hash=sha256:cc \\\n    --hash=sha256:cd\n"
    assert "via" not in "".join(blocks.values())


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=lambda variant: variant.name)
def test_the_tiers_hold_every_locked_package_once(variant: Variant) -> None:
    slices = tiers.split(variant)
    entries = [name for text in slices.values() for name in tiers.entry_blocks(text)]
    assert sorted(entries) == sorted(read_lock(variant.lock, [])), "a package lost or doubled"
    assert len(entries) == len(set(entries))


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=lambda variant: variant.name)
def test_each_dockerfile_installs_its_tiers_in_order(variant: Variant) -> None:
    expected = [tier.name for tier in TIERS if tier.name in tiers.split(variant)]
    assert tiers.mounted_tiers(variant.dockerfile) == expected


def test_staging_writes_the_slices_of_the_contexts_lock_and_a_verified_uv(tmp_path: Path) -> None:
    variant = VARIANTS["ci"]
    lock = variant.lock.read_text()
    (tmp_path / variant.lock.name).write_text(lock.replace("loguru==", "loguru===", 1))
    args = tiers.stage(variant, tmp_path)
    service = (tmp_path / ".build" / variant.name / "service.lock").read_text()
    assert "loguru===" in service, "the context's lock (a bench's bumped copy) is what is staged"
    _, sha256 = tiers.uv_binary()
    assert args == {"UV_SHA256": sha256}
    staged = sorted(path.name for path in (tmp_path / ".build" / variant.name).iterdir())
    assert staged == sorted(f"{tier}.lock" for tier in tiers.split(variant))
    assert (tmp_path / tiers.UV_BINARY).stat().st_mode & 0o111

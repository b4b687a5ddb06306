"""The Dockerfiles' tier blocks are what the variants table and the locks render."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from service_images import dockerfiles
from service_images.errors import OutOfDate
from service_images.variants import IMAGE_NAME, ROOT, TIERS, VARIANTS, Variant


def copy(tmp_path: Path) -> Path:
    for variant in VARIANTS.values():
        shutil.copy(variant.dockerfile, tmp_path)
        shutil.copy(variant.lock, tmp_path)
    shutil.copy(ROOT / ".dockerignore", tmp_path)
    return tmp_path


def test_the_committed_dockerfiles_are_current() -> None:
    assert dockerfiles.regenerate(ROOT, check=True) == []


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=lambda variant: variant.name)
def test_each_dockerfile_installs_its_tiers_in_order(variant: Variant) -> None:
    text = variant.dockerfile.read_text()
    stages = re.findall(r"^FROM base AS (\S+)$", text, re.M)
    mounted = re.findall(rf"source=\.build/{variant.name}/([a-z-]+)\.lock", text)
    copied = re.findall(r"^COPY --from=(\S+) /opt/venv", text, re.M)
    first = re.search(r"^# layers:start\n.*\nFROM (\S+)$", text, re.M)
    assert first is not None
    assert stages == mounted == [first[1], *copied]
    assert stages == [tier.name for tier in TIERS if tier.name in stages], "out of TIERS' order"
    assert ("numeric" in stages, "cuda-torch" in stages) == (True, variant.name == "full")


def test_a_hand_edited_block_is_out_of_date(tmp_path: Path) -> None:
    root = copy(tmp_path)
    dockerfile = root / VARIANTS["ci"].dockerfile.name
    dockerfile.write_text(dockerfile.read_text().replace("COPY --from=service", "COPY --from=nope"))
    with pytest.raises(OutOfDate, match=r"Dockerfile\.ci: the generated blocks differ"):
        dockerfiles.regenerate(root, check=True)
    assert dockerfiles.regenerate(root, check=False) == ["Dockerfile.ci"]
    assert dockerfile.read_text() == VARIANTS["ci"].dockerfile.read_text()


def test_only_the_tiers_given_render_and_only_the_last_keeps_uv_s_cache() -> None:
    stages = dockerfiles.render_tiers(VARIANTS["full"], ["numeric", "service"])
    assert re.findall(r"^FROM base AS (\S+)$", stages, re.M) == ["numeric", "service"]
    assert stages.count("type=cache") == 1
    assert stages.index("type=cache") > stages.index("FROM base AS service")
    assert stages.count("--compile") == 2
    uncompiled = dataclasses.replace(VARIANTS["ci"], compile_bytecode=False)
    assert "--compile" not in dockerfiles.render_tiers(uncompiled, ["numeric"])
    assert dockerfiles.render_layers(["a", "b", "c"]) == (
        "FROM a\nCOPY --from=b /opt/venv /opt/venv\nCOPY --from=c /opt/venv /opt/venv\n"
        f'LABEL org.opencontainers.image.title="{IMAGE_NAME}"'
    )

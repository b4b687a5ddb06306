"""The BuildKit arguments the tasks pass: secret, labels, cache flags, context (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_images import engine
from service_images.build import BuildOptions, build_args, git
from service_images.errors import BuildKitMissing
from service_images.variants import PROJECT_LABEL, ROOT, VARIANTS

BUILDX = engine.BuildFrontEnd(("docker", "buildx", "build", "--load"), {}, "buildx 0.13", True)
LEGACY = engine.BuildFrontEnd(("docker", "build"), {"DOCKER_BUILDKIT": "1"}, "docker 20.10", False)


@pytest.fixture(autouse=True)
def buildx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "build_front_end", lambda: BUILDX)


def flag_values(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == flag]


def test_ca_bundle_is_only_a_secret(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    command = build_args(VARIANTS["ci"], BuildOptions(ca_bundle=str(bundle)))
    assert flag_values(command, "--secret") == [f"id=ca_bundle,src={bundle}"]
    assert sum(str(bundle) in arg for arg in command) == 1


def test_labels_name_the_commit_and_the_project() -> None:
    command = build_args(VARIANTS["full"], BuildOptions())
    labels = dict(value.split("=", 1) for value in flag_values(command, "--label"))
    assert labels["org.opencontainers.image.revision"] == git("rev-parse", "HEAD")
    assert labels[PROJECT_LABEL] == "true"
    assert command[-1] == str(ROOT)
    assert flag_values(command, "--file") == [str(VARIANTS["full"].dockerfile)]


def test_cache_flags_pass_through_and_empty_ones_are_dropped() -> None:
    options = BuildOptions(cache_from="type=registry,ref=r:cache", cache_to="", builder="remote")
    command = build_args(VARIANTS["ci"], options)
    assert flag_values(command, "--cache-from") == ["type=registry,ref=r:cache"]
    assert flag_values(command, "--cache-to") == []
    assert flag_values(command, "--builder") == ["remote"]


def test_buildx_only_flags_need_buildx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "build_front_end", lambda: LEGACY)
    with pytest.raises(BuildKitMissing, match="--cache-from needs the buildx plugin"):
        build_args(VARIANTS["ci"], BuildOptions(cache_from="type=local,src=/tmp/c"))
    assert "--builder" not in build_args(VARIANTS["ci"], BuildOptions())

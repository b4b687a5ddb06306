"""Two builds of one tag (two clones, say): each reports, and the contract verifies, the image it
made, by the id BuildKit wrote, not whatever the tag names by the time it is read."""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker
import pytest

from service_images import engine
from service_images.build import BuildOptions, build_image
from service_images.variants import DEFAULT_BASE_IMAGE, VARIANTS

TAG = "python-ai-service:test-race"


def test_a_build_reports_its_own_image_when_another_moves_the_tag(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    docker_client: docker.DockerClient,
) -> None:
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(
            f"FROM {DEFAULT_BASE_IMAGE}\nLABEL race={name}\n"
        )
    real_run_build = engine.run_build

    def finished_then_overtaken(args: list[str], **kwargs: object) -> tuple[int, list[str]]:
        done = real_run_build(args, **kwargs)  # type: ignore[arg-type]
        # The other clone's build of the same tag ends right after this one.
        overtaking = BuildOptions(tag=TAG, dockerfile=tmp_path / "second" / "Dockerfile",
                                  context=tmp_path / "second")  # fmt: skip
        monkeypatch.setattr(engine, "run_build", real_run_build)
        build_image(VARIANTS["ci"], overtaking)
        return done

    monkeypatch.setattr(engine, "run_build", finished_then_overtaken)
    first = BuildOptions(tag=TAG, dockerfile=tmp_path / "first" / "Dockerfile",
                         context=tmp_path / "first")  # fmt: skip
    try:
        result = build_image(VARIANTS["ci"], first)
        assert f"{TAG} now names another build's image" in capsys.readouterr().out
        second = docker_client.images.get(TAG)
        assert second.labels["race"] == "second"
        assert result.image_id != second.id, "the build reports the other build's image as its own"
        if not engine.facts(docker_client).containerd_store:
            # The classic store keeps the untagged image: the contract can verify it by its id.
            assert docker_client.images.get(result.image_id).labels["race"] == "first"
    finally:
        for image in {TAG, *(i.id for i in docker_client.images.list(filters={"label": "race"}))}:
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(image, force=True)

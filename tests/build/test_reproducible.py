"""The reproducibility check names what differs: two builds of one commit but for one byte of
the service's code give other digests, and the check says which file, in which layer. A pushed
image rebuilds to its own digest (`invoke verify --rebuild`), and one whose code differs from its
commit's does not.

(`nox -s reproducible` proves the other half: two cold builds on two clean engines agree.)
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service_images import build as build_module
from service_images import engine, inputs, registry, reproducible, verification
from service_images.build import BuildOptions, build_image
from service_images.errors import NotReproducible
from service_images.variants import IMAGE_NAME, SERVICE_SOURCE, Variant, get_variant

VARIANT = get_variant("ci")


def build(context: Path, archive: Path) -> Path:
    build_image(VARIANT, BuildOptions(context=context, oci_archive=archive, progress="quiet"))
    return archive


def one_byte_changed(tree: Path) -> Path:
    main = tree / SERVICE_SOURCE.relative_to(SERVICE_SOURCE.parents[1]) / "main.py"
    main.write_bytes(main.read_bytes() + b" ")
    return tree


def test_two_builds_agree_while_the_working_tree_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`nox -s reproducible` and the bench build the commit, not the working tree: a tree edited
    between the two builds (another `git describe --dirty` each time) leaves them alike."""
    edits = itertools.count()
    real_git = build_module.git

    def git(*args: str) -> str:
        return f"{real_git(*args)}-edit{next(edits)}" if "--dirty" in args else real_git(*args)

    monkeypatch.setattr(build_module, "git", git)
    builds = reproducible.build_twice(VARIANT, tmp_path)
    assert next(edits) >= 2, "each build read the tree's state"
    assert builds.difference is None, builds.difference
    assert builds.differing_layers == 0


def test_one_byte_changed_is_named(tmp_path: Path) -> None:
    same = inputs.export_commit(tmp_path / "same")
    changed = one_byte_changed(inputs.export_commit(tmp_path / "changed"))
    first = build(same, tmp_path / "first.tar")
    again = build(same, tmp_path / "again.tar")
    assert reproducible.compare(first, again), "two builds of the same inputs differ"
    other = build(changed, tmp_path / "changed.tar")
    with pytest.raises(NotReproducible) as differs:
        reproducible.compare(first, other)
    assert "the first file that differs is /app/app/main.py in layer" in differs.value.message
    assert differs.value.exit_code == 32
    layers = [reproducible.platform_layers(path) for path in (first, again, other)]
    assert reproducible.differing_layers(layers[0], layers[1]) == 0
    assert reproducible.differing_layers(layers[0], layers[2]) == 1, "only the code's layer"


@pytest.fixture
def pushed_images(local_registry: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """HEAD's CI image and one with a byte of its code changed, both labelled as HEAD, built on
    this engine (the containerd store keeps what BuildKit wrote) and pushed: name -> digest."""
    run_id = secrets.token_hex(4)
    trees = {
        "same": inputs.export_commit(tmp_path / "same"),
        "changed": one_byte_changed(inputs.export_commit(tmp_path / "changed")),
    }
    tags = {name: f"{IMAGE_NAME}:rebuild-{name}-{run_id}" for name in trees}
    try:
        pushed = {}
        for name, tree in trees.items():
            options = BuildOptions(context=tree, tag=tags[name], reproducible=True)
            build_image(VARIANT, dataclasses.replace(options, progress="quiet"))
            pushed[name] = registry.push(
                VARIANT, local_registry, image=tags[name], tag=tags[name].partition(":")[2]
            ).digest_reference
        yield pushed
    finally:
        for tag in tags.values():
            engine.cli("rmi", tag)


def test_a_pushed_image_rebuilds_to_its_digest_and_a_changed_one_does_not(
    pushed_images: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not engine.containerd_store(engine.client()):
        pytest.skip("the classic store's images are not reproducible (README 'Reproducible')")
    rebuilds: list[Path] = []
    build_clean = reproducible.build_clean

    def rebuild_once(variant: Variant, context: Path, archive: Path, **options: Any) -> Path:
        # Both images name one commit: a second cold build of it (minutes) would be the same.
        if not rebuilds:
            rebuilds.append(build_clean(variant, context, tmp_path / "rebuilt.tar", **options))
        return Path(shutil.copy(rebuilds[0], archive))

    monkeypatch.setattr(reproducible, "build_clean", rebuild_once)
    same = pushed_images["same"]
    proved = verification.check_rebuild(same, verification.labels_of(same))
    assert "rebuilt from commit" in proved, proved
    changed = pushed_images["changed"]
    with pytest.raises(NotReproducible) as differs:
        verification.check_rebuild(changed, verification.labels_of(changed))
    assert "rebuilt here is sha256:" in differs.value.message
    assert f"layer {len(registry.read(changed)[0].layers)} of" in differs.value.message
    assert differs.value.exit_code == 32

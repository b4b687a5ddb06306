"""The reproducibility check names what differs: two builds of one commit but for one byte of
the service's code give other digests, and the check says which file, in which layer.

(`nox -s reproducible` proves the other half: two cold builds on two clean engines agree.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service_images import inputs, reproducible
from service_images.build import BuildOptions, build_image
from service_images.errors import NotReproducible
from service_images.variants import SERVICE_SOURCE, get_variant

VARIANT = get_variant("ci")


def build(context: Path, archive: Path) -> Path:
    build_image(VARIANT, BuildOptions(context=context, oci_archive=archive, progress="quiet"))
    return archive


def test_one_byte_changed_is_named(tmp_path: Path) -> None:
    same, changed = (
        inputs.export_commit(tmp_path / "same"),
        inputs.export_commit(tmp_path / "changed"),
    )
    main = changed / SERVICE_SOURCE.relative_to(SERVICE_SOURCE.parents[1]) / "main.py"
    main.write_bytes(main.read_bytes() + b" ")
    first = build(same, tmp_path / "first.tar")
    again = build(same, tmp_path / "again.tar")
    assert reproducible.compare(first, again), "two builds of the same inputs differ"
    with pytest.raises(NotReproducible) as differs:
        reproducible.compare(first, build(changed, tmp_path / "changed.tar"))
    assert "the first file that differs is /app/app/main.py in layer" in differs.value.message
    assert differs.value.exit_code == 32

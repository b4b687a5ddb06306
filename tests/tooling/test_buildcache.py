"""Telling the project's BuildKit records from the engine's other cache (no engine: a real
`docker buildx du --verbose` of BuildKit 0.13, with a foreign build's records among ours)."""

from __future__ import annotations

from pathlib import Path

from service_images import buildcache, project
from service_images.buildcache import CACHE_ID_PREFIX
from service_images.variants import VARIANTS

# Recorded `docker buildx du --verbose` output, the project's name written as @NAME@.
DU = (Path(__file__).parent / "fixtures" / "buildx-du-verbose.txt").read_text()
DU = DU.replace("@NAME@", project.NAME)


def test_records_are_parsed_and_the_in_use_marker_is_not_part_of_the_id() -> None:
    records = buildcache.parse_du_verbose(DU)
    assert [record.type for record in records] == [
        "exec.cachemount", "exec.cachemount", "regular", "regular", "regular", "source.local",
    ]  # fmt: skip
    assert records[0].mount_id == f"{CACHE_ID_PREFIX}uv"
    assert records[1].mount_id == "someone-else"
    assert records[2].mount_id is None
    parsed = buildcache.parse_du_verbose("ID:\t\tabc123*\nType:\t\tregular\nDescription:\tx\n")
    assert parsed[0].id == "abc123"


def test_ours_are_our_cache_mounts_and_our_dockerfiles_steps() -> None:
    dockerfiles = [variant.dockerfile.read_text() for variant in VARIANTS.values()]
    ours = buildcache.select(buildcache.parse_du_verbose(DU), dockerfiles)
    assert [record.id for record in ours] == [
        "apc3am49vhajjgr38o3pl1i8i",  # the uv cache mount, by its id
        "c8btf1vr781rsixememjemt5t",  # an install-tier.sh step
        "mr5wqxgrczpibh3lgznbcaone",  # COPY --from=service /opt/venv /opt/venv
    ]  # not: a foreign cache mount, a foreign RUN, the build context any build makes


def test_a_step_our_dockerfiles_no_longer_have_is_not_ours() -> None:
    changed = [VARIANTS["ci"].dockerfile.read_text().replace("install-tier.sh install", "x.sh")]
    ours = buildcache.select(buildcache.parse_du_verbose(DU), changed)
    assert "c8btf1vr781rsixememjemt5t" not in [record.id for record in ours]


def test_step_descriptions_join_continued_lines_and_strip_run_flags() -> None:
    dockerfile = "FROM x\nRUN --mount=type=cache,id=a,target=/c \\\n    echo  one \\\n    two\n"
    assert buildcache.step_descriptions(dockerfile) == {"mount / from exec /bin/sh -c echo one two"}


def test_id_filter_matches_exactly_the_given_records() -> None:
    assert buildcache.id_filter(["b2", "a1"]) == "id=^(a1|b2)$"


def test_a_record_built_on_a_foreign_one_is_foreign_too() -> None:
    records = buildcache.parse_du_verbose(DU)
    assert records[2].parent == "u3wz7cnwqtg236tnhgnyioj2h"
    # A test's own step under our install step, and our COPY step on top of that test step.
    theirs = buildcache.CacheRecord("t1", "regular", "x", parent="c8btf1vr781rsixememjemt5t")
    ours_on_theirs = buildcache.CacheRecord("o1", "regular", "y", parent="t1")
    found = buildcache.with_descendants([*records, theirs, ours_on_theirs], {"t1"})
    assert found == {"t1", "o1"}, "the install step under it is not the test's"

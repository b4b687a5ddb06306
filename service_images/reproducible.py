"""Two builds of one commit, compared: the same platform-manifest digest, or the first file that
differs.

The builds are OCI archives (BuildKit's `type=oci` output, with SOURCE_DATE_EPOCH and
`rewrite-timestamp`), made on two clean engines by `nox -s reproducible` and by the bench. The
index digest is not compared: BuildKit's provenance attestation in it names the build's own
machine and time. A platform's manifest is: its config and its layers.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from service_images import inputs, private_engine
from service_images.archive import compression, decompressed
from service_images.build import VERSION_LABEL, BuildOptions, build_image, git, oci_labels
from service_images.errors import NotReproducible
from service_images.variants import DEFAULT_BASE_IMAGE, Variant


@dataclass(frozen=True)
class Entry:
    """One file of a layer, as far as a digest depends on it."""

    kind: str
    mode: int
    owner: tuple[int, int]
    mtime: int
    content: str
    """The sha256 of a file's bytes, or a link's target."""


class OciArchive:
    """An OCI layout tar on disk, read at random (BuildKit writes one per build)."""

    def __init__(self, path: Path, tar: tarfile.TarFile) -> None:
        self.path = path
        self._tar = tar

    def blob(self, digest: str) -> IO[bytes]:
        member = self._tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        if member is None:
            raise NotReproducible(f"{self.path.name} has no blob {digest}.")
        return member

    def json(self, digest: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.blob(digest).read())
        return found

    def platform_manifests(self) -> dict[str, str]:
        """platform -> manifest digest, for each image (not attestation) of the archive."""
        index_json = self._tar.extractfile("index.json")
        assert index_json is not None
        found = {}
        for top in json.loads(index_json.read())["manifests"]:
            entries = self.json(top["digest"]).get("manifests", [top])
            for entry in entries:
                platform = entry.get("platform") or {}
                if "unknown" in (platform.get("os"), platform.get("architecture")):
                    continue  # BuildKit's attestation manifest
                manifest = self.json(entry["digest"])
                config = self.json(manifest["config"]["digest"])
                found[f"{config['os']}/{config['architecture']}"] = entry["digest"]
        return found

    def entries(self, layer_digest: str) -> dict[str, Entry]:
        """path -> what a digest depends on, for each file of a layer."""
        blob = self.blob(layer_digest)
        kind = compression(blob.peek(512)[:512]) or "none"  # type: ignore[attr-defined]
        found = {}
        with tarfile.open(fileobj=decompressed(blob, kind), mode="r|") as layer:
            for member in layer:
                content = member.linkname
                if member.isfile():
                    data = layer.extractfile(member)
                    assert data is not None
                    digest = hashlib.sha256()
                    while chunk := data.read(1 << 20):
                        digest.update(chunk)
                    content = digest.hexdigest()
                owner = (member.uid, member.gid)
                found["/" + member.name.removeprefix("./")] = Entry(
                    member.type.decode(), member.mode, owner, int(member.mtime), content
                )
        return found


def compare(first: Path, second: Path) -> dict[str, str]:
    """platform -> manifest digest, the same in both archives; NotReproducible naming the first
    file that differs (its path, its layer and both hashes) when they are not."""
    with tarfile.open(first) as tar_a, tarfile.open(second) as tar_b:
        a, b = OciArchive(first, tar_a), OciArchive(second, tar_b)
        manifests_a, manifests_b = a.platform_manifests(), b.platform_manifests()
        if manifests_a.keys() != manifests_b.keys():
            raise NotReproducible(
                f"the builds hold other platforms: {sorted(manifests_a)} and {sorted(manifests_b)}."
            )
        for platform, digest in manifests_a.items():
            if digest != manifests_b[platform]:
                raise NotReproducible(
                    f"{platform}: {digest} and {manifests_b[platform]} differ: "
                    + first_difference(a, b, digest, manifests_b[platform])
                )
        return manifests_a


def first_difference(a: OciArchive, b: OciArchive, digest_a: str, digest_b: str) -> str:
    manifest_a, manifest_b = a.json(digest_a), b.json(digest_b)
    layers = zip(manifest_a["layers"], manifest_b["layers"], strict=False)
    for number, (layer_a, layer_b) in enumerate(layers, start=1):
        if layer_a["digest"] == layer_b["digest"]:
            continue
        entries_a, entries_b = a.entries(layer_a["digest"]), b.entries(layer_b["digest"])
        for path in sorted(entries_a.keys() | entries_b.keys()):
            one, other = entries_a.get(path), entries_b.get(path)
            if one != other:
                return (
                    f"the first file that differs is {path} in layer {number} "
                    f"({layer_a['digest'][:19]} and {layer_b['digest'][:19]}): "
                    f"{describe(one)} and {describe(other)}."
                )
        return f"layer {number} differs in its tar framing only (same files, same metadata)."
    if len(manifest_a["layers"]) != len(manifest_b["layers"]):
        return f"{len(manifest_a['layers'])} layers and {len(manifest_b['layers'])}."
    config_a, config_b = (
        a.json(manifest_a["config"]["digest"]),
        b.json(manifest_b["config"]["digest"]),
    )
    fields = list(differing_fields(config_a, config_b))
    return f"the same layers; the image configs differ: {'; '.join(fields) or 'in their bytes'}."


def differing_fields(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Where two JSON values differ, field by field: `config.Labels.x: 'one' and 'other'`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            yield from differing_fields(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    elif a != b:
        yield f"{path}: {a!r} and {b!r}"


def describe(entry: Entry | None) -> str:
    if entry is None:
        return "absent"
    what = f"sha256 {entry.content[:16]}" if entry.kind in ("0", "\0") else f"-> {entry.content}"
    owner = f"{entry.owner[0]}:{entry.owner[1]}"
    return f"{what} (mode {entry.mode:o}, owner {owner}, mtime {entry.mtime})"


def platform_layers(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """platform -> (manifest digest, its layers' digests), for each image of an OCI archive."""
    with tarfile.open(path) as tar:
        archive = OciArchive(path, tar)
        return {
            platform: (digest, tuple(layer["digest"] for layer in archive.json(digest)["layers"]))
            for platform, digest in archive.platform_manifests().items()
        }


def build_clean(
    variant: Variant,
    context: Path,
    archive: Path,
    base_image: str = DEFAULT_BASE_IMAGE,
    **options: Any,
) -> Path:
    """`variant` built cold from `context` on a clean engine (containerd store) into `archive`;
    `options`: more BuildOptions (labels, platform)."""
    with private_engine.running("containerd") as clean:
        clean.load(base_image)
        with clean.activated():
            build_image(
                variant,
                BuildOptions(
                    context=context,
                    oci_archive=archive,
                    progress="quiet",
                    base_image=base_image,
                    **options,
                ),
            )
    return archive


@dataclass(frozen=True)
class TwoBuilds:
    """Two cold builds of one commit on two clean engines, compared."""

    revision: str
    """The commit built."""
    seconds: tuple[float, float]
    digests: dict[str, str]
    """platform -> the first build's manifest digest."""
    differing_layers: int
    """Layers at the same place in a platform's image that differ (0: the same images)."""
    difference: str | None
    """Where they differ: the platform, both digests, the first differing file."""


def build_twice(variant: Variant, work: Path, base_image: str = DEFAULT_BASE_IMAGE) -> TwoBuilds:
    """Build this commit's `variant` cold on two clean engines and compare the archives (they
    are removed afterwards)."""
    context = inputs.export_commit(work / "commit")
    # Both builds get the commit's labels, taken once: the working tree's state (`--dirty`) says
    # nothing of an exported commit, and it may change between the two builds.
    version = git("describe", "--tags", "--always") or "unknown"
    labels = {**oci_labels(variant, base_image), VERSION_LABEL: version}
    archives, seconds = [], []
    try:
        for n in (1, 2):
            started = time.monotonic()
            archive = work / f"{variant.name}-{n}.tar"
            archives.append(build_clean(variant, context, archive, base_image, labels=labels))
            seconds.append(round(time.monotonic() - started, 1))
        first, second = (platform_layers(archive) for archive in archives)
        try:
            compare(*archives)
            difference = None
        except NotReproducible as error:
            difference = error.message
    finally:
        for archive in archives:
            archive.unlink(missing_ok=True)
    return TwoBuilds(
        revision=labels["org.opencontainers.image.revision"],
        seconds=(seconds[0], seconds[1]),
        digests={platform: digest for platform, (digest, _) in first.items()},
        differing_layers=differing_layers(first, second),
        difference=difference,
    )


def differing_layers(
    first: dict[str, tuple[str, tuple[str, ...]]], second: dict[str, tuple[str, tuple[str, ...]]]
) -> int:
    """How many layers, place by place in each platform's image, differ (an extra one counts)."""
    count = 0
    for platform in first.keys() | second.keys():
        a, b = first.get(platform, ("", ()))[1], second.get(platform, ("", ()))[1]
        count += sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
    return count

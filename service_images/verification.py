"""What `invoke sign` signs and `invoke verify` proves about a pushed image (cosign: signing.py).

`verify()` proves four things about REPO@sha256:... (or REPO:TAG with the digest it must name),
and stops at the first that fails, with its own exit code: a tag given with `--digest` still
names that digest (35); the signature is the signer's (33 none at all, 34 another signer's); a
CycloneDX attestation by the same signer lists exactly the lock of the variant the image's label
names (33 none, 34 another signer's, 18 differs); BuildKit's provenance on the index, when the
push carried one, names the commit and repository of the image's labels (36); with `rebuild`, that
commit rebuilt cold on a clean engine gives each platform's digest (32). `docker push` from the
classic store carries no provenance: the check says so and proves nothing there.

`sign_and_attest()` signs only an SBOM that is the image's lock: the same check, before signing.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from service_images import inputs, project, registry, reproducible, sbom
from service_images.build import base_image_digest
from service_images.errors import (
    BadOption,
    MissingFile,
    NotReproducible,
    ProvenanceMismatch,
    SbomMismatch,
    Tampered,
)
from service_images.lockfile import locked_versions
from service_images.signing import (
    SIGNER_OPTIONS,
    Signer,
    attest_sbom,
    digest_reference,
    sign,
    verified_sboms,
    verify_signature,
)
from service_images.variants import DEFAULT_BASE_IMAGE, VARIANT_LABEL, Variant, get_variant

BUILDKIT_METADATA = "https://mobyproject.org/buildkit@v1#metadata"
REVISION_LABEL = "org.opencontainers.image.revision"
SOURCE_LABEL = "org.opencontainers.image.source"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
VERIFY_OPTIONS = {
    "reference": "REPO@sha256:... to verify, or REPO:TAG with --digest.",
    "digest": "The digest the tag must name (sha256:..., as signed): a moved tag exits 35.",
    **SIGNER_OPTIONS,
    "rebuild": "Also rebuild the revision label's commit here, cold on a clean engine (this clone "
    "must hold the commit), and compare its digests: a difference exits 32.",
}


def labels_of(reference: str) -> dict[str, str]:
    """The image's labels, from its (first platform's) config in the registry."""
    configs = registry.image_configs(reference)
    labels: dict[str, str] = (configs[0].get("config") or {}).get("Labels") or {} if configs else {}
    return labels


def variant_of(labels: Mapping[str, str], reference: str) -> Variant:
    if VARIANT_LABEL not in labels:
        raise SbomMismatch(f"{reference} has no {VARIANT_LABEL} label: which variant is it?")
    return get_variant(labels[VARIANT_LABEL])


def check_sboms(boms: list[dict[str, Any]], labels: Mapping[str, str], reference: str) -> str:
    """Each attested SBOM lists exactly the lock of the image's variant; that lock's name."""
    variant = variant_of(labels, reference)
    for bom in boms:
        expected = locked_versions(variant.lock, sbom.platform(bom))
        sbom.check_against_lock(bom, expected, variant.lock.name)
    return variant.lock.name


def same_repository(first: str, second: str) -> bool:
    def plain(url: str) -> str:
        return url.strip().removesuffix("/").removesuffix(".git").lower()

    return plain(first) == plain(second)


def check_provenance(reference: str, labels: Mapping[str, str]) -> str:
    """What the provenance proved, or that there is none; ProvenanceMismatch where it differs."""
    documents = registry.provenance(reference)
    if not documents:
        return "none attached (`docker push` from the classic store carries none): not checked"
    revision, source = labels.get(REVISION_LABEL, "unknown"), labels.get(SOURCE_LABEL, "unknown")
    for document in documents:
        vcs = (document.get("metadata") or {}).get(BUILDKIT_METADATA, {}).get("vcs", {})
        if vcs.get("revision") != revision:
            raise ProvenanceMismatch(
                f"{reference}: the provenance names commit {vcs.get('revision', 'none')}, its "
                f"{REVISION_LABEL} label {revision}."
            )
        if source != "unknown" and vcs.get("source") and not same_repository(vcs["source"], source):
            raise ProvenanceMismatch(
                f"{reference}: the provenance names repository {vcs['source']}, its "
                f"{SOURCE_LABEL} label {source}."
            )
    where = f" of {source}" if source != "unknown" else " (no source repository recorded)"
    return f"{len(documents)} platform(s) built from commit {revision}{where}"


def check_rebuild(reference: str, labels: Mapping[str, str]) -> str:
    """Rebuild the commit of the image's revision label on a clean engine, with the image's own
    labels (where it was pushed from, its version: facts about the push, not the build), and
    compare each platform's manifest digest; NotReproducible where one differs."""
    started = time.monotonic()
    revision = labels.get(REVISION_LABEL, "unknown")
    variant = variant_of(labels, reference)
    base = labels.get(BASE_NAME_LABEL, DEFAULT_BASE_IMAGE)
    wanted, here = labels.get(BASE_DIGEST_LABEL), base_image_digest(base)
    if wanted and wanted != here:
        raise NotReproducible(
            f"{reference} was built on {base}@{wanted}, and {base} here is {here or 'missing'}: "
            f"pull that one (`docker pull {base}@{wanted}`, then tag it {base})."
        )
    pushed = {image.platform: image for image in registry.read(reference)}
    with tempfile.TemporaryDirectory(prefix=f"{project.NAME}-rebuild-") as work:
        context = inputs.export_commit(Path(work) / "commit", revision)
        print(f"==> rebuilding commit {revision} cold on a clean engine", flush=True)
        rebuilt = reproducible.platform_layers(
            reproducible.build_clean(
                variant,
                context,
                Path(work) / "rebuilt.tar",
                labels=labels,
                platform=",".join(sorted(pushed)),
                base_image=base,
            )
        )
    for platform, image in sorted(pushed.items()):
        digest = image.digest_reference.rpartition("@")[2]
        again, layers = rebuilt.get(platform, ("none", ()))
        if again != digest:
            raise NotReproducible(
                f"{platform}: {reference} is {digest}, commit {revision} rebuilt here is {again} "
                f"({layer_difference([layer.digest for layer in image.layers], layers)}): "
                "`nox -s reproducible` at that commit names the first differing file."
            )
    seconds = time.monotonic() - started
    platforms = ", ".join(sorted(pushed))
    return f"{platforms} rebuilt from commit {revision}: the same digests ({seconds:.0f} s)"


def layer_difference(pushed: Sequence[str], rebuilt: Sequence[str]) -> str:
    if len(pushed) != len(rebuilt):
        return f"{len(pushed)} layers pushed, {len(rebuilt)} rebuilt"
    pairs = enumerate(zip(pushed, rebuilt, strict=True), start=1)
    differing = [str(number) for number, (one, other) in pairs if one != other]
    if not differing:
        return "the same layers, another config"
    if len(differing) == 1:
        return f"layer {differing[0]} of {len(pushed)} differs"
    return f"layers {', '.join(differing)} of {len(pushed)} differ"


def resolve(reference: str, expected_digest: str | None) -> str:
    """REPO@sha256:... to verify; a tag must still name the expected digest (else Tampered)."""
    repository, tag_or_digest = registry.split_reference(reference)
    if expected_digest is None:
        return digest_reference(reference)
    if not expected_digest.startswith("sha256:"):
        raise BadOption(f"--digest {expected_digest!r} is not sha256:....")
    if tag_or_digest.startswith("sha256:"):
        if tag_or_digest != expected_digest:
            raise Tampered(f"{reference} is not the expected {expected_digest}.")
        return reference
    found = registry.digest_of(reference)
    if found != expected_digest:
        raise Tampered(
            f"{reference} names {found}, not the signed {expected_digest}: the tag was moved."
        )
    return f"{repository}@{expected_digest}"


def verify(
    reference: str, signer: Signer, expected_digest: str | None = None, rebuild: bool = False
) -> list[str]:
    """Every check of the module's docstring, in order; what each proved, one line each."""
    started = time.monotonic()
    signer.check(verifying=True)
    pinned = resolve(reference, expected_digest)
    lines = [f"{reference} names {pinned.rpartition('@')[2]}"] if pinned != reference else []
    labels = labels_of(pinned)
    count = verify_signature(pinned, signer)
    lines.append(f"signature: {count} by {signer}")
    boms = verified_sboms(pinned, signer)
    lock = check_sboms(boms, labels, pinned)
    lines.append(f"SBOM: {len(boms)} CycloneDX attestation(s) by {signer}, exactly {lock}")
    lines.append(f"provenance: {check_provenance(pinned, labels)}")
    if rebuild:
        lines.append(f"rebuild: {check_rebuild(pinned, labels)}")
    lines.append(f"verified {pinned} in {time.monotonic() - started:.1f} s")
    return lines


def sign_and_attest(reference: str, signer: Signer, bom_path: Path | None = None) -> list[str]:
    """Sign the digest and attest the SBOM (default: `invoke sbom`'s for the image's variant),
    refused where it differs from that variant's lock."""
    started = time.monotonic()
    pinned = digest_reference(reference)
    signer.check(verifying=False)
    labels = labels_of(pinned)
    if bom_path is None:
        if VARIANT_LABEL not in labels:
            raise BadOption(f"{pinned} has no {VARIANT_LABEL} label: give --sbom FILE.")
        bom_path = sbom.default_output(get_variant(labels[VARIANT_LABEL]))
    if not bom_path.is_file():
        raise MissingFile(f"no SBOM {bom_path}: `invoke sbom --variant VARIANT` writes it.")
    bom = json.loads(bom_path.read_text(encoding="utf-8"))
    lock = check_sboms([bom], labels, pinned)
    sign(pinned, signer)
    attest_sbom(pinned, bom_path, signer)
    return [
        f"signed {pinned} with {signer}",
        f"attested {bom_path} ({len(bom.get('components', []))} components, exactly {lock})",
        f"signed and attested in {time.monotonic() - started:.1f} s",
    ]

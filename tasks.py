"""Build, inspect and clean the service's images (`invoke --list`).

Thin entry points: the logic lives in the `service_images` package, and the variants in its
one table (`service_images/variants.py`).
"""

from __future__ import annotations

import dataclasses
import inspect
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task, task

from service_images import base_image as base
from service_images import contract, housekeeping, locks, platforms
from service_images.build import BuildOptions, build_image
from service_images.cli import set_up, user_errors
from service_images.signing import SIGNER_OPTIONS
from service_images.variants import (
    DEFAULT_BASE_IMAGE,
    IMAGE_NAME,
    ROOT,
    VARIANTS,
    Variant,
    get_variant,
)
from service_images.verification import VERIFY_OPTIONS

set_up()

BUILD_HELP = BuildOptions.user_options()


def build_task(
    name: str, doc: str, build: Callable[[BuildOptions], None], *, tag: bool
) -> Task[Any]:
    """A task whose options are BuildOptions' user options (one place documents them)."""
    options = {name: text for name, text in BUILD_HELP.items() if tag or name != "tag"}
    defaults = {f.name: f.default for f in dataclasses.fields(BuildOptions) if f.name in options}

    def body(c: Context, **given: Any) -> None:
        build(BuildOptions(**given))

    parameters = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(option, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for option, default in defaults.items()
    ]
    body.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    body.__doc__ = doc
    made: Task[Any] = task(name=name, help=options, auto_shortflags=False)(user_errors()(body))
    return made


def variant_build_task(variant: Variant) -> Task[Any]:
    """`invoke build-<variant>`, made from the variants table."""

    def build_variant(options: BuildOptions) -> None:
        build_image(variant, options)

    doc = f"Build the {variant.description} ({variant.dockerfile.name})."
    return build_task(f"build-{variant.name}", doc, build_variant, tag=True)


build_ci = variant_build_task(VARIANTS["ci"])
build_full = variant_build_task(VARIANTS["full"])


def build_every_variant(options: BuildOptions) -> None:
    for variant in VARIANTS.values():
        build_image(variant, options)


build = build_task("build", "Build every image variant.", build_every_variant, tag=False)


@task(
    help={
        "tag": f"Tag for the bootstrapped image (default {DEFAULT_BASE_IMAGE}; on the classic "
        "image store another platform than this machine's gets a tag of its own: "
        "python:3.11-slim-arm64).",
        "platform": "linux/amd64 or linux/arm64 (default: this machine's); another one is "
        "bootstrapped under QEMU. On the containerd store it joins the tag's other platform.",
        "if_missing": "Do nothing when the tag already holds that platform.",
    }
)
@user_errors()
def base_image(
    c: Context, tag: str | None = None, platform: str | None = None, if_missing: bool = False
) -> None:
    """Build a python:3.11-slim equivalent from Debian packages (no registry needed)."""
    from service_images import engine
    from service_images.build import image_platforms

    target = platforms.get_platform(platform)
    sdk = engine.client()
    classic = not engine.containerd_store(sdk)
    tag = tag or platforms.base_image_for(DEFAULT_BASE_IMAGE, target, one_platform_per_tag=classic)
    if if_missing and engine.image_exists(sdk, tag) and target.arch in image_platforms(sdk, tag):
        print(f"==> {tag} already holds {target.docker}")
        return
    base.bootstrap(tag, target)


@task(
    help={
        "base_image": f"Base image to look for (default {DEFAULT_BASE_IMAGE}).",
        "ca_bundle": BUILD_HELP["ca_bundle"],
    }
)
@user_errors()
def doctor(c: Context, base_image: str = DEFAULT_BASE_IMAGE, ca_bundle: str | None = None) -> None:
    """Check that this machine can build the images; exit non-zero when something blocks a build."""
    housekeeping.doctor(base_image=base_image, ca_bundle=ca_bundle)


@task(
    help={
        "base": "Also remove the base image `invoke base-image` bootstrapped here.",
        "running": "Also stop and remove this checkout's running containers.",
    }
)
@user_errors()
def clean(c: Context, base: bool = False, running: bool = False) -> None:
    """Remove what this checkout created: its images, stopped containers, the project's cache."""
    housekeeping.clean(include_base=base, running=running)


@task(
    help={
        "variant": f"Contract to verify: {' or '.join(VARIANTS)}.",
        "image": "Image to verify (default: the variant's tag); it is not built.",
    }
)
@user_errors()
def test_image(c: Context, variant: str = "ci", image: str | None = None) -> None:
    """Verify an existing image against its variant's contract (pytest + testinfra)."""
    chosen = get_variant(variant)  # an unknown variant is one line, not a pytest usage dump
    command = [sys.executable, *contract.pytest_args(chosen.name, image or chosen.tag)]
    # A failing contract passes pytest's exit code through (invoke's UnexpectedExit).
    with c.cd(str(ROOT)):
        c.run(shlex.join(command))


@task(
    help={
        "upgrade": "Move every package to the newest version the pins allow.",
        "upgrade_package": "Move this package to the newest version the pins allow; every other "
        "pin stays where the current locks have it (repeatable).",
    },
    iterable=["upgrade_package"],
)
@user_errors()
def lock(c: Context, upgrade: bool = False, upgrade_package: list[str] | None = None) -> None:
    """Resolve requirements.txt and requirements-ci.txt into hash-pinned locks, all or none."""
    for line in locks.lock_all(upgrade=upgrade, upgrade_packages=upgrade_package or ()):
        print(line)


@task(
    help={
        "variant": "Which image to measure: ci, full or all (default all; full wants ~70 GB free "
        "and a long time).",
        "keep": "Keep the bench's images and build cache (default: remove what it created).",
        "output": "Where bench.json, bench.md, bench.png and the build log go (default reports).",
        "base_image": BUILD_HELP["base_image"],
        "ca_bundle": BUILD_HELP["ca_bundle"],
    }
)
@user_errors()
def bench(
    c: Context,
    variant: str = "all",
    keep: bool = False,
    output: str = "reports",
    base_image: str = DEFAULT_BASE_IMAGE,
    ca_bundle: str | None = None,
) -> None:
    """Measure each image against the pre-project Dockerfile in one run; exit 10 over a budget."""
    # Imported here: the bench pulls in more than the other tasks need to start.
    from service_images.bench.run import BenchOptions, parse_variants, run_bench

    run_bench(BenchOptions(parse_variants(variant), keep, Path(output), base_image, ca_bundle))


@task(
    help={
        "results": "Bench results for the performance section (default docs/bench.json).",
        "check": "Only compare: exit 14 when README.md differs from what its sources render.",
    }
)
@user_errors()
def readme(c: Context, results: str = "docs/bench.json", check: bool = False) -> None:
    """Regenerate README.md's command table, exit codes and bench figures from their sources."""
    from service_images import readme as sections

    changed = sections.regenerate(results=ROOT / results, check=check)
    print("README.md: " + ("regenerated" if changed else "up to date"))


@task(
    help={"check": "Only compare: exit 14 when a Dockerfile differs from what the table renders."}
)
@user_errors()
def dockerfiles(c: Context, check: bool = False) -> None:
    """Render the Dockerfiles' tier blocks from the variants table and the locks."""
    from service_images import dockerfiles as blocks

    changed = blocks.regenerate(check=check)
    print("Dockerfiles: " + (f"regenerated {', '.join(changed)}" if changed else "up to date"))


@task(
    help={
        "variant": f"Which image to push: {' or '.join(VARIANTS)}.",
        "registry": "Registry HOST[:PORT] (e.g. 127.0.0.1:5000 or ghcr.io/OWNER).",
        "tag": "Tag in the registry (default: the variant's name, e.g. ci).",
        "image": f"Local image to push (default: the variant's tag, e.g. {IMAGE_NAME}:ci).",
        "output": "Where the JSON report goes (default reports/push-<variant>.json).",
    },
    # --registry is a flag like the others: invoke would otherwise take the first word after the
    # task name (even --help) as the registry.
    positional=[],
)
@user_errors()
def push(
    c: Context,
    registry: str | None = None,
    variant: str = "ci",
    tag: str | None = None,
    image: str | None = None,
    output: str | None = None,
) -> None:
    """Push an image; print and record its digest reference and compressed bytes."""
    from service_images import registry as registries

    if not registry:
        raise Exit("error: invoke push needs --registry HOST[:PORT] (e.g. 127.0.0.1:5000).")

    result = registries.push(get_variant(variant), registry, image=image, tag=tag)
    print(f"==> pushed {result.digest_reference}")
    for pushed in result.images:
        print(f"==>   {pushed.platform}: {pushed.digest_reference}")
    print(
        f"==> {result.pushed_bytes / 1e6:.1f} MB compressed in {len(result.blobs)} layers "
        f"({result.layers_uploaded} uploaded, the rest already there) in {result.seconds:.1f} s"
    )
    report = registries.write_report(result, Path(output) if output else None)
    print(f"==> report: {report}")


@task(
    help={
        "variant": f"Which image: {' or '.join(VARIANTS)} (its lock is the expectation).",
        "image": "Image to describe (default: the variant's tag).",
        "output": "Where the CycloneDX JSON goes (default reports/sbom-<variant>.cdx.json).",
    }
)
@user_errors()
def sbom(
    c: Context, variant: str = "ci", image: str | None = None, output: str | None = None
) -> None:
    """Write a CycloneDX SBOM of what the image holds; exit 18 where it differs from the lock."""
    from service_images import engine
    from service_images import sbom as boms
    from service_images.lockfile import locked_versions

    chosen = get_variant(variant)
    bom = boms.image_bom(engine.client(), chosen, image or chosen.tag)
    path = boms.write(bom, Path(output) if output else boms.default_output(chosen))
    print(f"==> {len(bom['components'])} components in {path}")
    # The lock's entries for the image's platform (its markers leave out, say, CUDA on arm64).
    architecture = engine.client().images.get(image or chosen.tag).attrs.get("Architecture")
    expected = locked_versions(chosen.lock, platforms.by_architecture(str(architecture)))
    boms.check_against_lock(bom, expected, chosen.lock.name)
    print(f"==> the image holds exactly {chosen.lock.name}")


@task(
    help={
        "full_image": f"Full image to inventory (default {IMAGE_NAME}:full).",
        "ci_image": f"CI image to inventory (default {IMAGE_NAME}:ci).",
        "full_sbom": "Read the full image's SBOM from this file instead of the image.",
        "ci_sbom": "Read the CI image's SBOM from this file instead of the image.",
    }
)
@user_errors()
def scan_coverage(
    c: Context,
    full_image: str | None = None,
    ci_image: str | None = None,
    full_sbom: str | None = None,
    ci_sbom: str | None = None,
) -> None:
    """Check every distribution of the full image is seen by the CI image scan or the lock audit."""
    import json

    from service_images import engine
    from service_images import sbom as boms
    from service_images.lockfile import locked_versions

    def load(name: str, image: str | None, path: str | None) -> dict[str, Any]:
        if path:
            loaded: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
            return loaded
        chosen = get_variant(name)
        return boms.image_bom(engine.client(), chosen, image or chosen.tag)

    full = load("full", full_image, full_sbom)
    # The full lock's entries for the full image's platform, as its SBOM records it.
    full_lock = locked_versions(VARIANTS["full"].lock, boms.platform(full))
    covered = boms.check_coverage(full, load("ci", ci_image, ci_sbom), full_lock)
    print(f"==> all {covered} distributions of the full image are covered by a scan")


@task(
    help={
        "image": "The pushed image, REPO@sha256:... (`invoke push` prints it; never a tag).",
        "sbom": "CycloneDX SBOM to attest (default: `invoke sbom`'s for the image's variant, "
        "reports/sbom-<variant>.cdx.json).",
        **{name: text for name, text in SIGNER_OPTIONS.items() if name in ("key", "tlog")},
    },
    positional=[],
)
@user_errors()
def sign(
    c: Context,
    image: str | None = None,
    key: str | None = None,
    sbom: str | None = None,
    tlog: bool = True,
) -> None:
    """Sign a pushed image by its digest with cosign and attest its SBOM (keyless without --key)."""
    from service_images import signing, verification

    if not image:
        raise Exit("error: invoke sign needs --image REPO@sha256:... (invoke push prints it).")
    signer = signing.Signer.from_options(key, tlog=tlog)
    for line in verification.sign_and_attest(image, signer, Path(sbom) if sbom else None):
        print(f"==> {line}")


@task(help=VERIFY_OPTIONS)
@user_errors()
def verify(
    c: Context,
    reference: str,
    digest: str | None = None,
    key: str | None = None,
    certificate_identity: str | None = None,
    certificate_identity_regexp: str | None = None,
    certificate_oidc_issuer: str | None = None,
    tlog: bool = True,
    rebuild: bool = False,
) -> None:
    """Verify a pushed image: its signature, its SBOM attestation against the lock, provenance;
    with --rebuild, a rebuild of its commit."""
    from service_images import signing, verification

    if reference in ("-h", "--help"):
        # invoke hands the first word after a positional task's name to it, even --help.
        c.run(shlex.join([sys.executable, "-m", "invoke", "--help", "verify"]))
        return
    signer = signing.Signer.from_options(
        key, certificate_identity, certificate_identity_regexp, certificate_oidc_issuer, tlog
    )
    for line in verification.verify(reference, signer, digest, rebuild):
        print(f"==> {line}")

"""Build an image variant with BuildKit: base image, CA bundle secret, OCI labels from git."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

from service_images import archive, engine, ledger, platforms, tiers
from service_images.errors import (
    BadCABundle,
    BadOption,
    BaseImageMissing,
    BuildFailed,
    EmulationUnavailable,
    MissingFile,
)
from service_images.variants import (
    DEFAULT_BASE_IMAGE,
    IMAGE_NAME,
    PROJECT_LABEL,
    ROOT,
    VARIANT_LABEL,
    Variant,
)

CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")
CA_SECRET_ID = "ca_bundle"  # the Dockerfiles mount it with this id


PROGRESS = ("plain", "tty", "quiet")
# A build's own files, `<tag>-<pid>.*` in its context: its image id, metadata, an archive to load.
RUNS = Path(tiers.STAGE_DIR, "runs")
COMPRESSIONS = ("zstd", "gzip")


def option(default: object, help: str) -> Any:
    """A build option the user sets: the build tasks' options are made from these fields."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class BuildOptions:
    """What the user can set on any build; each field with help is an option of the build tasks."""

    tag: str | None = option(None, f"Image tag (default: the variant's, e.g. {IMAGE_NAME}:ci).")
    no_cache: bool = option(False, "Build without BuildKit's layer cache.")
    base_image: str = option(
        DEFAULT_BASE_IMAGE,
        f"Base image (default {DEFAULT_BASE_IMAGE}; `invoke base-image` makes one).",
    )
    ca_bundle: str | None = option(
        None,
        "CA bundle to trust inside the build (default: SSL_CERT_FILE, REQUESTS_CA_BUNDLE or "
        "PIP_CERT). Passed as a BuildKit secret, never stored in the image.",
    )
    builder: str | None = option(None, "buildx builder to use (e.g. a remote BuildKit).")
    progress: str = option("plain", f"BuildKit progress output: {', '.join(PROGRESS)}.")
    cache_from: str | None = option(
        None, "buildx --cache-from (e.g. type=registry,ref=...): reuse a remote layer cache."
    )
    cache_to: str | None = option(
        None, "buildx --cache-to (e.g. type=registry,ref=...,mode=max): export the cache."
    )
    platform: str | None = option(
        None,
        "linux/amd64, linux/arm64, or both comma-separated (one tag for two platforms: the "
        "containerd image store); default this machine's. Another runs under QEMU.",
    )
    push_to: str | None = option(
        None,
        "Push to this registry (HOST[:PORT][/NAMESPACE]) instead of keeping the image: layers "
        "compressed once, every file dated 1970 (the digest a cold rebuild of this commit gets "
        "anywhere), SLSA provenance attached; the digest is printed.",
    )
    reproducible: bool = option(
        False,
        "Give the image the digest a cold rebuild of this commit gets anywhere (containerd store): "
        "every file dated 1970, written as an OCI archive and loaded, which costs some seconds a "
        "build (6 s for the CI image). `invoke push` then pushes that digest.",
    )
    compression: str | None = option(
        "zstd",
        f"Layer compression: {', '.join(COMPRESSIONS)} (zstd needs Docker 23 or containerd 1.5 "
        "to pull; gzip for older clients).",
    )
    """None: the engine's own, as a plain `docker build` exports (the bench's pre-project image:
    gzip on the containerd store, which then pushes it as stored)."""
    oci_archive: Path | None = None
    """Write the image as an OCI archive here instead (the reproducibility check compares two)."""
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    dockerfile: Path | None = None
    """Build this Dockerfile instead of the variant's (the bench's pre-project reference)."""
    context: Path = ROOT
    """Build context (tests build temporary copies of the repository)."""

    @classmethod
    def user_options(cls) -> dict[str, str]:
        """The options a user sets, with their help."""
        return {f.name: f.metadata["help"] for f in fields(cls) if "help" in f.metadata}

    @property
    def targets(self) -> tuple[platforms.Platform, ...]:
        if self.platform is None:
            return (platforms.host_platform(),)
        return tuple(platforms.get_platform(name.strip()) for name in self.platform.split(","))


@dataclass(frozen=True)
class BuildPlan:
    """One build, decided: `argv()` is the `docker buildx build` arguments, nothing else runs."""

    tag: str
    dockerfile: Path
    context: Path
    targets: tuple[platforms.Platform, ...]
    platform_given: bool
    progress: str
    no_cache: bool
    builder: str | None
    cache_from: str | None
    cache_to: str | None
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    secrets: tuple[str, ...]
    iidfile: Path
    output: str
    """`--output` (or `--load`): where the image goes."""
    metadata_file: Path
    """BuildKit's metadata of the build: the pushed digest."""
    provenance: str | None = None
    loaded_archive: Path | None = None
    """The OCI archive BuildKit writes, then `docker load` takes into the containerd store."""

    @property
    def revision(self) -> str:
        return self.labels.get("org.opencontainers.image.revision", "unknown")

    def argv(self) -> list[str]:
        args = ["--load"] if self.output == "load" else ["--output", self.output]
        args += ["--file", str(self.dockerfile), "--tag", self.tag]
        if self.platform_given:
            args += ["--platform", ",".join(target.docker for target in self.targets)]
        args += ["--progress", self.progress, "--iidfile", str(self.iidfile)]
        args += ["--metadata-file", str(self.metadata_file)]
        if self.provenance:
            args += ["--provenance", self.provenance]
        for flag, value in (
            ("--builder", self.builder),
            ("--cache-from", self.cache_from),
            ("--cache-to", self.cache_to),
        ):
            if value:
                args += [flag, value]
        if self.no_cache:
            args.append("--no-cache")
        for name, value in self.build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        for name, value in self.labels.items():
            args += ["--label", f"{name}={value}"]
        for secret in self.secrets:
            args += ["--secret", secret]
        return [*args, str(self.context)]


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    """What BuildKit built (its --iidfile; pushed: the manifest's digest): the tests refer to the
    image by it, not by the tag."""
    seconds: float
    revision: str


def resolve_ca_bundle(explicit: str | None) -> Path | None:
    """The CA bundle to trust inside the build: --ca-bundle, else the standard variables."""
    if explicit:
        candidates = [("--ca-bundle", explicit)]
    else:
        candidates = [
            (name, os.environ[name]) for name in CA_BUNDLE_VARIABLES if os.environ.get(name)
        ]
    for source, value in candidates[:1]:
        path = Path(value).expanduser()
        if not path.is_file():
            raise BadCABundle(
                f"CA bundle {value} (from {source}) is not a file: pass --ca-bundle PATH to a PEM "
                "bundle, or unset the variable."
            )
        return path
    return None


def git(*args: str) -> str:
    """A git command's output in this checkout, or "" where git or the checkout is missing."""
    result = subprocess.run(
        ("git", *args), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


VERSION_LABEL = "org.opencontainers.image.version"


def oci_labels(
    variant: Variant, base_image: str = DEFAULT_BASE_IMAGE, *, local_base: bool = True
) -> dict[str, str]:
    """OCI annotations from git and the base image: where the image comes from, which commit.

    Nothing here reads the clock: `created` is the commit time, so two builds of one commit carry
    the same labels (and the same config, where the layers are the same). `local_base=False` (a
    remote builder, which resolves the base itself) leaves the base's digest out.
    """
    source = git("remote", "get-url", "origin")
    if "://" not in source and not source.startswith("git@"):
        source = ""  # a clone of a local path: no address anyone else could use
    source = re.sub(r"//[^/@]+@", "//", source)  # never leak credentials from the remote URL
    if not source and os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        source = f"{server}/{os.environ['GITHUB_REPOSITORY']}"
    created = git("log", "-1", "--format=%cI")
    if not created and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        # Outside a checkout (a source archive), the reproducible-builds convention.
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
        created = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    labels = {
        "org.opencontainers.image.title": IMAGE_NAME,
        "org.opencontainers.image.description": variant.description,
        "org.opencontainers.image.source": source or "unknown",
        "org.opencontainers.image.revision": git("rev-parse", "HEAD") or "unknown",
        VERSION_LABEL: git("describe", "--tags", "--always", "--dirty") or "unknown",
        "org.opencontainers.image.created": created or "unknown",
        "org.opencontainers.image.base.name": base_image,
        PROJECT_LABEL: "true",
        VARIANT_LABEL: variant.name,
    }
    if local_base and (digest := base_image_digest(base_image)):
        labels["org.opencontainers.image.base.digest"] = digest
    return labels


def _repository(reference: str) -> str:
    """`python:3.11-slim`, `docker.io/library/python@sha256:..` -> `python` (as RepoDigests say)."""
    name = reference.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[: name.rfind(":")]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        name = name.removeprefix(prefix)
    return name


def base_image_digest(base_image: str) -> str | None:
    """The base image's digest as the local engine knows it, or None.

    The manifest digest it was pulled by (a RepoDigest of the base's own repository; a push of the
    base elsewhere adds RepoDigests that say nothing about its origin), else its image id (the
    config digest: a bootstrapped base was never pulled, yet the id still pins its content).
    """
    if "@sha256:" in base_image:
        return base_image.split("@", 1)[1]  # pinned by digest: the reference says it
    try:
        result = engine.cli(
            "image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", base_image, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0 or not result.stdout.strip():
        return None
    repo_digests, _, image_id = result.stdout.strip().rpartition(" ")
    wanted = _repository(base_image)
    for entry in json.loads(repo_digests or "[]"):
        if _repository(entry) == wanted:
            return str(entry.split("@", 1)[1])
    return image_id or None


def prepare(variant: Variant, options: BuildOptions) -> BuildPlan:
    """Check the inputs, stage what the Dockerfiles mount under `.build/`, read git and the base
    image: everything a build needs, as a plan."""
    if options.progress not in PROGRESS:
        raise BadOption(f"--progress {options.progress!r}: choose one of {', '.join(PROGRESS)}.")
    dockerfile = options.dockerfile or options.context / variant.dockerfile.relative_to(ROOT)
    lock = options.context / variant.lock.relative_to(ROOT)
    # Another Dockerfile (the bench's "before" reference) brings its own inputs.
    ours = options.dockerfile is None
    for needed in (dockerfile, lock) if ours else (dockerfile,):
        if not needed.is_file():
            raise MissingFile(
                f"{needed} is missing: the {variant.name} image is built from it"
                + (" (run `invoke lock`)." if needed == lock else ".")
            )
    ca_bundle = resolve_ca_bundle(options.ca_bundle)
    targets = options.targets
    for target in targets:
        if not options.builder and not target.emulation_ready():
            raise EmulationUnavailable(
                f"cannot build for {target.docker} on this {platforms.host_platform().docker} "
                f"host: no QEMU registered for {target.machine} (scripts/bootstrap.sh registers "
                "it where binfmt_misc can be mounted), or pass --builder with a builder of that "
                "platform."
            )
    if options.compression is not None and options.compression not in COMPRESSIONS:
        raise BadOption(
            f"--compression {options.compression!r}: choose one of {', '.join(COMPRESSIONS)}."
        )
    base = base_for(options)
    staged = tiers.stage(variant, options.context, targets) if ours else {}
    tag = options.tag or variant.tag
    if options.push_to:
        tag = f"{registry_repository(options.push_to)}:{tag.rpartition(':')[2]}"
    run_files = options.context / RUNS / f"{tag.replace('/', '_')}-{os.getpid()}"
    # Through an OCI archive into the containerd store: the engine's BuildKit cannot rewrite file
    # times and unpack (or push) at once (moby/buildkit#4230); `docker push` sends it as built.
    containerd = not options.builder and engine.containerd_store(engine.client())
    if options.reproducible and not (containerd or options.push_to or options.oci_archive):
        raise BadOption(
            "--reproducible loads the image into the containerd store, which pushes it as "
            "built; the classic store compresses it again as it pushes: use the containerd "
            "store, or --push-to (with --builder on the classic store)."
        )
    through_archive = (options.push_to or options.reproducible) and not options.oci_archive
    loaded_archive = run_files.with_suffix(".tar") if containerd and through_archive else None
    return BuildPlan(
        tag=tag,
        dockerfile=dockerfile,
        context=options.context,
        targets=targets,
        platform_given=options.platform is not None,
        progress=options.progress,
        no_cache=options.no_cache,
        builder=options.builder,
        cache_from=options.cache_from,
        cache_to=options.cache_to,
        build_args={
            "BASE_IMAGE": base,
            **staged,
            "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
            **options.build_args,
        },
        labels={**oci_labels(variant, base, local_base=not options.builder), **options.labels},
        secrets=(f"id={CA_SECRET_ID},src={ca_bundle}",) if ca_bundle else (),
        iidfile=run_files.with_suffix(".iid"),
        output=output(options, tag, loaded_archive),
        metadata_file=run_files.with_suffix(".json"),
        provenance="mode=max" if options.push_to or options.oci_archive or loaded_archive else None,
        loaded_archive=loaded_archive,
    )


def push_loaded(variant: Variant, tag: str, push_to: str) -> str:
    """Push the image just loaded as REGISTRY/NAME:TAG, then untag it (it was only pushed);
    the digest pushed."""
    from service_images import registry

    try:
        pushed = registry.push(variant, push_to, image=tag, tag=tag.rpartition(":")[2])
    finally:
        engine.cli("rmi", tag)
    return pushed.digest_reference.rpartition("@")[2]


def registry_repository(push_to: str) -> str:
    from service_images import registry  # registry imports this module's neighbours

    return registry.repository(registry.check_registry(push_to))


# SOURCE_DATE_EPOCH (the reproducible-builds convention): BuildKit dates the image's config and
# history by it and, exporting with rewrite-timestamp, every file of every layer that is newer.
# 1970, as ko and Nix date their images: a date before any build makes every layer a function of
# its content alone, whether its step ran now or came from a cache filled by an older commit (the
# commit's own time left a cached layer with the older build's file times, and changed every layer
# of every commit, so that each push sent the whole image again). The commit's time stays in the
# org.opencontainers.image.created label.
SOURCE_DATE_EPOCH = "0"


def output(options: BuildOptions, tag: str, loaded_archive: Path | None = None) -> str:
    """Where the image goes: a registry, an OCI archive (one asked for, or one to load into the
    containerd store), the containerd store (its layers compressed as asked, once), or `load`
    (the classic store, or a remote builder's tarball)."""
    compressed = (
        f",compression={options.compression},compression-level=3,force-compression=true,"
        "oci-mediatypes=true"
        if options.compression
        else ""
    )
    if options.oci_archive or loaded_archive:
        dest = options.oci_archive or loaded_archive
        return f"type=oci,dest={dest},name={tag}{compressed},rewrite-timestamp=true"
    if options.push_to:
        return f"type=registry,name={tag}{compressed},rewrite-timestamp=true"
    if options.builder or not engine.containerd_store(engine.client()):
        return "load"
    return f"type=image,name={tag}{compressed}"


def base_for(options: BuildOptions) -> str:
    """The base image the build names: a remote builder resolves `base_image` for each platform
    itself, as does the containerd store; the classic store keeps one platform per tag
    (platforms.base_image_for)."""
    (target, *others) = options.targets
    if options.builder or others or target.native:
        return options.base_image
    classic = not engine.containerd_store(engine.client())
    return platforms.base_image_for(options.base_image, target, one_platform_per_tag=classic)


def build_image(variant: Variant, options: BuildOptions) -> BuildResult:
    """Build one variant, streaming BuildKit's progress; BuildFailed names the failing step."""
    plan = prepare(variant, options)
    if not options.builder:
        # A remote builder fetches the base itself; the local engine must have it.
        check_base_platform(plan)
    print(f"==> building {plan.tag} from {plan.dockerfile.name}", flush=True)
    started = time.monotonic()
    output: list[str] = []
    plan.iidfile.parent.mkdir(parents=True, exist_ok=True)
    try:
        if plan.progress == "tty":
            returncode = engine.run_build_on_terminal(plan.argv())
        else:
            returncode, output = engine.run_build(plan.argv())
        seconds = time.monotonic() - started
        if returncode != 0:
            raise BuildFailed(failure_summary(plan.tag, output, returncode))
        metadata = json.loads(plan.metadata_file.read_text())
        image_id = plan.iidfile.read_text().strip() if plan.iidfile.is_file() else ""
        if plan.loaded_archive:
            engine.load_archive(plan.loaded_archive)
            seconds = time.monotonic() - started
            # The store names the image by its index's digest; the iidfile holds the config's.
            image_id = str(metadata["containerimage.digest"])
    finally:
        plan.iidfile.unlink(missing_ok=True)
        plan.metadata_file.unlink(missing_ok=True)
        if plan.loaded_archive:
            plan.loaded_archive.unlink(missing_ok=True)
    digest = str(metadata.get("containerimage.digest", image_id))
    if options.push_to and plan.loaded_archive:
        digest = push_loaded(variant, plan.tag, options.push_to)
        seconds = time.monotonic() - started
    if options.oci_archive or options.push_to:
        if options.push_to:
            print(f"==> pushed {plan.tag.rpartition(':')[0]}@{digest} in {seconds:.1f} s")
        else:
            print(f"==> wrote {options.oci_archive} ({digest[:19]}) in {seconds:.1f} s")
        return BuildResult(plan.tag, digest, seconds, plan.revision)
    ledger.record_image(engine.engine_id(engine.client()), plan.tag, image_id)
    now = engine.cli("image", "inspect", "--format", "{{.Id}}", plan.tag).stdout.strip()
    if now != image_id:
        # Another build of the same tag (another checkout, say) finished after this one.
        print(
            f"==> built {image_id} in {seconds:.1f} s; {plan.tag} now names another "
            f"build's image ({now or 'none'}): use the id.",
            flush=True,
        )
    else:
        print(f"==> built {plan.tag} ({image_id[:19]}) in {seconds:.1f} s", flush=True)
    return BuildResult(plan.tag, image_id, seconds, plan.revision)


def check_base_platform(plan: BuildPlan) -> None:
    """The local base image exists and holds each target's platform (BuildKit on the docker
    driver would otherwise build on the wrong one, or try a registry that may not answer)."""
    sdk = engine.client()
    base = plan.build_args["BASE_IMAGE"]
    foreign = [target for target in plan.targets if not target.native]
    how = f" --platform {foreign[0].docker}" if foreign else ""
    if not engine.image_exists(sdk, base) and foreign:
        raise BaseImageMissing(
            f"base image {base} (for {foreign[0].docker}) is not here: run "
            f"`invoke base-image{how}`, or pass --base-image."
        )
    engine.ensure_base_image(sdk, base)
    if len(plan.targets) > 1 and not engine.containerd_store(sdk):
        raise BadOption(
            "--platform with two platforms needs the containerd image store (the classic store "
            "keeps one platform per tag): README 'Engines'."
        )
    wanted = {target.arch for target in plan.targets}
    if wanted == {sdk.images.get(base).attrs.get("Architecture")}:
        return  # its own platform: no `docker save` of all of it (5 s here, before every build)
    held = image_platforms(sdk, base)
    for target in plan.targets:
        if target.arch not in held:
            raise BaseImageMissing(
                f"base image {base} holds {', '.join(sorted(held))}, the build is for "
                f"{target.docker}: run `invoke base-image --platform {target.docker}`, or pass "
                "--base-image."
            )


def image_platforms(sdk: docker.DockerClient, image: str) -> set[str]:
    """The architectures a local image holds: its own, or on the containerd store every
    platform of its index (read from `docker save`, as the API of Docker 26 does not say)."""
    own = str(sdk.images.get(image).attrs.get("Architecture"))
    if not engine.containerd_store(sdk):
        return {own}
    saved = archive.read_image(sdk, image).metadata
    found = {own}
    for blob in saved.values():
        with contextlib.suppress(ValueError):
            config = json.loads(blob)
            if isinstance(config, dict) and "rootfs" in config and config.get("architecture"):
                found.add(str(config["architecture"]))
    return found


STEP_TITLE = re.compile(r"^#(\d+) (\[.+)$")
STEP_LINE = re.compile(r"^#(\d+) (?:\d+\.\d+ )?(.*)$")


def failure_summary(tag: str, output: list[str], returncode: int, keep: int = 15) -> str:
    """'build of TAG failed at <step>' plus that step's last lines, from BuildKit's plain output."""
    titles: dict[str, str] = {}
    step_lines: dict[str, collections.deque[str]] = collections.defaultdict(
        lambda: collections.deque(maxlen=keep)
    )
    failed = None
    for line in output:
        if title := STEP_TITLE.match(line):
            titles.setdefault(title[1], title[2])
        elif step := STEP_LINE.match(line):
            if step[2].startswith("ERROR:"):
                failed = step[1]
            else:
                step_lines[step[1]].append(step[2])
    if failed is None:
        last = next((line for line in reversed(output) if line.strip()), "no output")
        return f"build of {tag} failed (exit {returncode}): {last.strip()}"
    tail = "\n".join(f"    {line}" for line in step_lines[failed])
    return (
        f"build of {tag} failed at {titles.get(failed, 'step #' + failed)}; its last lines:\n"
        f"{tail}\nfix that step, then build again."
    )

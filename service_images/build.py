"""Build an image variant with BuildKit: base image, CA bundle secret, OCI labels from git."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from service_images import engine, platforms, tiers
from service_images.errors import (
    BadCABundle,
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


@dataclass(frozen=True)
class BuildOptions:
    """What the user can set on any build (the invoke options of the same names)."""

    tag: str | None = None
    no_cache: bool = False
    base_image: str = DEFAULT_BASE_IMAGE
    ca_bundle: str | None = None
    builder: str | None = None
    progress: str = "plain"
    cache_from: str | None = None
    cache_to: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    dockerfile: Path | None = None
    """Build this Dockerfile instead of the variant's (the bench's naive reference)."""
    context: Path = ROOT
    """Build context (tests build temporary copies of the repository)."""
    platform: str | None = None
    """linux/amd64 or linux/arm64 (None: the host's); another than the host's runs under QEMU."""

    @property
    def target(self) -> platforms.Platform:
        return platforms.get_platform(self.platform)

    @property
    def base(self) -> str:
        """The base image for the target platform: a local engine keeps one tag per architecture
        (platforms.base_image_for); a remote builder resolves `base_image` for the platform."""
        if self.builder:
            return self.base_image
        return platforms.base_image_for(self.base_image, self.target)


@dataclass(frozen=True)
class BuildResult:
    tag: str
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
        "org.opencontainers.image.version": git("describe", "--tags", "--always", "--dirty")
        or "unknown",
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


def build_args(variant: Variant, options: BuildOptions) -> list[str]:
    """The arguments after `docker buildx build`."""
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
    target = options.target
    if not options.builder and not target.emulation_ready():
        raise EmulationUnavailable(
            f"cannot build for {target.docker} on this {platforms.host_platform().docker} host: "
            f"no QEMU registered for {target.machine} (scripts/bootstrap.sh registers it where "
            "binfmt_misc can be mounted), or pass --builder with a builder of that platform."
        )
    args = ["--load", "--file", str(dockerfile), "--tag", options.tag or variant.tag]
    if options.platform is not None:
        args += ["--platform", target.docker]
    args += ["--progress", options.progress]
    for flag, value in (
        ("--builder", options.builder),
        ("--cache-from", options.cache_from),
        ("--cache-to", options.cache_to),
    ):
        if value:
            args += [flag, value]
    if options.no_cache:
        args.append("--no-cache")
    staged = tiers.stage(variant, options.context, target) if ours else {}
    build_arguments = {"BASE_IMAGE": options.base, **staged, **options.build_args}
    for name, value in build_arguments.items():
        args += ["--build-arg", f"{name}={value}"]
    base_labels = oci_labels(variant, options.base, local_base=not options.builder)
    for name, value in {**base_labels, **options.labels}.items():
        args += ["--label", f"{name}={value}"]
    if ca_bundle:
        args += ["--secret", f"id={CA_SECRET_ID},src={ca_bundle}"]
    args.append(str(options.context))
    return args


def build_image(variant: Variant, options: BuildOptions) -> BuildResult:
    """Build one variant, streaming BuildKit's progress; BuildFailed names the failing step."""
    args = build_args(variant, options)
    if not options.builder:
        # A remote builder fetches the base itself; the local engine must have it.
        check_base_platform(options)
    tag = options.tag or variant.tag
    print(f"==> building {tag} from {Path(args[args.index('--file') + 1]).name}", flush=True)
    started = time.monotonic()
    output: list[str] = []
    if options.progress == "tty":
        returncode = engine.run_build_on_terminal(args)
    else:
        returncode, output = engine.run_build(args)
    seconds = time.monotonic() - started
    if returncode != 0:
        raise BuildFailed(failure_summary(tag, output, returncode))
    print(f"==> built {tag} in {seconds:.1f} s", flush=True)
    labels = dict(arg.split("=", 1) for arg in args if arg.startswith("org.opencontainers."))
    return BuildResult(tag, seconds, labels.get("org.opencontainers.image.revision", "unknown"))


def check_base_platform(options: BuildOptions) -> None:
    """The local base image exists and is of the target's architecture (BuildKit on the docker
    driver would otherwise build on the wrong one, or try a registry that may not answer)."""
    sdk = engine.client()
    target, base = options.target, options.base
    how = "" if target.native else f" --platform {target.docker}"
    if not engine.image_exists(sdk, base) and not target.native:
        raise BaseImageMissing(
            f"base image {base} (for {target.docker}) is not here: run "
            f"`invoke base-image{how} --tag {base}`, or pass --base-image."
        )
    engine.ensure_base_image(sdk, base)
    architecture = sdk.images.get(base).attrs.get("Architecture")
    if architecture != target.arch:
        raise BaseImageMissing(
            f"base image {base} is {architecture}, the build is for {target.docker}: run "
            f"`invoke base-image{how} --tag {base}`, or pass --base-image."
        )


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

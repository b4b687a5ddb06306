"""Bootstrap a python:3.11-slim equivalent from Debian packages, for machines with no registry.

A drop-in for the official image, so any Dockerfile written for it builds unchanged
(tests/build/test_base_image.py holds it to that): python, python3, pip and pip3 in
/usr/local/bin, first on PATH; `pip install` into the system Python without a venv (no PEP 668
EXTERNALLY-MANAGED marker); `python -m venv` with pip; LANG=C.UTF-8, PYTHON_VERSION, CMD python3;
CA certificates, tzdata and netbase. It differs where Debian does: Python is Debian's 3.11
(/usr/bin/python3.11, packages in /usr/local/lib/python3.11/dist-packages) and pip is the wheel
Debian ships for venvs (python3-pip-whl), with Debian's patches (it trusts the system CA store and
skips its version check); `pip install --upgrade pip` replaces it with upstream's.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from service_images import archive, engine, ledger
from service_images.errors import BudgetExceeded, BuildFailed, EmulationUnavailable, MissingFile
from service_images.platforms import Platform, host_platform
from service_images.variants import BASE_IMAGE_BUDGETS_MB, BASE_LABEL, PROJECT_LABEL

SUITE = "bookworm"  # Debian 12 ships Python 3.11, the version the images are built for
# python3-venv brings ensurepip and Debian's pip and setuptools wheels (python3-pip-whl,
# python3-setuptools-whl), which with python3-wheel-whl also make the system pip, setuptools and
# wheel: python3-pip itself would pull in a compiler toolchain's worth of dependencies.
# netbase (/etc/services, /etc/protocols) and ca-certificates are in the official image too.
PACKAGES = ("python3", "python3-venv", "python3-wheel-whl", "ca-certificates", "netbase")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Documentation, man pages and translations are most of what separates a minbase system from the
# official slim image; dpkg never unpacks them.
EXCLUDED_PATHS = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
)
KEPT_PATHS = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")
PYTHON = "/usr/bin/python3.11"
WHEELS = "/usr/share/python-wheels"
# Hooks run by sh with the new root file system as $1.
CUSTOMIZE_HOOKS = (
    # The official image lets pip install into the system Python; Debian's marker forbids it.
    'rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED',
    # A wheel runs pip itself: Debian's pip wheel installs itself, setuptools and wheel into
    # /usr/local (/usr/local/bin/pip, pip3, pip3.11), like the official 3.11 image's pip,
    # setuptools and wheel. No bytecode, as in the official image.
    f'cd "$1"{WHEELS} && pip=$(echo pip-*.whl) && setuptools=$(echo setuptools-*.whl) '
    f'&& wheel=$(echo wheel-*.whl) && chroot "$1" {PYTHON} "{WHEELS}/$pip/pip" install '
    "--quiet --no-index --no-cache-dir --no-compile --disable-pip-version-check "
    f'--root-user-action=ignore "{WHEELS}/$pip" "{WHEELS}/$setuptools" "{WHEELS}/$wheel"',
    # Debian's pip reads the system CA store (its vendored certifi is patched to
    # /etc/ssl/certs/ca-certificates.crt): the vendored copy of Mozilla's 2022 store is never read,
    # and only goes out of date.
    'rm "$1"/usr/local/lib/python3.11/dist-packages/pip/_vendor/certifi/cacert.pem',
    # `python` and `python3` resolve to /usr/local/bin, as in the official image.
    'ln -s /usr/bin/python3 "$1"/usr/local/bin/python3 && ln -s python3 "$1"/usr/local/bin/python',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log '
    '"$1"/var/cache/debconf/*-old "$1"/root/.cache',
)
VERSION_FILE = "python-version"


def mmdebstrap_command(rootfs: Path, target: Platform | None = None) -> list[str]:
    """mmdebstrap writing the root file system to `rootfs` (a tar), Python's version beside it.

    A foreign architecture's maintainer scripts and hooks run under QEMU (binfmt_misc)."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise MissingFile(
            "mmdebstrap is not installed: `apt-get install mmdebstrap` (scripts/bootstrap.sh does)."
        )
    command = [mmdebstrap, "--quiet", "--mode=auto", "--variant=minbase"]
    command.append(f"--architectures={(target or host_platform()).debian}")
    command.append("--include=" + ",".join(PACKAGES))
    # Merged /usr without the usrmerge package, which would pull in all of perl.
    command.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
    command += [f"--dpkgopt=path-exclude={path}" for path in EXCLUDED_PATHS]
    command += [f"--dpkgopt=path-include={path}" for path in KEPT_PATHS]
    command += [f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS]
    version_file = shlex.quote(str(rootfs.parent / VERSION_FILE))
    command.append(
        f'--customize-hook=chroot "$1" {PYTHON} -c '
        f"'import platform; print(platform.python_version())' > {version_file}"
    )
    return [*command, SUITE, str(rootfs)]


def image_config(python_version: str) -> dict[str, object]:
    """The official image's run configuration (what `docker import --change` sets)."""
    return {
        "Env": [f"PATH={PATH}", "LANG=C.UTF-8", f"PYTHON_VERSION={python_version}"],
        "Cmd": ["python3"],
        "Labels": {PROJECT_LABEL: "true", BASE_LABEL: f"debian-{SUITE}"},
    }


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _sha256(data), "size": len(data)}


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(
    tag: str, python_version: str, rootfs: Path, target: Platform, keep: Path | None = None
) -> Path:
    """A `docker load` archive (OCI layout) of the root filesystem as one layer, for `target`.

    `keep` is `docker save` of the tag as it is: its other platforms' images go into the new
    index too, so on the containerd image store one tag holds both platforms (the classic store
    keeps one platform per tag, and is given none to keep).
    """
    layer_digest = hashlib.sha256()
    with rootfs.open("rb") as layer:
        while chunk := layer.read(1 << 20):
            layer_digest.update(chunk)
    diff_id = f"sha256:{layer_digest.hexdigest()}"
    config = json.dumps(
        {
            "architecture": target.arch,
            "os": "linux",
            "config": image_config(python_version),
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": f"mmdebstrap --architectures={target.debian} {SUITE}"}],
        }
    ).encode()
    layer_descriptor = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": diff_id,
        "size": rootfs.stat().st_size,
    }
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [layer_descriptor],
        }
    ).encode()
    platform = {"os": "linux", "architecture": target.arch}
    descriptors = [{**_descriptor(OCI_MANIFEST, manifest), "platform": platform}]
    blobs: dict[str, bytes] = {_sha256(config): config, _sha256(manifest): manifest}
    kept: list[str] = []
    if keep is not None:
        with tarfile.open(keep) as saved:
            others = [d for d in saved_images(saved) if d["platform"] != platform]
            descriptors = others + descriptors
            kept = [name for name in saved.getnames() if name.startswith("blobs/sha256/")]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
    reference = tag.rpartition(":")[2] if ":" in tag.rpartition("/")[2] else "latest"
    annotations = {
        "io.containerd.image.name": full_name(tag),
        "org.opencontainers.image.ref.name": reference,
    }
    top = {**_descriptor(OCI_INDEX, index.encode()), "annotations": annotations}
    blobs[_sha256(index.encode())] = index.encode()
    out_path = rootfs.with_name("image.tar")
    with tarfile.open(out_path, "w") as out:
        for entry, data in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()),
            *((f"blobs/sha256/{digest[7:]}", data) for digest, data in blobs.items()),
        ):
            info = tarfile.TarInfo(entry)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        out.add(rootfs, arcname=f"blobs/sha256/{diff_id[7:]}")
        written = {f"blobs/sha256/{digest[7:]}" for digest in blobs} | {
            f"blobs/sha256/{diff_id[7:]}"
        }
        if keep is not None:
            with tarfile.open(keep) as saved:
                for member in saved.getmembers():
                    if member.name in kept and member.name not in written:
                        out.addfile(member, saved.extractfile(member))
    return out_path


def full_name(tag: str) -> str:
    """`python:3.11-slim` -> `docker.io/library/python:3.11-slim`, as the image store names it."""
    first = tag.split("/", 1)[0]
    if "/" in tag and ("." in first or ":" in first or first == "localhost"):
        return tag
    return f"docker.io/{tag if '/' in tag else 'library/' + tag}"


def saved_images(saved: tarfile.TarFile) -> list[dict[str, Any]]:
    """The platform images (manifest descriptors with their platform) of a saved OCI layout."""

    def blob(digest: str) -> dict[str, Any]:
        member = saved.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        assert member is not None
        found: dict[str, Any] = json.loads(member.read())
        return found

    index_json = saved.extractfile("index.json")
    assert index_json is not None
    images = []
    for top in json.loads(index_json.read())["manifests"]:
        content = blob(top["digest"])
        for descriptor in content.get("manifests", [top]):
            manifest = blob(descriptor["digest"])
            if "config" not in manifest:
                continue
            config = blob(manifest["config"]["digest"])
            if config.get("architecture") in (None, "unknown"):
                continue  # an attestation
            platform = {"os": config.get("os", "linux"), "architecture": config["architecture"]}
            images.append(
                {key: descriptor[key] for key in ("mediaType", "digest", "size")}
                | {"platform": platform}
            )
    return images


def bootstrap(tag: str, target: Platform | None = None) -> None:
    """mmdebstrap a minimal Debian with Python 3.11 for `target` (default: the host's platform)
    and import it as `tag`."""
    target = target or host_platform()
    if not target.emulation_ready():
        raise EmulationUnavailable(
            f"{target.docker} binaries cannot run on this {host_platform().docker} host: register "
            f"QEMU for {target.machine} (scripts/bootstrap.sh does, where binfmt_misc is allowed)."
        )
    how = "" if target.native else f" for {target.docker}, under QEMU (a few minutes)"
    print(
        f"==> bootstrapping {tag} from Debian {SUITE} packages{how or ' (about a minute)'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="base-image-") as work:
        rootfs = Path(work) / "rootfs.tar"
        built = subprocess.run(mmdebstrap_command(rootfs, target), check=False)
        version_file = Path(work) / VERSION_FILE
        version = version_file.read_text().strip() if version_file.is_file() else ""
        if built.returncode != 0 or not version.startswith("3.11."):
            raise BuildFailed(
                f"could not bootstrap {tag}: mmdebstrap exited {built.returncode}"
                f"{'' if version else ' without reporting a Python version'}; "
                "see the output above."
            )
        sdk = engine.client()
        keep = None
        if engine.facts(sdk).containerd_store and engine.image_exists(sdk, tag):
            # One tag for both platforms: the image keeps the platforms it holds.
            keep = Path(work) / "kept.tar"
            if (saved := engine.cli("save", "--output", str(keep), tag)).returncode != 0:
                raise BuildFailed(f"could not read {tag} to add {target.docker}: {saved.stderr}")
        size_mb, budget_mb = rootfs.stat().st_size / 1e6, BASE_IMAGE_BUDGETS_MB[target.arch]
        loadable = oci_archive(tag, version, rootfs, target, keep)
        rootfs.unlink()  # the archive holds it: one copy on disk at a time
        imported = engine.cli("load", "--input", str(loadable))
        if imported.returncode != 0:
            raise BuildFailed(f"could not load {tag}: {imported.stderr.strip()}")
    ledger.record_image(engine.engine_id(sdk), tag, str(sdk.images.get(tag).id))
    if size_mb > budget_mb:
        raise BudgetExceeded(
            f"{tag} is {size_mb:.0f} MB, over its {budget_mb} MB budget ({target.docker}): check "
            "PACKAGES and EXCLUDED_PATHS in service_images/base_image.py."
        )
    print(f"==> {tag} is ready: Python {version}, {size_mb:.0f} MB", flush=True)


def image_size_mb(tag: str) -> float:
    """Uncompressed, as on either image store (the containerd store's `Size` is compressed)."""
    return archive.read_image(engine.client(), tag).uncompressed_bytes / 1e6

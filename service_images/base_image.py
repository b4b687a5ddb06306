"""Bootstrap a python:3.11-slim equivalent from Debian packages, for machines with no registry."""

from __future__ import annotations

import shutil
import subprocess

from service_images import engine
from service_images.errors import BudgetExceeded, BuildFailed, MissingFile
from service_images.variants import BASE_IMAGE_BUDGET_MB, PROJECT_LABEL

SUITE = "bookworm"  # Debian 12 ships Python 3.11, the version the images are built for
PACKAGES = ("python3", "python3-venv", "ca-certificates", "python-is-python3")
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


def mmdebstrap_command() -> list[str]:
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise MissingFile(
            "mmdebstrap is not installed: `apt-get install mmdebstrap` (scripts/bootstrap.sh does)."
        )
    command = [mmdebstrap, "--quiet", "--mode=auto", "--variant=minbase"]
    command.append("--include=" + ",".join(PACKAGES))
    # Merged /usr without the usrmerge package, which would pull in all of perl.
    command.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
    command += [f"--dpkgopt=path-exclude={path}" for path in EXCLUDED_PATHS]
    command += [f"--dpkgopt=path-include={path}" for path in KEPT_PATHS]
    command.append(
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin '
        '"$1"/var/log/*.log "$1"/var/cache/debconf/*-old'
    )
    return [*command, SUITE, "-"]


def import_command(tag: str) -> list[str]:
    changes = [
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
        f"LABEL {PROJECT_LABEL}=true io.python-ai-service.base=debian-{SUITE}",
    ]
    command = ["docker", "import"]
    for change in changes:
        command += ["--change", change]
    return [*command, "-", tag]


def bootstrap(tag: str) -> None:
    """mmdebstrap a minimal Debian with Python 3.11 and import it as `tag`."""
    print(f"==> bootstrapping {tag} from Debian {SUITE} packages (about a minute)", flush=True)
    with subprocess.Popen(mmdebstrap_command(), stdout=subprocess.PIPE) as rootfs:
        imported = subprocess.run(
            import_command(tag), stdin=rootfs.stdout, capture_output=True, text=True, check=False
        )
        assert rootfs.stdout is not None
        rootfs.stdout.close()
    if rootfs.returncode != 0 or imported.returncode != 0:
        reason = imported.stderr.strip() or f"mmdebstrap exited {rootfs.returncode}"
        raise BuildFailed(f"could not bootstrap {tag}: {reason}; see the output above.")
    size_mb = image_size_mb(tag)
    if size_mb > BASE_IMAGE_BUDGET_MB:
        raise BudgetExceeded(
            f"{tag} is {size_mb:.0f} MB, over its {BASE_IMAGE_BUDGET_MB} MB budget: check "
            "PACKAGES and EXCLUDED_PATHS in service_images/base_image.py."
        )
    print(f"==> {tag} is ready ({size_mb:.0f} MB)", flush=True)


def image_size_mb(tag: str) -> float:
    return float(engine.client().images.get(tag).attrs["Size"]) / 1e6

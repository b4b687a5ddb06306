"""The SBOM and the scan-coverage check, on inventories made here (no engine).

The probe's own output format is exercised by running it on this host's Python: it is stdlib
only, so what it does in an image it does here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from service_images import sbom
from service_images.errors import SbomMismatch, ScanCoverageGap
from service_images.variants import IMAGE_NAME, VARIANTS

VENV = "/opt/venv/lib/python3.11/site-packages"
BASE = "/usr/local/lib/python3.11/site-packages"


def dist(name: str, version: str, environment: str = "service", where: str = VENV) -> Any:
    return sbom.Distribution(name, version, environment, where)


def bom(*distributions: sbom.Distribution, image_id: str = "sha256:" + "1" * 64) -> dict[str, Any]:
    attrs = {
        "Id": image_id,
        "Config": {
            "Labels": {
                "org.opencontainers.image.revision": "abc123",
                "org.opencontainers.image.created": "2026-11-29T01:00:00+00:00",
            }
        },
    }
    return sbom.cyclonedx(VARIANTS["ci"], f"{IMAGE_NAME}:ci", attrs, distributions)


def test_cyclonedx_1_5_with_a_purl_per_distribution() -> None:
    document = bom(dist("fastapi", "0.120.0"), dist("Pip", "25.0", "other", BASE))
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.5")
    assert document["serialNumber"].startswith("urn:uuid:")
    assert document["metadata"]["timestamp"] == "2026-11-29T01:00:00+00:00"
    purls = [component["purl"] for component in document["components"]]
    assert purls == ["pkg:pypi/fastapi@0.120.0", "pkg:pypi/pip@25.0"]  # PEP 503 names
    refs = [component["bom-ref"] for component in document["components"]]
    assert len(set(refs)) == len(refs), "bom-refs must be unique"


def test_the_document_names_the_image_s_platform() -> None:
    """A lock's marker-bound entries (x86_64-only wheels) are judged on the image's platform."""
    assert sbom.platform(bom(dist("a", "1"))).docker == "linux/amd64"
    arm = sbom.cyclonedx(VARIANTS["ci"], "x", {"Id": "y", "Architecture": "arm64"}, [])
    assert sbom.platform(arm).docker == "linux/arm64"


def test_the_same_image_gives_the_same_document() -> None:
    assert bom(dist("a", "1")) == bom(dist("a", "1"))
    assert bom(dist("a", "1"))["serialNumber"] != bom(dist("a", "1"), image_id="x")["serialNumber"]


def test_lock_problems_name_missing_wrong_and_extra() -> None:
    document = bom(
        dist("fastapi", "0.120.0"),
        dist("pandas", "2.0.0"),
        dist("pip", "25.0"),  # in the service's environment, not in the lock
        dist("setuptools", "80.0", "other", BASE),  # elsewhere: not the lock's business
    )
    locked = {"fastapi": "0.120.0", "pandas": "2.3.3", "numpy": "2.3.0"}
    problems = sbom.lock_problems(document, locked)
    assert problems == [
        "numpy: locked 2.3.0, not installed",
        "pandas: locked 2.3.3, installed 2.0.0",
        "pip 25.0: installed, not in the lock",
    ]
    with pytest.raises(SbomMismatch, match="3 places") as error:
        sbom.check_against_lock(document, locked, "requirements-ci.lock")
    assert error.value.exit_code == 18
    sbom.check_against_lock(bom(dist("fastapi", "0.120.0")), {"fastapi": "0.120.0"}, "x.lock")


def test_coverage_counts_the_ci_scan_and_the_lock_audit() -> None:
    full = bom(
        dist("fastapi", "0.120.0"),  # in the CI image at this version: Trivy on CI sees it
        dist("torch", "2.9.1"),  # pinned by requirements.lock: the audit sees it
        dist("numpy", "2.3.1"),  # CI has another version, the lock pins another: nobody
        dist("pip", "25.0", "other", BASE),  # in the base, the CI image has it too: covered
        dist("wheel", "0.45.0", "other", BASE),  # in neither: a gap
    )
    ci = bom(dist("fastapi", "0.120.0"), dist("numpy", "2.3.0"), dist("pip", "25.0", "other"))
    lock = {"fastapi": "0.120.0", "torch": "2.9.1", "numpy": "2.3.0"}
    gaps = sbom.coverage_gaps(full, ci, lock)
    assert gaps == [
        "numpy 2.3.1 (another version in the CI image; requirements.lock does not pin it so)",
        "wheel 0.45.0 (not in the CI image; requirements.lock does not pin it so)",
    ]
    with pytest.raises(ScanCoverageGap, match="2 distributions") as error:
        sbom.check_coverage(full, ci, lock)
    assert error.value.exit_code == 19
    assert sbom.check_coverage(bom(dist("torch", "2.9.1")), ci, lock) == 1


def test_the_probe_lists_this_python_s_distributions() -> None:
    done = subprocess.run(
        [sys.executable, "-c", sbom.PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    service = {d["name"]: d for d in answer["distributions"] if d["environment"] == "service"}
    assert "pytest" in service, sorted(service)
    assert service["pytest"]["version"] == pytest.__version__
    assert all(d["name"] == d["name"].lower() for d in answer["distributions"])

"""`nox -s audit` never calls an unchecked lock clean: pip-audit's outcomes, classified offline.

The reports and outputs below have the shapes pip-audit 2.10 writes (`--format json`): a skipped
package has only a `skip_reason`; a checked one has `version` and `vulns`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service_images import audit
from service_images.errors import AuditUnavailable, ToolError


def report(*dependencies: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def clean(name: str, version: str = "1.0") -> dict[str, Any]:
    return {"name": name, "version": version, "vulns": []}


def skipped(name: str, version: str = "1.0") -> dict[str, Any]:
    # What pip-audit writes when the service answers 404 (as a TLS-inspecting proxy can make it).
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


# pip-audit's console output (a traceback, no report) when it cannot reach the service at all.
UNREACHABLE_OUTPUT = """\
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/pip_audit/_service/pypi.py", line 74, in query
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries \
exceeded with url: /pypi/fastapi/0.121.2/json (Caused by NameResolutionError("Failed to resolve"))
"""

# pip-audit's console output when it checked everything: exactly what must never be trusted alone.
NOTHING_FOUND_OUTPUT = "No known vulnerabilities found\n"


def assert_unavailable(error: pytest.ExceptionInfo[AuditUnavailable]) -> None:
    assert error.value.exit_code == 11
    assert "\n" not in error.value.message, "the user gets one line"
    assert "no known vulnerabilities" not in error.value.message.lower()


def test_every_package_skipped_is_unavailable_even_when_pip_audit_says_nothing_found() -> None:
    audits = [
        audit.classify("requirements-ci.lock", NOTHING_FOUND_OUTPUT, report(skipped("fastapi"))),
        audit.classify("requirements.lock", NOTHING_FOUND_OUTPUT, report(skipped("torch"))),
    ]
    with pytest.raises(AuditUnavailable) as error:
        audit.verdict(audits)
    assert_unavailable(error)
    assert "2 of 2 packages" in error.value.message


def test_one_unchecked_package_leaves_no_verdict() -> None:
    lock = audit.classify("requirements-ci.lock", "", report(clean("numpy"), skipped("fastapi")))
    with pytest.raises(AuditUnavailable) as error:
        audit.verdict([lock])
    assert_unavailable(error)
    assert "1 of 2 packages" in error.value.message


def test_unreachable_service_without_a_report_is_unavailable() -> None:
    with pytest.raises(AuditUnavailable) as error:
        audit.classify("requirements-ci.lock", UNREACHABLE_OUTPUT, None)
    assert_unavailable(error)


def test_other_failures_are_not_mistaken_for_an_unreachable_service() -> None:
    output = "ERROR:pip_audit._cli:requirements-ci.lock: hash mismatch for fastapi\n"
    with pytest.raises(ToolError) as error:
        audit.classify("requirements-ci.lock", output, None)
    assert not isinstance(error.value, AuditUnavailable)
    assert "hash mismatch" in error.value.message


def test_unreadable_report_is_an_error() -> None:
    with pytest.raises(ToolError, match="unreadable report"):
        audit.classify("requirements-ci.lock", "", "{not json")


def test_vulnerabilities_are_all_reported() -> None:
    vulnerable = {
        "name": "requests",
        "version": "2.0.0",
        "vulns": [
            {"id": "PYSEC-1", "fix_versions": ["2.0.1"], "aliases": ["CVE-1"]},
            {"id": "GHSA-2", "fix_versions": []},
        ],
    }
    audits = [
        audit.classify("requirements-ci.lock", "", report(clean("numpy"), vulnerable)),
        # Findings win over unchecked packages elsewhere: they are certain.
        audit.classify("requirements.lock", "", report(skipped("torch"))),
    ]
    with pytest.raises(audit.VulnerabilitiesFound) as error:
        audit.verdict(audits)
    message = error.value.message
    assert "requests 2.0.0: PYSEC-1, CVE-1 (fixed in 2.0.1)" in message
    assert "requests 2.0.0: GHSA-2 (no fix yet)" in message
    assert error.value.exit_code != AuditUnavailable.exit_code


def test_clean_only_when_every_package_was_checked() -> None:
    audits = [
        audit.classify("requirements-ci.lock", "", report(clean("numpy"), clean("fastapi"))),
        audit.classify("requirements.lock", "", report(clean("torch"))),
    ]
    assert audit.verdict(audits) == [
        "requirements-ci.lock: no known vulnerabilities in 2 packages (checked against pypi)",
        "requirements.lock: no known vulnerabilities in 1 package (checked against pypi)",
    ]


def test_command_audits_the_lock_as_pinned(tmp_path: Path) -> None:
    lock, out = tmp_path / "requirements.lock", tmp_path / "audit.json"
    command = audit.command(lock, out)
    assert command[0] == "pip-audit"
    # Hash-pinned and complete: nothing is resolved or installed, so the full lock's ~5 GB of
    # wheels are never downloaded.
    assert "--require-hashes" in command
    assert "--disable-pip" in command
    assert command[command.index("--requirement") + 1] == str(lock)
    assert command[command.index("--output") + 1] == str(out)
    assert command[command.index("--format") + 1] == "json"

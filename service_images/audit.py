"""Dependency audit of the locks (`nox -s audit`), honest about what it could not check.

pip-audit reads each hash-pinned lock as it is (no resolver, no install) and asks PyPI's
vulnerability service about every package. When that service cannot answer, pip-audit skips the
package and may still exit 0 with "No known vulnerabilities found". Here a package that was not
checked never counts as clean: any unchecked package makes the audit unavailable
(`AuditUnavailable`, exit code 11), and only a run that checked every package says "no known
vulnerabilities".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service_images.errors import AuditUnavailable, ToolError, VulnerabilitiesFound

SERVICE = "pypi"  # the service that also verifies the locks' hashes

# pip-audit's own failure when it cannot reach the service at all (it prints a traceback).
NETWORK_FAILURE = re.compile(
    r"ConnectionError|NameResolutionError|Max retries exceeded|SSLError|ConnectTimeout"
    r"|ReadTimeout|ProxyError|Temporary failure in name resolution|Connection refused"
)


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    ids: tuple[str, ...]
    fixed_in: tuple[str, ...]

    def describe(self) -> str:
        fix = f" (fixed in {', '.join(self.fixed_in)})" if self.fixed_in else " (no fix yet)"
        return f"{self.package} {self.version}: {', '.join(self.ids)}{fix}"


@dataclass(frozen=True)
class LockAudit:
    """What pip-audit said about one lock."""

    lock: str
    checked: int
    findings: tuple[Finding, ...]
    unchecked: tuple[tuple[str, str], ...]
    """(package, pip-audit's reason) for every package it did not check."""


def command(lock: Path, report: Path) -> list[str]:
    """pip-audit over one lock as it stands: hashes required, nothing resolved or installed."""
    return [
        "pip-audit",
        "--requirement",
        str(lock),
        "--require-hashes",
        "--disable-pip",
        "--vulnerability-service",
        SERVICE,
        "--format",
        "json",
        "--output",
        str(report),
        "--progress-spinner",
        "off",
    ]


def classify(lock: str, output: str, report: str | None) -> LockAudit:
    """Read one pip-audit run: its JSON report (None when it wrote none) and its console output.

    Raises AuditUnavailable when pip-audit could not reach the service, and ToolError when it
    failed for another reason; a run that produced a report is returned as it is.
    """
    if report is None:
        network = NETWORK_FAILURE.search(output)
        if network:
            raise AuditUnavailable(
                f"dependency audit unavailable: pip-audit cannot reach the {SERVICE} vulnerability "
                f"service ({network.group(0)}); nothing was checked, so there is no verdict."
            )
        last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
        raise ToolError(f"pip-audit failed on {lock} without a report: {last or 'no output'}")
    try:
        dependencies = json.loads(report)["dependencies"]
    except (ValueError, KeyError, TypeError) as error:
        raise ToolError(f"pip-audit wrote an unreadable report for {lock}: {error}") from None
    findings: list[Finding] = []
    unchecked: list[tuple[str, str]] = []
    checked = 0
    for dependency in dependencies:
        if "skip_reason" in dependency:
            unchecked.append((dependency["name"], dependency["skip_reason"]))
            continue
        checked += 1
        for vulnerability in dependency.get("vulns", []):
            findings.append(
                Finding(
                    package=dependency["name"],
                    version=dependency.get("version", "?"),
                    ids=(vulnerability["id"], *vulnerability.get("aliases", [])),
                    fixed_in=tuple(vulnerability.get("fix_versions", [])),
                )
            )
    return LockAudit(lock, checked, tuple(findings), tuple(unchecked))


def verdict(audits: Sequence[LockAudit]) -> list[str]:
    """The lines to print for a complete audit that found nothing.

    Raises VulnerabilitiesFound (every finding, one per line) when anything is vulnerable, else
    AuditUnavailable (one line) when any package went unchecked.
    """
    findings = [(audit.lock, finding) for audit in audits for finding in audit.findings]
    if findings:
        lines = "\n".join(f"  {lock}: {finding.describe()}" for lock, finding in findings)
        raise VulnerabilitiesFound(f"{len(findings)} known vulnerabilities:\n{lines}")
    unchecked = [skip for audit in audits for skip in audit.unchecked]
    if unchecked:
        total = sum(audit.checked + len(audit.unchecked) for audit in audits)
        locks = ", ".join(audit.lock for audit in audits)
        reason = " ".join(unchecked[0][1].split())  # one line, whatever pip-audit wrote
        raise AuditUnavailable(
            f"dependency audit unavailable: the {SERVICE} vulnerability service did not answer for "
            f"{len(unchecked)} of {total} packages in {locks} (first: {reason}); "
            "there is no verdict."
        )
    return [
        f"{audit.lock}: no known vulnerabilities in {audit.checked} "
        f"package{'' if audit.checked == 1 else 's'} (checked against {SERVICE})"
        for audit in audits
    ]

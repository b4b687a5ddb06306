"""cosign, the one module that runs it: sign a pushed digest, attest an SBOM to it, verify both.

A signer is a key pair (`--key cosign.key` to sign, `cosign.pub` to verify) or, on GitHub Actions,
keyless: cosign takes the job's OIDC token, Fulcio certifies it and the signature goes to Rekor; a
verifier then names the identity (`--certificate-identity[-regexp]`) and its issuer. Signatures and
attestations live in the image's registry beside it (cosign's `sha256-<digest>.sig` / `.att`
tags). A failed verification is Unsigned when nothing at all is attached to the digest, and
WrongSigner when something is but not the signer's. What `invoke verify` checks with it is in
verification.py.

Registries on loopback are plain HTTP (Docker allows 127.0.0.0/8 without TLS by default): cosign
is told so for them (`--allow-http-registry --allow-insecure-registry`), and for no other host.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service_images import registry
from service_images.errors import BadOption, MissingFile, SigningFailed, Unsigned, WrongSigner

COSIGN = "cosign"
COSIGN_TIMEOUT_S = 300
GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"
# The options of `invoke sign`/`invoke verify` and `nox -s verify`, documented once.
SIGNER_OPTIONS = {
    "key": "cosign key file: the private key to sign, the public key to verify (default: "
    "keyless, the CI job's OIDC identity).",
    "certificate_identity": "Keyless verify: the signer's exact identity (the workflow's "
    "https://github.com/OWNER/REPO/.github/workflows/FILE@REF).",
    "certificate_identity_regexp": "Keyless verify: the signer's identity as a regular expression.",
    "certificate_oidc_issuer": "Keyless verify: the identity's issuer (default "
    f"{GITHUB_OIDC_ISSUER}).",
    "tlog": "Use the Rekor transparency log (--no-tlog: sign without uploading to it, verify "
    "without it; key pairs only, for a machine that cannot reach it).",
}


@dataclass(frozen=True)
class Signer:
    """Who signs, or whom a verification trusts: a key file, or a keyless (OIDC) identity."""

    key: Path | None = None
    """cosign.key to sign, cosign.pub to verify; None: keyless."""
    identity: str | None = None
    """Keyless verification: the certificate's exact identity (a workflow's URL@ref)."""
    identity_regexp: str | None = None
    oidc_issuer: str = GITHUB_OIDC_ISSUER
    tlog: bool = True
    """Upload to (sign) or check against (verify) the Rekor transparency log."""

    @classmethod
    def from_options(
        cls,
        key: str | None = None,
        certificate_identity: str | None = None,
        certificate_identity_regexp: str | None = None,
        certificate_oidc_issuer: str | None = None,
        tlog: bool = True,
    ) -> Signer:
        """From the command line's options (SIGNER_OPTIONS)."""
        return cls(
            key=Path(key) if key else None,
            identity=certificate_identity or None,
            identity_regexp=certificate_identity_regexp or None,
            oidc_issuer=certificate_oidc_issuer or GITHUB_OIDC_ISSUER,
            tlog=tlog,
        )

    def check(self, *, verifying: bool) -> None:
        if self.key is not None and (self.identity or self.identity_regexp):
            raise BadOption("give --key or a keyless --certificate-identity, not both.")
        if self.key is None and not self.tlog:
            raise BadOption("keyless signatures need the transparency log: drop --no-tlog.")
        if verifying and self.key is None and not (self.identity or self.identity_regexp):
            raise BadOption(
                "verify needs --key cosign.pub, or keyless --certificate-identity(-regexp) "
                f"(issuer {self.oidc_issuer})."
            )
        if self.key is not None and not self.key.is_file():
            raise MissingFile(f"no key file {self.key} (`cosign generate-key-pair` makes one).")

    def signing_args(self) -> list[str]:
        args = ["--key", str(self.key)] if self.key else []
        return [*args, f"--tlog-upload={str(self.tlog).lower()}", "--yes"]

    def verifying_args(self) -> list[str]:
        if self.key is not None:
            args = ["--key", str(self.key)]
        elif self.identity:
            args = ["--certificate-identity", self.identity]
        else:
            args = ["--certificate-identity-regexp", str(self.identity_regexp)]
        if self.key is None:
            args += ["--certificate-oidc-issuer", self.oidc_issuer]
        return [*args, f"--insecure-ignore-tlog={str(not self.tlog).lower()}"]

    def __str__(self) -> str:
        if self.key is not None:
            return str(self.key)
        return f"{self.identity or self.identity_regexp} ({self.oidc_issuer})"


def registry_args(reference: str) -> list[str]:
    """cosign's plain-HTTP flags for a loopback registry, as Docker allows one; none elsewhere."""
    host = reference.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return ["--allow-http-registry", "--allow-insecure-registry"] if loopback else []


def cosign(*args: str, reference: str) -> subprocess.CompletedProcess[str]:
    """`cosign ARGS... REFERENCE`, output captured, never waiting on a terminal prompt."""
    if shutil.which(COSIGN) is None:
        raise MissingFile("no `cosign` on PATH (scripts/bootstrap.sh installs it).")
    try:
        return subprocess.run(
            [COSIGN, *args, *registry_args(reference), reference],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COSIGN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SigningFailed(f"`cosign {args[0]}` took longer than {COSIGN_TIMEOUT_S} s.") from None


def reason(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if "WARNING" not in line]
    return lines[-1].removeprefix("error during command execution: ") if lines else "no output"


def signing_failed(what: str, result: subprocess.CompletedProcess[str]) -> SigningFailed:
    why = reason(result)
    if "reading key" in why and "COSIGN_PASSWORD" not in os.environ:
        why += " (set COSIGN_PASSWORD to the key's password: cosign cannot prompt here)"
    return SigningFailed(f"cosign could not {what}: {why}")


def digest_reference(reference: str) -> str:
    """REPO@sha256:..., or BadOption: a tag can move, a signature names bytes."""
    repository, digest = registry.split_reference(reference)
    if not digest.startswith("sha256:"):
        raise BadOption(
            f"{reference} is not REPO@sha256:...: sign and verify digests (a tag can move; "
            "`invoke push` prints the digest, or give the tag with --digest)."
        )
    return f"{repository}@{digest}"


def sign(reference: str, signer: Signer) -> None:
    signer.check(verifying=False)
    result = cosign("sign", *signer.signing_args(), reference=digest_reference(reference))
    if result.returncode != 0:
        raise signing_failed(f"sign {reference}", result)


def attest_sbom(reference: str, bom_path: Path, signer: Signer) -> None:
    """Attach a CycloneDX SBOM to the digest as an in-toto attestation signed by the signer."""
    signer.check(verifying=False)
    args = ["attest", "--type", "cyclonedx", "--predicate", str(bom_path), *signer.signing_args()]
    result = cosign(*args, reference=digest_reference(reference))
    if result.returncode != 0:
        raise signing_failed(f"attest {bom_path.name} to {reference}", result)


def anything_attached(reference: str, kind: str) -> bool:
    """Whether the registry holds any signature (or attestation) for the digest, by anyone."""
    args = ["download", kind]
    if kind == "attestation":
        args += ["--predicate-type", "cyclonedx"]
    result = cosign(*args, reference=reference)
    return result.returncode == 0 and bool(result.stdout.strip())


def verify_signature(reference: str, signer: Signer) -> int:
    """The number of the signer's signatures on the digest; Unsigned or WrongSigner."""
    result = cosign("verify", *signer.verifying_args(), "--output", "json", reference=reference)
    if result.returncode == 0:
        return len(json.loads(result.stdout or "[]"))
    if not anything_attached(reference, "signature"):
        raise Unsigned(f"{reference} has no signature ({reason(result)}): `invoke sign` it.")
    raise WrongSigner(f"{reference} is signed, but not by {signer}: {reason(result)}.")


def verified_sboms(reference: str, signer: Signer) -> list[dict[str, Any]]:
    """Every CycloneDX document attested to the digest by the signer (cosign checked each)."""
    result = cosign(
        "verify-attestation", "--type", "cyclonedx", *signer.verifying_args(), reference=reference
    )
    if result.returncode != 0:
        if not anything_attached(reference, "attestation"):
            raise Unsigned(f"{reference} has no SBOM attestation: `invoke sign` attests one.")
        raise WrongSigner(
            f"{reference} has an SBOM attestation, but not by {signer}: {reason(result)}."
        )
    boms = []
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        statement = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if statement.get("predicateType") == CYCLONEDX_PREDICATE:
            boms.append(statement["predicate"])
    return boms
